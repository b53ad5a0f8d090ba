"""The Messaging half of the fake Telnyx: `POST /v2/messages`, checked as the real API checks it.

Fields are those of Telnyx's `MessageSendParams` (Telnyx Messaging API, "Send a message"): `to`
is required and must be +E.164 (or a short code), `from` must be +E.164 when no `messaging_profile_id` is
given, `text` must not be empty for an SMS. A repeated `Idempotency-Key` gets the first answer again and
sends nothing. Error codes are Telnyx's general ones (10004 missing parameter, 10015 bad request); the real
API's codes for a refused number are not documented here. Faults are planned like any action's, under the
action name "messages" (`fake.plan("messages", http_error(503))`).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from simulator.validation import BAD_REQUEST, MISSING_PARAMETER, Problem, check_field

MESSAGES_PATH = "/v2/messages"
MESSAGING_ACTION = "messages"
E164 = re.compile(r"\+[1-9]\d{6,14}")
SHORT_CODE = re.compile(r"\d{5,6}")
FIELDS = {
    "to": "string", "from": "string", "text": "string", "type": "string=SMS|MMS", "subject": "string",
    "media_urls": "array", "messaging_profile_id": "string", "webhook_url": "string",
    "webhook_failover_url": "string", "use_profile_webhooks": "boolean", "encoding": "string=auto|gsm7|ucs2",
    "auto_detect": "boolean", "send_at": "string",
}
SMS_SEGMENT_CHARS = 153  # a concatenated GSM-7 segment


@dataclass(frozen=True)
class SentMessage:
    """One message the fake accepted (a repeat under the same Idempotency-Key is not another one)."""

    id: str
    from_: str
    to: str
    text: str
    idempotency_key: str | None
    at: float  # monotonic


def validate_message(body: Any) -> Problem | None:
    """The first problem Telnyx would report for this send request, or None."""
    if not isinstance(body, dict):
        return Problem(BAD_REQUEST, "Invalid request body", "The request body must be a JSON object.", "")
    if "to" not in body:
        return Problem(MISSING_PARAMETER, "Missing required parameter", "The 'to' parameter is required.", "/to")
    for name, value in body.items():
        problem = check_field(name, value, FIELDS[name]) if name in FIELDS else None
        if problem:
            return problem
    if not (E164.fullmatch(body["to"]) or SHORT_CODE.fullmatch(body["to"])):
        return Problem(BAD_REQUEST, "Invalid 'to' address", "'to' must be a +E.164 number or a short code.", "/to")
    if "messaging_profile_id" not in body and not E164.fullmatch(str(body.get("from", ""))):
        return Problem(BAD_REQUEST, "Invalid 'from' address",
                       "'from' must be a +E.164 number when no messaging_profile_id is given.", "/from")
    if body.get("type", "SMS") == "SMS" and not str(body.get("text", "")).strip():
        return Problem(BAD_REQUEST, "Invalid 'text'", "'text' must not be empty for an SMS.", "/text")
    return None


class FakeMessaging:
    """Accepts valid send requests, once per Idempotency-Key, and remembers what was sent."""

    def __init__(self) -> None:
        self.sent: list[SentMessage] = []
        self._answers: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def send(self, body: dict[str, Any], idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
        """The answer's data, and whether it repeats an earlier answer (nothing sent)."""
        with self._lock:
            if idempotency_key and idempotency_key in self._answers:
                return self._answers[idempotency_key], True
            message = SentMessage(str(uuid.uuid4()), body.get("from", ""), body["to"], body.get("text", ""),
                                  idempotency_key, time.monotonic())
            self.sent.append(message)
            answer = _answer(message)
            if idempotency_key:
                self._answers[idempotency_key] = answer
            return answer, False


def _answer(message: SentMessage) -> dict[str, Any]:
    """The shape of MessageSendResponse's data, the fields a client reads."""
    return {
        "record_type": "message", "id": message.id, "direction": "outbound", "type": "SMS",
        "from": {"phone_number": message.from_}, "to": [{"phone_number": message.to, "status": "queued"}],
        "text": message.text, "parts": 1 + (len(message.text) - 1) // SMS_SEGMENT_CHARS,
    }
