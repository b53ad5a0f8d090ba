"""In-process fakes for the service's seams: a Telnyx that records commands, a brain that follows a script,
a clock and a scheduler that move only when a test says so."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from brains import BrainError, BrainReply, Turn
from telnyx_client import TelnyxHTTPError
from workers import Timer


@dataclass
class SentCommand:
    action: str
    call_control_id: str
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class RecordingTelnyx:
    """Satisfies telnyx_client.CallControl; records every command and can be told a call has ended."""

    def __init__(self):
        self.commands: list[SentCommand] = []
        self.ended: set[str] = set()
        self.failures: dict[str, Exception] = {}
        self._lock = threading.Lock()
        self._sent = threading.Condition(self._lock)

    def __getattr__(self, action: str):
        if action.startswith("_"):
            raise AttributeError(action)
        return lambda call_control_id, *args, **body: self._record(action, call_control_id, args, body)

    def _record(self, action: str, call_control_id: str, args: tuple, body: dict[str, Any]) -> bool:
        if action == "speak":
            body = {"payload": args[0], "voice": args[1], **body}
        elif action == "transfer":
            body = {"to": args[0], **body}
        with self._sent:
            if action in self.failures:
                raise self.failures[action]
            if call_control_id in self.ended:
                return False
            self.commands.append(SentCommand(action, call_control_id, body))
            self._sent.notify_all()
        return True

    def actions(self, call_control_id: str | None = None) -> list[str]:
        with self._lock:
            return [c.action for c in self.commands if call_control_id in (None, c.call_control_id)]

    def spoken(self) -> list[str]:
        with self._lock:
            return [c.body["payload"] for c in self.commands if c.action == "speak"]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[SentCommand]:
        """Block until at least `count` commands were sent; fail loudly on timeout."""
        deadline = time.monotonic() + timeout
        with self._sent:
            while len(self.commands) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} commands, got {[c.action for c in self.commands]}")
                self._sent.wait(remaining)
            return list(self.commands)


def call_ended_error() -> TelnyxHTTPError:
    return TelnyxHTTPError(422, "90018", "Call has already ended")


class ScriptedBrain:
    """Answers from a queue of replies (or errors); records every prompt it was given."""

    def __init__(self, *replies: BrainReply | Exception, default: BrainReply | None = None):
        self.replies: deque[BrainReply | Exception] = deque(replies)
        self.default = default or BrainReply("Happy to help with that.", "continue", 0.9)
        self.history: list[tuple[list[Turn], str]] = []

    def enqueue(self, reply: BrainReply | Exception) -> None:
        self.replies.append(reply)

    def reply(self, history: Sequence[Turn], utterance: str) -> BrainReply:
        self.history.append((list(history), utterance))
        nxt = self.replies.popleft() if self.replies else self.default
        if isinstance(nxt, Exception):
            raise nxt
        return nxt


def brain_error(reason: str = "timed out") -> BrainError:
    return BrainError(reason)


class ManualClock:
    """A clock that moves only when told: `clock()` reads it, `clock.advance(s)` moves it on."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ManualScheduler:
    """Stands in for workers.Scheduler: keeps every timer (its deadline is the delay) until `fire_all()`.

    Thread-safe, since the receptionist's worker threads set timers while a test fires them.
    """

    def __init__(self):
        self.timers: list[Timer] = []
        self.stopped = False
        self._order = itertools.count()
        self._lock = threading.Lock()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(delay_s, next(self._order), callback)
        with self._lock:
            self.timers.append(timer)
        return timer

    def delays(self) -> list[float]:
        with self._lock:
            return [timer.deadline for timer in self.timers]

    def fire_all(self) -> int:
        """Run every timer set so far; timers they set wait for the next call. Returns how many ran."""
        with self._lock:
            due, self.timers = self.timers, []
        live = [timer for timer in due if not timer.cancelled]
        for timer in live:
            timer.callback()
        return len(live)

    def stop(self) -> None:
        """Like workers.Scheduler.stop: timers not yet fired never will."""
        with self._lock:
            self.stopped, self.timers = True, []
