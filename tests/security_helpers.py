"""Shared pieces of the security tests: waiting for the workers, catching background failures, a loopback Telnyx."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fixtures import load_fixture, with_ids

WEBHOOK = "/webhooks/telnyx"
# What the worker pool and the scheduler log when something escaped a handler.
BACKGROUND_FAILURES = ("background work failed", "scheduled callback failed", "brain crashed")


def new_call_id() -> str:
    return f"v3:sec-{uuid.uuid4().hex}"


def event(name: str, call_control_id: str, **payload: Any) -> dict[str, Any]:
    """A fixture with a fresh data.id, moved to `call_control_id`, with payload fields overridden."""
    body = with_ids(load_fixture(name), call_control_id=call_control_id)
    body["data"]["payload"].update(payload)
    return body


def transcription(call_control_id: str, text: Any, confidence: Any = 0.93, is_final: Any = True) -> dict[str, Any]:
    data = {"transcript": text, "confidence": confidence, "is_final": is_final}
    return event("call_transcription", call_control_id, transcription_data=data)


def background_failures(records: list[logging.LogRecord]) -> list[str]:
    """Log records that show an exception escaped into, or was caught at the top of, background work."""
    return [
        record.getMessage()
        for record in records
        if record.exc_info or any(marker in record.getMessage() for marker in BACKGROUND_FAILURES)
    ]


class RecordList(logging.Handler):
    """Keeps every record it sees; attach to the root logger to watch all threads."""

    def __init__(self, level: int = logging.DEBUG):
        super().__init__(level)
        self.records: list[logging.LogRecord] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            self.records.append(record)


@contextmanager
def watching_logs(level: int = logging.DEBUG) -> Iterator[RecordList]:
    """Collect every log record from every thread while the block runs."""
    handler = RecordList(level)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def strict_json_lines(text: str) -> list[dict[str, Any]]:
    """Parse JSON lines the way a strict consumer would: NaN and Infinity are errors."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in the call log")

    return [json.loads(line, parse_constant=refuse) for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------- a Call Control API on loopback


@dataclass(frozen=True)
class ApiRequest:
    call_control_id: str
    action: str
    body: dict[str, Any]
    authorization: str


class LoopbackTelnyx:
    """A minimal Call Control API on 127.0.0.1 for the real TelnyxClient: records requests, fails on request.

    `fail[action] = [(status, code), ...]` answers the next requests for that action with those errors,
    in Telnyx's error envelope; everything else gets 200.
    """

    def __init__(self):
        self.requests: list[ApiRequest] = []
        self.fail: dict[str, list[tuple[int, str]]] = {}
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                parts = self.path.split("/")  # /v2/calls/<id>/actions/<action>
                auth = self.headers.get("Authorization", "")
                status, code = fake._record(ApiRequest(parts[3], parts[-1], body, auth))
                reply = {"data": {"result": "ok"}} if status == 200 else {
                    "errors": [{"code": code, "title": "scripted failure", "detail": "scripted failure"}]
                }
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - fixed by http.server
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def _record(self, request: ApiRequest) -> tuple[int, str]:
        with self._lock:
            self.requests.append(request)
            planned = self.fail.get(request.action)
            return planned.pop(0) if planned else (200, "")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v2"

    def actions(self) -> list[str]:
        with self._lock:
            return [r.action for r in self.requests]

    def __enter__(self) -> LoopbackTelnyx:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
