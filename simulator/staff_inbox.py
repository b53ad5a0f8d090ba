"""A webhook receiver on loopback standing in for Slack, a CRM or a ticket system: it checks each delivery's
Standard Webhooks signature with the shared secret, records it, and answers a scripted status.

Like a careful receiver, it acts once per `webhook-id`: a repeat is acknowledged and not recorded again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from simulator.fake_telnyx import LoopbackHTTP


@dataclass(frozen=True)
class Received:
    webhook_id: str
    timestamp: str
    payload: dict[str, Any]
    signature_valid: bool


class StaffInbox(LoopbackHTTP):
    """`url` takes POSTs; `received` holds each distinct, signed delivery; `fail_next(503, 503)` scripts failures."""

    def __init__(self, secret: bytes):
        self.secret = secret
        self.received: list[Received] = []
        self.attempts = 0
        self._statuses: deque[int] = deque()
        self._lock = threading.Lock()
        super().__init__(_handler(self), "staff-inbox")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/messages"

    def fail_next(self, *statuses: int) -> None:
        with self._lock:
            self._statuses.extend(statuses)

    def take(self, headers: Any, body: bytes) -> int:
        """The status to answer with; a valid, new delivery is recorded."""
        webhook_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
        expected = base64.b64encode(hmac.new(self.secret, f"{webhook_id}.{stamp}.".encode() + body,
                                             hashlib.sha256).digest()).decode()
        offered = [part.removeprefix("v1,") for part in headers.get("webhook-signature", "").split()]
        valid = any(hmac.compare_digest(expected, sig) for sig in offered)
        with self._lock:
            self.attempts += 1
            if self._statuses:
                return self._statuses.popleft()
            if not valid:
                return 401
            if all(item.webhook_id != webhook_id for item in self.received):
                self.received.append(Received(webhook_id, stamp, json.loads(body), valid))
            return 204


def _handler(inbox: StaffInbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - the name http.server looks for
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(inbox.take(self.headers, body))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
