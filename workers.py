"""Background work: one call's events run one at a time in arrival order; different calls run in parallel."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class SerialQueues:
    """A thread pool where items sharing a key never run concurrently and keep their order."""

    def __init__(self, handle: Callable[[Hashable, Any], None], workers: int):
        self._handle = handle
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="call")
        self._queues: dict[Hashable, deque] = {}
        self._lock = threading.Lock()
        self._became_idle = threading.Condition(self._lock)

    def submit(self, key: Hashable, item: Any) -> None:
        """Queue an item; returns at once. After `shutdown()` a new key's item is dropped (and logged)."""
        with self._lock:
            queue = self._queues.get(key)
            if queue is not None:
                queue.append(item)
                return
            self._queues[key] = deque([item])
        try:
            self._pool.submit(self._drain, key)
        except RuntimeError:  # the pool is shut down (or the interpreter is exiting): nothing will run it
            self._forget(key)
            log.warning("call=%s %s dropped: shutting down", key, getattr(item, "event_type", type(item).__name__))

    def pending(self) -> int:
        with self._lock:
            return sum(len(queue) for queue in self._queues.values())

    def idle(self) -> bool:
        """True when no key has an item queued or running."""
        with self._lock:
            return not self._queues

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until no key has an item queued or running; False when `timeout_s` passed first."""
        with self._became_idle:
            return self._became_idle.wait_for(lambda: not self._queues, timeout=timeout_s)

    def discard_pending(self) -> dict[Hashable, int]:
        """Drop every queued item that has not started; items already running finish. Returns drops per key."""
        with self._lock:
            dropped = {key: len(queue) for key, queue in self._queues.items() if queue}
            for queue in self._queues.values():
                queue.clear()
            return dropped

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)

    def _drain(self, key: Hashable) -> None:
        while True:
            with self._lock:
                queue = self._queues[key]
                if not queue:
                    self._forget_locked(key)
                    return
                item = queue.popleft()
            try:
                self._handle(key, item)
            except Exception:  # the top of background work: log it and keep serving the call
                log.exception("call=%s background work failed", key)

    def _forget(self, key: Hashable) -> None:
        with self._lock:
            self._forget_locked(key)

    def _forget_locked(self, key: Hashable) -> None:
        del self._queues[key]
        if not self._queues:
            self._became_idle.notify_all()


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
    """Runs small callbacks after a delay from one daemon thread, so thousands of timers need no thousand threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, name: str = "scheduler"):
        self._clock = clock
        self._heap: list[Timer] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self._clock() + max(0.0, delay_s), next(self._order), callback)
        with self._wake:
            heapq.heappush(self._heap, timer)
            self._wake.notify()
        return timer

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            timer = self._next_due()
            if timer is None:
                return
            if timer.cancelled:
                continue
            try:
                timer.callback()
            except Exception:  # a broken callback must not stop every other call's clock
                log.exception("scheduled callback failed")

    def _next_due(self) -> Timer | None:
        with self._wake:
            while not self._stopped:
                wait = self._heap[0].deadline - self._clock() if self._heap else None
                if wait is not None and wait <= 0:
                    return heapq.heappop(self._heap)
                self._wake.wait(timeout=wait)
            return None
