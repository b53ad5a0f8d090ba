"""Watching what the service does off the request: its workers, every thread's log lines, the call log it writes.

Also `serve`, which runs an app on a loopback port in a background thread for tests that need real HTTP.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from receptionist import Receptionist

# What the worker pool and the scheduler log when something escaped a handler.
BACKGROUND_FAILURES = ("background work failed", "scheduled callback failed", "brain crashed")


def settle(target: Receptionist | Flask, timeout_s: float = 10.0) -> None:
    """Wait until no call has work queued or running; fail loudly when it does not happen in time.

    `target` is a Receptionist or an app made by create_app. The timeout is generous: CPU may be contended.
    Tests take it as the conftest `settle` fixture; helper classes, module-scoped fixtures and the hypothesis
    state machine import it from here.
    """
    receptionist = target.extensions["receptionist"] if isinstance(target, Flask) else target
    if not receptionist.queues.wait_idle(timeout_s):
        raise AssertionError(f"background work did not settle within {timeout_s} s: {receptionist.stats()}")


def wait_until(predicate, timeout_s: float, interval_s: float = 0.02) -> bool:
    """Poll `predicate` until it is true or the time is up; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


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


def background_failures(records: list[logging.LogRecord]) -> list[str]:
    """Log records that show an exception escaped into, or was caught at the top of, background work."""
    return [
        record.getMessage()
        for record in records
        if record.exc_info or any(marker in record.getMessage() for marker in BACKGROUND_FAILURES)
    ]


def strict_json_lines(text: str) -> list[dict[str, Any]]:
    """Parse the call log the way a strict consumer would: NaN and Infinity are errors."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in the call log")

    return [json.loads(line, parse_constant=refuse) for line in text.splitlines() if line.strip()]


@contextmanager
def serve(app, threads: bool = True) -> Iterator[str]:
    """Serve a WSGI app on a free loopback port in a background thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=threads)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
