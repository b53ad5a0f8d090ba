"""The dialog's vocabulary: commands it asks for, and the events the service raises itself.

Plain data only. `receptionist.py` turns each command into a Telnyx call, a brain call or a timer.
"""

from __future__ import annotations

from dataclasses import dataclass

from brain import BrainReply

# ---------------------------------------------------------------- commands (what to do)


@dataclass(frozen=True)
class Answer:
    pass


@dataclass(frozen=True)
class Speak:
    text: str


@dataclass(frozen=True)
class StartTranscription:
    pass


@dataclass(frozen=True)
class StopTranscription:
    pass


@dataclass(frozen=True)
class StopPlayback:
    pass


@dataclass(frozen=True)
class Transfer:
    to: str
    destination: str


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class AskBrain:
    utterance: str


@dataclass(frozen=True)
class StartTimer:
    name: str
    delay_s: float
    token: int


@dataclass(frozen=True)
class FinishCall:
    """The call is over: write its log line and forget it."""


Command = Answer | Speak | StartTranscription | StopTranscription | StopPlayback | Transfer | Hangup
Command = Command | AskBrain | StartTimer | FinishCall

# ---------------------------------------------------------------- internal events (besides webhooks)


@dataclass(frozen=True)
class BrainReplied:
    reply: BrainReply
    event_type: str = "brain.replied"


@dataclass(frozen=True)
class BrainFailed:
    reason: str
    event_type: str = "brain.failed"


@dataclass(frozen=True)
class TimerFired:
    name: str
    token: int
    event_type: str = "timer.fired"


@dataclass(frozen=True)
class SpeakFailed:
    """A speak command was refused; treated as if its speech had ended, so the call never stalls."""

    event_type: str = "speak.failed"


@dataclass(frozen=True)
class TransferFailed:
    reason: str
    event_type: str = "transfer.failed"


@dataclass(frozen=True)
class CallExpired:
    """No hangup arrived within calls.max_call_age_s; the call is written off."""

    event_type: str = "call.expired"
