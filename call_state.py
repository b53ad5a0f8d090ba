"""What the service remembers about one call while it lasts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from brain import Turn
from commands import Command

# ---------------------------------------------------------------- state


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
    responded_at: float | None = None


@dataclass
class CallState:
    call_control_id: str
    caller: str = ""
    started_at: float = 0.0
    phase: Phase = Phase.RINGING
    ai: bool = True
    speaking: int = 0
    after_speech: Command | None = None
    low_confidence_streak: int = 0
    silence_token: int = 0
    speech_token: int = 0
    stale_speech_ends: int = 0
    silence_reprompted: bool = False
    transfer_attempted: bool = False
    transfer_destination: str | None = None
    outcome: str = "caller_hung_up"
    escalation_reason: str | None = None
    history: list[Turn] = field(default_factory=list)
    turns: list[TurnRecord] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    last_event_at: float = 0.0
