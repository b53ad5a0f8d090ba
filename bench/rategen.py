"""Open-loop load: prepared requests sent at fixed times over keep-alive connections, from a separate process.

Open loop means a request goes out when it is due whether or not earlier ones were answered, and its
latency is counted from when it was due: a slow server cannot slow the generator down and hide its
own queueing (no coordinated omission).
"""

from __future__ import annotations

import http.client
import itertools
import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

START_DELAY_S = 0.3  # every sender thread is up and waiting before the first request is due


@dataclass(frozen=True)
class Shot:
    """One request: when it is due (seconds after the start), its body and its headers."""

    offset_s: float
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Outcome:
    """What happened to one shot, in monotonic seconds; status None means no answer."""

    due: float
    sent: float
    done: float
    status: int | None


class _Sender:
    """One thread's keep-alive connection; a connection the server closed while idle is reopened once."""

    def __init__(self, url: str, timeout_s: float):
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path
        self.timeout_s = timeout_s
        self.connection: http.client.HTTPConnection | None = None

    def post(self, shot: Shot) -> int | None:
        for fresh in (self.connection is None, True):
            if fresh:
                self.close()
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            try:
                self.connection.request("POST", self.path, shot.body, shot.headers)
                response = self.connection.getresponse()
                response.read()
                return response.status
            except TimeoutError:  # the server is slow, not gone: sending again would only pile on
                self.close()
                return None
            except (OSError, http.client.HTTPException):
                if fresh:
                    self.close()
                    return None
        return None

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def fire(url: str, shots: list[Shot], connections: int = 32, timeout_s: float = 2.0) -> dict:
    """Send every shot at its time from `connections` threads; return outcomes and the generator's CPU."""
    outcomes: list[Outcome | None] = [None] * len(shots)
    order = itertools.count()
    lock = threading.Lock()
    start = time.monotonic() + START_DELAY_S
    cpu0 = time.process_time()

    def send_loop() -> None:
        sender = _Sender(url, timeout_s)
        while True:
            with lock:
                index = next(order)
            if index >= len(shots):
                break
            due = start + shots[index].offset_s
            time.sleep(max(0.0, due - time.monotonic()))
            sent = time.monotonic()
            status = sender.post(shots[index])
            outcomes[index] = Outcome(due, sent, time.monotonic(), status)
        sender.close()

    threads = [threading.Thread(target=send_loop, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    give_up = start + (shots[-1].offset_s if shots else 0) + 2 * timeout_s + 5
    for thread in threads:
        thread.join(timeout=max(0.0, give_up - time.monotonic()))
    return {"outcomes": [o for o in outcomes if o is not None], "unsent": sum(o is None for o in outcomes),
            "cpu_s": time.process_time() - cpu0}


class Generator:
    """A separate process that fires shot lists on request, so its GIL and CPU are not the bench's."""

    def __enter__(self) -> Generator:
        self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def fire(self, url: str, shots: list[Shot], connections: int = 32, timeout_s: float = 2.0) -> dict:
        return self._pool.submit(fire, url, shots, connections, timeout_s).result()
