"""Webhook envelopes turned into small typed events; nothing here trusts more than it checked."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

# Names the service gives its own events (commands.py) and transfer-leg events ("leg." + type, receptionist.py).
# They share the dialog's handler table with webhooks, and their handlers read fields a webhook does not have.
INTERNAL_EVENT_TYPES = frozenset(
    {"brain.replied", "brain.failed", "timer.fired", "speak.failed", "transfer.failed", "call.expired"}
)
LEG_PREFIX = "leg."


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
    def call_session_id(self) -> str | None:
        return _text(self.payload.get("call_session_id"))

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
    if event_type in INTERNAL_EVENT_TYPES or event_type.startswith(LEG_PREFIX):
        raise BadEvent("data.event_type is reserved for the service's own events")
    event_id = _text(data.get("id")) or ""
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


def encode_client_state(text: str) -> str:
    """client_state must be base64 on the wire."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _text(value: Any) -> str | None:
    """A non-empty string of sane length, or None."""
    if isinstance(value, str) and 0 < len(value) <= 512:
        return value
    return None
