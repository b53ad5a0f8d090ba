"""The seam between the dialog and whatever thinks of an answer: an LLM or the offline intent matcher."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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


# ---------------------------------------------------------------- a reply streamed as it is written


@dataclass(frozen=True)
class Sentence:
    """The next complete sentence of a streamed reply, ready to be spoken."""

    text: str


# Ends what the history keeps of a reply the caller cut off: they heard what comes before it.
INTERRUPTED_MARK = "[interrupted]"

StreamedAction = Literal["transfer", "end", "take_message", "not_sure"]


@dataclass(frozen=True)
class Decision:
    """A decision the model made while replying (a tool call); the dialog applies it after the reply."""

    action: StreamedAction
    department: str | None = None


Ending = Literal["complete", "stopped", "stalled", "broken"]


@dataclass(frozen=True)
class Finished:
    """The streamed reply is over: written to its end, stopped by the service, or cut short by the model.

    A reply always ends on a complete sentence: text after the last one is dropped when the reply was
    cut short (`unspoken` counts its characters). `output_tokens` is the server's count, when it gives one.
    """

    ending: Ending
    output_tokens: int | None = None
    unspoken: int = 0


@dataclass(frozen=True)
class StillWriting:
    """No sentence yet after `ai.holding_after_s`: the caller has been waiting a while. Given at most once per
    reply, and only before its first sentence; the dialog may fill the wait (assistant.holding)."""


ReplyPart = Sentence | Decision | StillWriting | Finished


class BrainError(Exception):
    """The brain could not answer in time or in shape; the dialog falls back to a human."""


class Brain(Protocol):
    """Answers one caller utterance given the conversation so far. Raises BrainError on failure."""

    def reply(self, history: Sequence[Turn], utterance: str) -> BrainReply: ...


class ReplyStream(Protocol):
    """A reply being written. `parts` runs on the call's worker; `stop` may be called from any thread."""

    def parts(self) -> Iterator[ReplyPart]:
        """Sentences and decisions as they come, then one Finished; BrainError before the first sentence.
        A StillWriting may come first, when the first sentence is slow to arrive."""
        ...

    def stop(self) -> None:
        """Stop at once (a barge-in, a hangup): close the connection; `parts` then ends with Finished("stopped")."""
        ...


class StreamingBrain(Brain, Protocol):
    """A brain that can also stream its reply (brains.streaming)."""

    def stream(self, history: Sequence[Turn], utterance: str) -> ReplyStream: ...
