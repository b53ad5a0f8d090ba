"""One thread that runs callbacks at monotonic deadlines, so thousands of speeches need no thousand timers."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(order=True)
class Timer:
    """A scheduled callback; `cancel()` makes it a no-op."""

    deadline: float
    order: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """A min-heap of timers served by one daemon thread."""

    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._counter = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="sim-scheduler", daemon=True)
        self._thread.start()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(time.monotonic() + max(0.0, delay_s), next(self._counter), callback)
        with self._wake:
            heapq.heappush(self._heap, timer)
            self._wake.notify()
        return timer

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            timer = self._next_due()
            if timer is None:
                return
            if not timer.cancelled:
                self._fire(timer)

    def _next_due(self) -> Timer | None:
        with self._wake:
            while not self._stopped:
                wait = self._heap[0].deadline - time.monotonic() if self._heap else None
                if wait is not None and wait <= 0:
                    return heapq.heappop(self._heap)
                self._wake.wait(timeout=wait)
            return None

    @staticmethod
    def _fire(timer: Timer) -> None:
        try:
            timer.callback()
        except Exception:  # a broken callback must not stop every other call's clock
            log.exception("scheduled callback failed")
