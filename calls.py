"""What the service remembers about calls: each live call's state, recently ended calls, webhook ids already seen.

CallState is the same whichever store keeps it; CallRegistry and SeenEvents are the in-memory store's
(stores/memory.py), stores/redis.py keeps the same things in Redis.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from brains import Turn
from commands import Command

# How long a webhook id is remembered: Telnyx redelivers for minutes, not hours.
SEEN_TTL_S = 900
# Upper bounds on what is remembered, so a flood of ids or calls cannot exhaust memory.
MAX_SEEN_IDS = 200_000
MAX_TOMBSTONES = 100_000

# ---------------------------------------------------------------- one call

class Phase(Enum):
    RINGING = "ringing"
    CONVERSING = "conversing"
    TRANSFERRING = "transferring"
    BRIDGED = "bridged"
    TAKING_MESSAGE = "taking_message"
    ENDING = "ending"
    ENDED = "ended"


LISTENING = (Phase.CONVERSING, Phase.TAKING_MESSAGE)


@dataclass
class TurnRecord:
    """One caller turn as the call log shows it."""

    transcript: str
    asr_confidence: float | None
    received_at: float
    brain_confidence: float | None = None
    action: str | None = None
    reply: str | None = None
    responded_at: float | None = None  # when the first speak after the transcript went out
    last_spoke_at: float | None = None  # ...and the last
    held_at: float | None = None  # when the holding phrase went out, if the reply was slow enough to need it
    sentences: int = 0  # sentences of a streamed reply sent as speaks
    output_tokens: int | None = None  # as the model server counted them, when it did
    barged_in: bool = False  # the caller spoke over this turn's reply
    event_id: str = ""  # the transcript webhook's id: that webhook arriving again must not stop its own reply


@dataclass
class CallState:
    call_control_id: str
    caller: str = ""
    called: str = ""  # the business number the caller dialled
    after_hours: bool = False  # the business was closed when the call came in (business.open, closed_on)
    started_at: float = 0.0
    phase: Phase = Phase.RINGING
    initiated: bool = False  # its call.initiated was handled (answered once, whatever redeliveries say)
    answered: bool = False  # its call.answered was seen, possibly before its call.initiated
    ai: bool = True
    speaking: int = 0  # speeches sent and not yet ended: the last `speaking` of them, since speech queues
    last_speech: int = 0  # the number of the latest speech, sent as its client_state tag
    speech_echoed: bool = False  # Telnyx echoed a tag: an untagged call.speak.ended is then not ours
    after_speech: Command | None = None
    low_confidence_streak: int = 0
    silence_token: int = 0
    speech_token: int = 0
    stale_speech_ends: int = 0  # untagged call.speak.ended of stopped speech still to come (no echo seen)
    silence_reprompted: bool = False
    transfer_attempted: bool = False
    transfer_destination: str | None = None
    recording: str = "off"  # off, pending (the notice is playing), on, declined (the caller said no)
    notice_speech: int = 0  # the number of the speech carrying the recording notice
    recording_url: str | None = None
    person_on_leg: bool = False  # answering machine detection said the transfer leg is a person (or not sure)
    outcome: str = "caller_hung_up"
    escalation_reason: str | None = None
    history: list[Turn] = field(default_factory=list)
    turns: list[TurnRecord] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)  # outbox ids of the messages' deliveries
    last_event_at: float = 0.0
    # The streamed reply being spoken (dialog.on_brain_streamed): its sentences, the number of its first
    # speech, and the decision the model made while writing it, applied once it is written.
    reply_sentences: list[str] = field(default_factory=list)
    reply_first_speech: int = 0
    reply_action: str | None = None
    reply_department: str | None = None


# ---------------------------------------------------------------- many calls


class SeenEvents:
    """Remembers webhook ids for a while, so a redelivery is recognised and dropped."""

    def __init__(
        self, ttl_s: float = SEEN_TTL_S, max_entries: int = MAX_SEEN_IDS, clock: Callable[[], float] = time.monotonic
    ):
        self.ttl_s, self.max_entries, self.clock = ttl_s, max_entries, clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, event_id: str) -> bool:
        """True exactly once per id, even when duplicates arrive concurrently."""
        now = self.clock()
        with self._lock:
            self._forget_old(now)
            if event_id in self._seen:
                return False
            self._seen[event_id] = now
            return True

    def _forget_old(self, now: float) -> None:
        while self._seen:
            oldest_id, seen_at = next(iter(self._seen.items()))
            if now - seen_at < self.ttl_s and len(self._seen) < self.max_entries:
                return
            del self._seen[oldest_id]


class CallRegistry:
    """Live calls keyed by call_control_id, plus tombstones so late events for an ended call are ignored."""

    def __init__(self, max_call_age_s: float, clock: Callable[[], float] = time.time):
        self.max_call_age_s, self.clock = max_call_age_s, clock
        self._live: dict[str, CallState] = {}
        self._ended: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, call_control_id: str) -> CallState | None:
        with self._lock:
            return self._live.get(call_control_id)

    def open(self, call_control_id: str) -> CallState | None:
        """The call's state, created on first sight; None when the call has already ended."""
        with self._lock:
            if call_control_id in self._ended:
                return None
            state = self._live.get(call_control_id)
            if state is None:
                state = CallState(call_control_id, started_at=self.clock())
                self._live[call_control_id] = state
            return state

    def close(self, call_control_id: str) -> None:
        """Forget a finished call; remember for a while that it ended."""
        with self._lock:
            self._live.pop(call_control_id, None)
            self._ended[call_control_id] = self.clock()
            self._forget_old_tombstones()

    def has_ended(self, call_control_id: str) -> bool:
        with self._lock:
            return call_control_id in self._ended

    def is_live(self, call_control_id: str) -> bool:
        with self._lock:
            return call_control_id in self._live

    def known(self, call_control_id: str) -> bool:
        """Live or recently ended: either way, its events are this call's own."""
        with self._lock:
            return call_control_id in self._live or call_control_id in self._ended

    def snapshot(self, limit: int) -> list[CallState]:
        """Up to `limit` live calls, oldest first, for the operator page (read only)."""
        with self._lock:
            states = sorted(self._live.values(), key=lambda state: state.started_at)
        return states[:limit]

    def expired(self) -> list[str]:
        """Calls older than the limit, whose hangup presumably never arrived."""
        cutoff = self.clock() - self.max_call_age_s
        with self._lock:
            return [cid for cid, state in self._live.items() if state.started_at < cutoff]

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    def _forget_old_tombstones(self) -> None:
        cutoff = self.clock() - self.max_call_age_s
        while self._ended and (next(iter(self._ended.values())) < cutoff or len(self._ended) > MAX_TOMBSTONES):
            self._ended.popitem(last=False)
