"""Small tools the reliability tests share: waiting for background work, serving the app on loopback."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from werkzeug.serving import make_server

from receptionist import Receptionist

ROOT = Path(__file__).resolve().parent.parent


def settle(target: Receptionist | Flask, timeout_s: float = 10.0) -> None:
    """Wait until no call has work queued or running; fail loudly when it does not happen in time.

    `target` is a Receptionist or an app made by create_app. The timeout is generous: CPU may be contended.
    """
    receptionist = target.extensions["receptionist"] if isinstance(target, Flask) else target
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if receptionist.queues.idle():
            return
        time.sleep(0.002)
    raise AssertionError(f"background work did not settle within {timeout_s} s: {receptionist.stats()}")


def wait_until(predicate, timeout_s: float, interval_s: float = 0.02) -> bool:
    """Poll `predicate` until it is true or the time is up; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


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


def percentile(values: list[float], percent: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]
