"""A thin Call Control client: one private action method, one-line verbs, bounded retries.

Whatever comes back is input, not just its JSON: a redirect is an error and never followed, an answer is read
up to MAX_ANSWER_BYTES and no further, and every attempt has a deadline that a trickled answer cannot stretch.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

import metrics
from config import CallsConfig, TelnyxConfig

log = logging.getLogger(__name__)

CALL_ENDED = "90018"
# The retry policy. Retried, under the same command_id (Telnyx ignores a repeat, so it acts at most once): these
# statuses, and every attempt that got no whole answer (no connection, a reset, an answer cut off or still
# arriving at the attempt's deadline), since Telnyx may have acted. Raised at once: any other status, a redirect
# among them (never followed: that would send the command, or turn it into a GET, to whatever host it names; the
# same request would only be redirected again), and an answer too large to be Call Control's, unless its status
# is one of these.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Call Control answers are small JSON: {"data": {"result": "ok"}} or an errors envelope, well under a kilobyte.
# Anything past this is not one; it is cut off and counted as an error rather than held in the worker's memory.
MAX_ANSWER_BYTES = 64 * 1024
READ_CHUNK_BYTES = 16 * 1024
DEFAULTS = TelnyxConfig()  # the config's defaults, so a client built without settings behaves the same
COMMAND_NAMESPACE = uuid.UUID("6b0f7c1e-3c4a-4e0b-9d7e-1f2a3b4c5d6e")


class TelnyxError(Exception):
    """Base class for every Call Control failure."""


class TelnyxTimeout(TelnyxError):
    """No answer within the configured timeouts, after every retry."""


class TelnyxConnectionError(TelnyxError):
    """Telnyx could not be reached, after every retry."""


class TelnyxHTTPError(TelnyxError):
    """Telnyx answered with a non-2xx status."""

    def __init__(self, status: int, code: str | None, title: str):
        self.status, self.code, self.title = status, code, title
        super().__init__(f"HTTP {status} code={code} {title}")


Outcome = tuple[requests.Response | None, TelnyxError | None]  # one attempt: what came back, what went wrong


def command_id_for(*parts: str) -> str:
    """A deterministic command_id, so a redelivered webhook or a retry never makes Telnyx act twice."""
    return str(uuid.uuid5(COMMAND_NAMESPACE, "|".join(parts)))


class CallControl(Protocol):
    """The verbs the service uses; the production client and test fakes both satisfy it."""

    def answer(self, call_control_id: str, *, command_id: str, **body: Any) -> bool: ...
    def speak(self, call_control_id: str, payload: str, voice: str, *, command_id: str, **body: Any) -> bool: ...
    def transcription_start(self, call_control_id: str, *, command_id: str, **body: Any) -> bool: ...
    def transcription_stop(self, call_control_id: str, *, command_id: str, **body: Any) -> bool: ...
    def playback_stop(self, call_control_id: str, *, command_id: str, **body: Any) -> bool: ...
    def transfer(self, call_control_id: str, to: str, *, command_id: str, **body: Any) -> bool: ...
    def hangup(self, call_control_id: str, *, command_id: str, **body: Any) -> bool: ...
    def record_start(self, call_control_id: str, *, command_id: str, **body: Any) -> bool: ...
    def record_stop(self, call_control_id: str, *, command_id: str, **body: Any) -> bool: ...


class TelnyxClient:
    """Sends Call Control actions. Each verb returns True when Telnyx accepted it, False when the call had ended."""

    def __init__(
        self,
        api_key: str,
        base_url: str,
        *,
        connect_timeout: float = DEFAULTS.connect_timeout_s,
        read_timeout: float = DEFAULTS.read_timeout_s,
        max_attempts: int = DEFAULTS.max_attempts,
        max_backoff: float = DEFAULTS.max_backoff_s,
        pool_size: int = CallsConfig().workers,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        # requests' timeouts are per read, and an answer trickled a byte at a time never trips one. So each attempt
        # is also cut off as a whole after connect + read timeout: as long as one attempt could already take when
        # nothing trickles, so the worst case stays max_attempts × (connect + read) + the pauses, with no new key.
        self.attempt_deadline_s = connect_timeout + read_timeout
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self._sleep = sleep
        self.session = _NoRedirects()
        adapter = _WatchedAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Authorization": f"Bearer {api_key}", "Accept": "application/json"})
        _read_environment_once(self.session, self.base_url)

    def answer(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "answer", body, command_id)

    def speak(self, call_control_id: str, payload: str, voice: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "speak", {"payload": payload, "voice": voice, **body}, command_id)

    def transcription_start(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "transcription_start", body, command_id)

    def transcription_stop(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "transcription_stop", body, command_id)

    def playback_stop(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "playback_stop", body, command_id)

    def transfer(self, call_control_id: str, to: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "transfer", {"to": to, **body}, command_id)

    def hangup(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "hangup", body, command_id)

    def record_start(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "record_start", body, command_id)

    def record_stop(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._action(call_control_id, "record_stop", body, command_id)

    def _action(self, call_control_id: str, action: str, body: dict[str, Any], command_id: str) -> bool:
        """One command, retries included, counted and timed (metrics.py) whatever its outcome."""
        started, status = time.monotonic(), "error"
        try:
            sent = self._attempts(call_control_id, action, body, command_id)
            status = "ok" if sent else "call_ended"
            return sent
        except TelnyxError as exc:
            status = command_status(exc)
            raise
        finally:
            metrics.telnyx_command(action, status, time.monotonic() - started)

    def _attempts(self, call_control_id: str, action: str, body: dict[str, Any], command_id: str) -> bool:
        url = f"{self.base_url}/calls/{quote(call_control_id, safe=':')}/actions/{action}"
        body = {**body, "command_id": command_id}
        for attempt in range(1, self.max_attempts + 1):
            response, failure = self._post(url, body, action)
            if failure is None:
                return True
            if isinstance(failure, TelnyxHTTPError):
                if _call_ended(failure):
                    log.info("call=%s action=%s skipped: call already ended", call_control_id, action)
                    return False
                if failure.status not in RETRY_STATUSES:
                    raise failure
            if attempt < self.max_attempts:
                self._sleep(self._backoff(attempt, response))
        raise failure

    def _post(self, url: str, body: dict[str, Any], action: str) -> Outcome:
        """One attempt, cut off at its deadline; a failure is returned, not raised, so the retry loop can decide."""
        with _Attempt(self.attempt_deadline_s) as attempt:
            outcome = self._exchange(url, body, action)
        if attempt.expired:  # its socket was shut under it: whatever came back may be partial
            return None, TelnyxTimeout(f"{action}: no whole answer within {self.attempt_deadline_s:g} s")
        return outcome

    def _exchange(self, url: str, body: dict[str, Any], action: str) -> Outcome:
        try:
            response = self.session.post(url, json=body, timeout=self.timeout, stream=True, allow_redirects=False)
        except requests.Timeout:
            return None, TelnyxTimeout(f"{action} timed out")
        except requests.RequestException:  # mostly ConnectionError; anything else is as unusable
            return None, TelnyxConnectionError(f"{action}: cannot reach Telnyx")
        try:
            content = _read_capped(response)
        except requests.RequestException:  # a reset, a stall past the read timeout, a body that will not decode
            # The answer broke off after the headers: Telnyx may have acted, so retry under the same command_id.
            return None, TelnyxConnectionError(f"{action}: the answer from Telnyx was cut off")
        return response, _failure(response, content)

    def _backoff(self, attempt: int, response: requests.Response | None) -> float:
        """Short exponential backoff with jitter; a Retry-After is honoured only up to the cap."""
        delay = min(self.max_backoff, 0.1 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        retry_after = _retry_after(response) if response is not None else None
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff))
        return delay


def _read_environment_once(session: requests.Session, base_url: str) -> None:
    """Take proxy and CA-bundle settings from the environment now, not on every request.

    With `trust_env` on, requests scans the whole environment and stats netrc and CA files for each
    command: a few per cent of the worker's CPU in the benchmark's profile. HTTPS_PROXY, NO_PROXY
    and REQUESTS_CA_BUNDLE still apply; they are read when the service starts.
    """
    from_env = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies.update(from_env["proxies"])
    session.verify = from_env["verify"]
    session.trust_env = False


def _read_capped(response: requests.Response) -> bytes | None:
    """The answer's body, or None once it passes MAX_ANSWER_BYTES; the response is closed either way.

    Closing a response that was not read to the end closes its connection too, so the rest of an oversize
    answer is never read and the connection never reused."""
    chunks, total = [], 0
    with response:
        for chunk in response.iter_content(READ_CHUNK_BYTES):
            total += len(chunk)
            if total > MAX_ANSWER_BYTES:
                return None
            chunks.append(chunk)
    return b"".join(chunks)


def _failure(response: requests.Response, content: bytes | None) -> TelnyxError | None:
    """None for a whole 2xx answer, else the error; `response.ok` will not do, as it holds any 3xx to be fine."""
    status = response.status_code
    if content is None:
        return TelnyxHTTPError(status, None, f"answer larger than {MAX_ANSWER_BYTES} bytes, cut off")
    if 300 <= status < 400:
        return TelnyxHTTPError(status, None, f"redirect to {_redirect_target(response)} not followed")
    return None if 200 <= status < 300 else _http_error(response, content)


def _redirect_target(response: requests.Response) -> str:
    """Where a redirect points, for the log: the host only, as its path or query may carry anything."""
    location = response.headers.get("Location")
    if location is None:
        return "nowhere (no Location)"
    try:
        host = urlsplit(location).hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return "a malformed Location"
    return f"host {host[:253]}" if host else "the same host"


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _http_error(response: requests.Response, content: bytes) -> TelnyxHTTPError:
    code, title = None, response.reason or ""
    try:
        first = json.loads(content)["errors"][0]
        code, title = str(first.get("code")), str(first.get("title", title))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        pass
    return TelnyxHTTPError(response.status_code, code, title)


def command_status(error: TelnyxError) -> str:
    """The telnyx_commands_total status label of a failed command: its HTTP status, timeout or connection."""
    if isinstance(error, TelnyxHTTPError):
        return str(error.status)
    return {TelnyxTimeout: "timeout", TelnyxConnectionError: "connection"}.get(type(error), "error")


def _call_ended(error: TelnyxHTTPError) -> bool:
    return error.status == 422 and error.code == CALL_ENDED


# ---------------------------------------------------------------- the per-attempt deadline
#
# A trickle can only be stopped by ending the read it keeps alive, from another thread: one watchdog thread
# shuts the socket of every attempt still running at its deadline. The attempt learns its socket from the
# connection, which reports it when it starts reading the answer (status line, headers, then the body).

_this_thread = threading.local()  # .attempt: the attempt this thread is making, for its connection to report to


class _Attempt:
    """One request's deadline; past it, the socket the answer is read from is shut, which ends any read on it."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self._sock: socket.socket | None = None
        self._done = False
        self._lock = threading.Lock()

    def __enter__(self) -> _Attempt:
        _this_thread.attempt = self
        _WATCHDOG.watch(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _this_thread.attempt = None
        with self._lock:
            self._done, self._sock = True, None

    def reads_from(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        """Called by the watchdog at the deadline. An attempt already over is left alone, as its connection may be
        another attempt's by now. (A deadline falling in the microseconds between an answer's last byte, when the
        connection goes back to the pool, and __exit__ could still shut it under its next user, who would see a
        connection error and retry under its own command_id.)"""
        with self._lock:
            if self._done:
                return
            self.expired = True
            if self._sock is not None:
                _shut(self._sock)


def _shut(sock: socket.socket) -> None:
    """Shut the connection beneath any TLS layer, so a read blocked in it sees the end of the stream at once."""
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One thread, started when there is something to watch, that expires each attempt at its deadline."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, _Attempt]] = []  # a heap, the earliest deadline first
        self._changed = threading.Condition()
        self._running = False

    def watch(self, attempt: _Attempt) -> None:
        with self._changed:
            heapq.heappush(self._due, (attempt.deadline, id(attempt), attempt))
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="telnyx-deadlines", daemon=True).start()
            elif self._due[0][2] is attempt:
                self._changed.notify()

    def _run(self) -> None:
        """Attempts that end in time stay in the heap until their deadline; expiring them then does nothing."""
        with self._changed:
            while self._due:
                deadline, _, attempt = self._due[0]
                if deadline > time.monotonic():
                    self._changed.wait(deadline - time.monotonic())
                    continue
                heapq.heappop(self._due)
                attempt.expire()
            self._running = False


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG.__init__)  # a forked worker starts its own thread, not a copy's state


class _ReportsSocket:
    """Mixed into urllib3's connections: tells the attempt running on this thread which socket it reads from."""

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        attempt = getattr(_this_thread, "attempt", None)
        if attempt is not None and self.sock is not None:
            attempt.reads_from(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPConnection(_ReportsSocket, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_ReportsSocket, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, whose connections report their sockets, direct or through an HTTP(S) proxy."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):  # a SOCKS proxy keeps its own pools, unwatched
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


class _NoRedirects(requests.Session):
    """A session that never sees a redirect: even with allow_redirects=False, requests reads a redirect's whole
    body (to offer `response.next`), and that body can be as large or as endless as any other."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None
