"""When a request had left: the moment its last byte was handed to the kernel, noted per thread.

The simulator notes a webhook's start just before `requests` builds the request and sends it. In a
busy process (the bench runs fifty callers in one interpreter) the bytes may leave well after that note,
and a benchmark timing the service from it counts the simulator's own wait as the service's. A session
given `note_sends` sends through connections that note the time after each piece of a request goes out;
`last_sent_at()` is the latest note on this thread, so after one request it is when the request had left.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection

_local = threading.local()


class _NotesSend:
    def send(self, data: Any) -> None:  # every piece of a request (head, body) goes out through here
        super().send(data)  # type: ignore[misc]
        _local.sent_at = time.monotonic()


class _Connection(_NotesSend, HTTPConnection):
    pass


class _TLSConnection(_NotesSend, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


def note_sends(session: requests.Session) -> requests.Session:
    """Have `session`'s requests note when they leave (its own adapters, before its first request)."""
    for prefix in ("http://", "https://"):
        session.get_adapter(prefix).poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}
    return session


def forget() -> None:
    """Start afresh on this thread: `last_sent_at()` is None until a request sends something."""
    _local.sent_at = None


def last_sent_at() -> float | None:
    """time.monotonic() when this thread's latest request piece had been handed to the kernel."""
    return getattr(_local, "sent_at", None)
