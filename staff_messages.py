"""A message a caller leaves for the staff, and what each way of delivering it carries.

Pure: the SMS text and the webhook's JSON are built from a StaffMessage; `outbox.py` stores and retries the
deliveries, `message_senders.py` sends them. Phone numbers are not masked here: staff need them to call back.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

# An SMS of this many characters is already several segments; the webhook carries the whole message.
MAX_SMS_MESSAGE_CHARS = 800
WEBHOOK_EVENT_TYPE = "message.taken"
_NAME_WORD = r"[A-Z][a-zA-Z'-]{1,30}"
# Only the lead-ins that introduce a name; "I'm" too often precedes anything else ("I'm Sorry").
_NAME = re.compile(rf"\b(?i:my name is|my name's|this is)\s+({_NAME_WORD}(?:\s+{_NAME_WORD})?)")


@dataclass(frozen=True)
class StaffMessage:
    """What the caller said, who called which number, when, and on which call."""

    call_control_id: str
    caller: str  # the caller's number, E.164 as Telnyx gives it, or "" when withheld
    called: str  # the business number the caller dialled
    text: str
    taken_at: float
    business: str
    caller_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def caller_name(text: str) -> str | None:
    """A name the caller gave ("this is Jane Doe", "my name is Omar"), when the recogniser capitalised one."""
    match = _NAME.search(text)
    return match.group(1) if match else None


def _when(message: StaffMessage) -> str:
    return datetime.fromtimestamp(message.taken_at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def sms_text(message: StaffMessage) -> str:
    """The SMS a staff member receives: who, when, what, and the call id to find it in the call log."""
    who = message.caller or "a withheld number"
    if message.caller_name:
        who = f"{message.caller_name} ({who})"
    text = message.text
    if len(text) > MAX_SMS_MESSAGE_CHARS:
        text = text[: MAX_SMS_MESSAGE_CHARS - 1] + "…"
    return f"{message.business}: message from {who} at {_when(message)}: \"{text}\" (call {message.call_control_id})"


def webhook_payload(message: StaffMessage, delivery_id: str) -> dict[str, Any]:
    """The webhook's JSON, Standard Webhooks style: a type, a timestamp and the data."""
    return {
        "type": WEBHOOK_EVENT_TYPE,
        "timestamp": datetime.fromtimestamp(message.taken_at, UTC).isoformat(),
        "data": {
            "id": delivery_id,
            "call_control_id": message.call_control_id,
            "business": message.business,
            "caller": message.caller or None,
            "caller_name": message.caller_name,
            "called": message.called or None,
            "message": message.text,
            "taken_at": datetime.fromtimestamp(message.taken_at, UTC).isoformat(),
        },
    }
