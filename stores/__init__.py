"""Where calls live between events: the seam between the receptionist and its memory.

A store keeps each live call's state, the webhook ids already seen, tombstones of ended calls and the timers,
and runs each call's events one at a time in arrival order. Two implementations, chosen by `REDIS_URL`:

- `stores.memory.MemoryStore` (the default): this process's memory; nothing to install, one process only.
- `stores.redis.RedisStore`: a Redis (or Valkey) shared by every worker and instance; a call survives the
  process that was serving it. The ordering protocol is written down in `stores/redis.py`.

Inside the handler a store runs for an event, `calls.get` and `calls.open` hand out the call's state to
change in place; what the handler leaves behind is the call's new state, kept when the event is done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from calls import CallState
from config import Settings
from events import CallEvent, CallExpired, LegEvent, TimerFired
from workers import Scheduler

# What waits on a call's queue: webhooks, a transfer leg's webhooks, and the service's own timers.
QueuedEvent = CallEvent | LegEvent | TimerFired | CallExpired
# Processes one event of one call: (call_control_id, event).
Handler = Callable[[str, QueuedEvent], None]


class StoreUnavailable(Exception):
    """The store cannot be reached or answered too slowly; the webhook is refused (503) for Telnyx to retry."""


class CallStates(Protocol):
    """Each live call's state, and the calls that ended recently."""

    def get(self, call_control_id: str) -> CallState | None: ...
    def open(self, call_control_id: str) -> CallState | None: ...
    def close(self, call_control_id: str) -> None: ...
    def is_live(self, call_control_id: str) -> bool: ...
    def has_ended(self, call_control_id: str) -> bool: ...
    def known(self, call_control_id: str) -> bool: ...
    def snapshot(self, limit: int) -> list[CallState]: ...
    def __len__(self) -> int: ...


class SeenIds(Protocol):
    def first_time(self, event_id: str) -> bool: ...


class CallQueues(Protocol):
    """The events waiting for, or being run by, this process."""

    def pending(self) -> int: ...
    def wait_idle(self, timeout_s: float) -> bool: ...
    def discard_pending(self) -> dict[str, int]: ...
    def shutdown(self, wait: bool = True) -> None: ...


class SharedValues(Protocol):
    """Small named values every worker and instance sees, kept across restarts: the operator's state
    (the AI switch, the rollback guard's window, messages marked called back; ai_switch.py, admin/)."""

    def get(self, name: str) -> str | None: ...
    def put(self, name: str, value: str) -> None: ...
    def push(self, name: str, item: str, keep: int) -> list[str]:
        """Add `item` to the list `name`, keep its newest `keep` items, and return them, newest first."""
    def items(self, name: str) -> list[str]: ...
    def drop(self, name: str) -> None: ...


class Store(Protocol):
    calls: CallStates
    seen: SeenIds
    queues: CallQueues
    shared: SharedValues
    # True when a call outlives this process (another process takes it over), so a process that is
    # shutting down may still accept events: they wait in the store, not in this process.
    outlives_process: bool

    def start(self, handle: Handler) -> None:
        """Begin running queued events through `handle`, one at a time per call."""

    def accept(self, event_id: str, call_control_id: str, event: QueuedEvent) -> bool:
        """Queue a webhook for its call unless its id was seen before (False); atomic where the store allows."""

    def schedule(self, delay_s: float, call_control_id: str, event: TimerFired) -> None:
        """Queue `event` for the call after `delay_s`."""

    def health(self) -> str | None:
        """None when the store is usable, else why not (one line)."""

    def begin_shutdown(self) -> None:
        """Take on no new work; the work this process holds finishes or is handed back."""

    def shutdown(self) -> None: ...


def build_store(settings: Settings, scheduler: Scheduler, clock: Callable[[], float]) -> Store:
    """RedisStore when REDIS_URL is set, else MemoryStore."""
    if settings.secrets.redis_url:
        from stores.redis import RedisStore

        return RedisStore(settings, scheduler, clock)
    from stores.memory import MemoryStore

    return MemoryStore(settings, scheduler, clock)
