"""The default store: this process's memory. Nothing to install; one process only (see gunicorn.conf.py).

Each call's events run on a thread pool, one at a time per call (workers.SerialQueues); timers run on one
scheduler thread; a housekeeping timer writes off calls whose hangup never came. A call's state is the
live object the handler changes, so there is nothing to write back.
"""

from __future__ import annotations

from collections.abc import Callable

from calls import CallRegistry, SeenEvents
from config import Settings
from events import CallExpired, TimerFired
from stores import Handler, QueuedEvent
from stores.state_file import StateFile
from workers import Scheduler, SerialQueues

HOUSEKEEPING_S = 60.0


class MemoryStore:
    outlives_process = False

    def __init__(self, settings: Settings, scheduler: Scheduler, clock: Callable[[], float]):
        self.calls = CallRegistry(settings.calls.max_call_age_s, clock=clock)
        self.seen = SeenEvents()
        self.shared = StateFile(settings.admin.state_path)
        self.scheduler = scheduler
        self._workers = settings.calls.workers
        self.queues: SerialQueues | None = None

    def start(self, handle: Handler) -> None:
        self.queues = SerialQueues(handle, workers=self._workers)
        self.scheduler.call_later(HOUSEKEEPING_S, self._housekeeping)

    def accept(self, event_id: str, call_control_id: str, event: QueuedEvent) -> bool:
        if not self.seen.first_time(event_id):
            return False
        self.queues.submit(call_control_id, event)
        return True

    def schedule(self, delay_s: float, call_control_id: str, event: TimerFired) -> None:
        self.scheduler.call_later(delay_s, lambda: self.queues.submit(call_control_id, event))

    def health(self) -> str | None:
        return None

    def begin_shutdown(self) -> None:
        """Nothing to hand back: what this process holds dies with it (RELIABILITY.md)."""

    def shutdown(self) -> None:
        self.scheduler.stop()
        self.queues.shutdown(wait=True)

    def _housekeeping(self) -> None:
        for call_control_id in self.calls.expired():
            self.queues.submit(call_control_id, CallExpired())
        self.scheduler.call_later(HOUSEKEEPING_S, self._housekeeping)
