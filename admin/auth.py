"""Who may use the operator page: sign-in with ADMIN_TOKEN, the session cookie, CSRF tokens, and a brake on guessing.

The session is Flask's signed cookie, keyed by a secret derived from ADMIN_TOKEN (so every worker and instance
accepts it, and changing the token signs everyone out). It is HttpOnly and SameSite=Strict, Secure unless the
page is served on a loopback address (the demo), and lasts SESSION_HOURS. Every form carries the session's CSRF
token. Neither the token nor the session ever appears in a URL. Scripts use `Authorization: Bearer <ADMIN_TOKEN>`
on `/admin/ai` instead, with no cookie involved.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from flask import Flask, request, session
from flask.sessions import SecureCookieSessionInterface

SESSION_HOURS = 12
COOKIE_NAME = "receptionist_admin"
CSRF_FIELD = "csrf_token"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def configure_sessions(app: Flask, admin_token: str) -> None:
    app.secret_key = hmac.new(admin_token.encode(), b"receptionist admin session", hashlib.sha256).hexdigest()
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/admin",
        PERMANENT_SESSION_LIFETIME=SESSION_HOURS * 3600,
    )
    app.session_interface = AdminSessions()


class AdminSessions(SecureCookieSessionInterface):
    """Flask's signed cookie, Secure everywhere but on a loopback address (plain HTTP there is the demo)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return not on_loopback()


def on_loopback() -> bool:
    return request.host.rsplit(":", 1)[0] in LOOPBACK_HOSTS if request.host else False


def token_matches(given: str, admin_token: str) -> bool:
    return hmac.compare_digest(given.encode(), admin_token.encode())


def sign_in() -> None:
    session.clear()
    session.permanent = True
    session.update(admin=True, issued=time.time(), csrf=secrets.token_urlsafe(32))


def signed_in() -> bool:
    issued = session.get("issued")
    fresh = isinstance(issued, float | int) and time.time() - issued < SESSION_HOURS * 3600
    return bool(session.get("admin")) and fresh


def csrf_token() -> str:
    """The session's CSRF token, made on first use (the sign-in form has one before anyone is signed in)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def csrf_ok() -> bool:
    expected = session.get("csrf")
    given = request.form.get(CSRF_FIELD, "")
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


class SignInLimiter:
    """At most `attempts` failed sign-ins per client address in `window_s`, in this process.

    Per process: with several workers an address gets that many per worker, which still turns guessing a
    token of 16+ random characters from hopeless into more hopeless. Addresses are forgotten oldest first
    beyond `max_addresses`, so a flood of them cannot fill memory.
    """

    def __init__(self, attempts: int = 5, window_s: float = 900.0, max_addresses: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.attempts, self.window_s, self.max_addresses, self.clock = attempts, window_s, max_addresses, clock
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int:
        """Seconds until `address` may try again; 0 when it may now."""
        with self._lock:
            recent = self._recent(address)
            if len(recent) < self.attempts:
                return 0
            return max(1, int(recent[0] + self.window_s - self.clock()) + 1)

    def failed(self, address: str) -> None:
        with self._lock:
            self._failures[address] = [*self._recent(address), self.clock()]
            self._failures.move_to_end(address)
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)

    def _recent(self, address: str) -> list[float]:
        cutoff = self.clock() - self.window_s
        return [at for at in self._failures.get(address, []) if at > cutoff]
