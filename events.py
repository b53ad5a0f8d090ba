"""Everything the dialog reacts to: webhooks turned into typed events, and the events the service raises itself.

Nothing here trusts more than it checked. Webhook types are Telnyx's (`call.answered`); the service's own
events carry names of their own, and a webhook that uses one of them is refused (`RESERVED_EVENT_TYPES`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from brains import BrainReply, ReplyPart
from commands import Command

# Longest id or type a webhook may carry; anything longer is not something Telnyx sends.
MAX_ID_CHARS = 512
# Starts the client_state the service gives a transfer leg, so the leg's webhooks find the call they came from.
TRANSFER_TAG = "xfer:"
# Starts the client_state of each speak, followed by the speech's number on its call: Telnyx echoes it in the
# speak's webhooks, so a call.speak.ended can be matched to the speech it ends (dialog.on_speak_ended).
SPEECH_TAG = "speak:"
MAX_SPEECH_TAG_DIGITS = 9


class BadEvent(ValueError):
    """The body is not a usable Telnyx v2 webhook; the message is safe to return to the sender."""


@dataclass(frozen=True)
class CallEvent:
    """One webhook: what happened, to which call leg, and the event's own payload."""

    event_id: str
    event_type: str
    call_control_id: str
    payload: dict[str, Any] = field(repr=False)
    occurred_at: str = ""
    received_at: float = 0.0

    @property
    def client_state(self) -> str | None:
        """The decoded client_state, or None when absent or not valid base64 UTF-8."""
        raw = self.payload.get("client_state")
        if not isinstance(raw, str) or not raw:
            return None
        try:
            return base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None

    @property
    def transferred_from(self) -> str | None:
        """For a transfer leg's webhook, the call_control_id of the call it was transferred from."""
        state = self.client_state
        origin = state.removeprefix(TRANSFER_TAG) if state and state.startswith(TRANSFER_TAG) else None
        return origin if origin and origin != self.call_control_id else None

    @property
    def speech_tag(self) -> int | None:
        """The number of the speech this service tagged, when client_state carries one (speech_client_state)."""
        state = self.client_state
        number = state.removeprefix(SPEECH_TAG) if state and state.startswith(SPEECH_TAG) else ""
        if not (number.isascii() and number.isdigit()) or len(number) > MAX_SPEECH_TAG_DIGITS:
            return None
        return int(number)


# ---------------------------------------------------------------- the service's own events


@dataclass(frozen=True)
class LegEvent:
    """A webhook about the transfer leg (B), delivered to the call it was transferred from (A)."""

    PREFIX: ClassVar[str] = "leg."
    event: CallEvent

    @property
    def event_type(self) -> str:
        return self.PREFIX + self.event.event_type

    @property
    def event_id(self) -> str:
        return self.event.event_id


@dataclass(frozen=True)
class BrainReplied:
    event_type: ClassVar[str] = "brain.replied"
    reply: BrainReply


@dataclass(frozen=True)
class BrainStreamed:
    """The next part of a reply still being written (a sentence, a decision, its end); decided on at once."""

    event_type: ClassVar[str] = "brain.streamed"
    part: ReplyPart


@dataclass(frozen=True)
class BrainFailed:
    event_type: ClassVar[str] = "brain.failed"
    reason: str


@dataclass(frozen=True)
class TimerFired:
    event_type: ClassVar[str] = "timer.fired"
    name: str
    token: int


@dataclass(frozen=True)
class CommandFailed:
    """Telnyx refused or never answered a command, after the client's retries."""

    event_type: ClassVar[str] = "command.failed"
    command: Command
    reason: str


@dataclass(frozen=True)
class CallExpired:
    """No hangup arrived within calls.max_call_age_s; the call is written off."""

    event_type: ClassVar[str] = "call.expired"


INTERNAL_EVENTS = (BrainReplied, BrainStreamed, BrainFailed, TimerFired, CommandFailed, CallExpired)
RESERVED_EVENT_TYPES = frozenset(kind.event_type for kind in INTERNAL_EVENTS)
Event = CallEvent | LegEvent | BrainReplied | BrainStreamed | BrainFailed | TimerFired | CommandFailed | CallExpired


# ---------------------------------------------------------------- parsing


def parse_event(raw_body: bytes, received_at: float = 0.0) -> CallEvent:
    """Parse a v2 webhook body; raise BadEvent for anything malformed."""
    body = _strict_json(raw_body)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise BadEvent("missing data object")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise BadEvent("missing data.payload object")
    event_type = _text(data.get("event_type"))
    call_control_id = _text(payload.get("call_control_id"))
    if not event_type:
        raise BadEvent("missing data.event_type")
    if not call_control_id:
        raise BadEvent("missing data.payload.call_control_id")
    if event_type in RESERVED_EVENT_TYPES or event_type.startswith(LegEvent.PREFIX):
        raise BadEvent("data.event_type is reserved for the service's own events")
    event_id = _text(data.get("id")) or fingerprint(data)
    occurred_at = _text(data.get("occurred_at")) or ""
    return CallEvent(event_id, event_type, call_control_id, payload, occurred_at, received_at)


def _strict_json(raw_body: bytes) -> Any:
    """RFC 8259 JSON in UTF-8 only: no NaN or Infinity, no lone surrogates.

    Python's json accepts all three, and each would reach code that cannot handle it: NaN slips past
    confidence comparisons, and a lone surrogate makes every later `.encode()` (command ids, URLs,
    hashes, log lines) raise in the background worker.
    """
    try:
        text = raw_body.decode("utf-8")
        body = json.loads(text, parse_constant=_refuse_constant)
        if "\\u" in text:  # only an escape can produce a lone surrogate; re-encoding finds one
            json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as exc:  # UnicodeError is a ValueError
        raise BadEvent("body is not valid JSON") from exc
    return body


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def fingerprint(data: dict[str, Any]) -> str:
    """The id of an event that came without data.id: a hash of what it says, in a canonical form.

    Only `data` counts: `meta` (the attempt number, the URL it was delivered to) changes with every
    redelivery, and key order or spacing may too, so neither may make a redelivery look like a new event.
    """
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def encode_client_state(text: str) -> str:
    """client_state must be base64 on the wire."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def transfer_client_state(call_control_id: str) -> str:
    """The client_state for the transfer leg of a call (see CallEvent.transferred_from)."""
    return encode_client_state(TRANSFER_TAG + call_control_id)


def speech_client_state(tag: int) -> str:
    """The client_state for a call's speech number `tag` (see CallEvent.speech_tag)."""
    return encode_client_state(f"{SPEECH_TAG}{tag}")


def _text(value: Any) -> str | None:
    """A non-empty string of sane length, or None."""
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS:
        return value
    return None
