"""The seam between the dialog and whatever thinks of an answer: an LLM or the offline intent matcher."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Action = Literal["continue", "transfer", "end"]


@dataclass(frozen=True)
class Turn:
    """One line of the conversation so far."""

    role: Literal["caller", "assistant"]
    text: str


@dataclass(frozen=True)
class BrainReply:
    """What to say, what to do next, and how sure the brain is (0..1).

    `department` names a transfer destination from the config, never a number: the dialog
    checks it against `transfer.destinations` before anything is dialled.
    """

    reply: str
    action: Action = "continue"
    confidence: float = 1.0
    department: str | None = None


class BrainError(Exception):
    """The brain could not answer in time or in shape; the dialog falls back to a human."""


class Brain(Protocol):
    """Answers one caller utterance given the conversation so far. Raises BrainError on failure."""

    def reply(self, history: Sequence[Turn], utterance: str) -> BrainReply: ...
