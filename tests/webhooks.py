"""Webhook bodies for one call, built from the recorded fixtures: what the security and reliability suites post."""

from __future__ import annotations

import uuid
from typing import Any

from fixtures import load_fixture, with_ids

WEBHOOK = "/webhooks/telnyx"


def new_call_id() -> str:
    return f"v3:sec-{uuid.uuid4().hex}"


def event(name: str, call_control_id: str, **payload: Any) -> dict[str, Any]:
    """A fixture with a fresh data.id, moved to `call_control_id`, with payload fields overridden."""
    body = with_ids(load_fixture(name), call_control_id=call_control_id)
    body["data"]["payload"].update(payload)
    return body


def transcription(call_control_id: str, text: Any, confidence: Any = 0.93, is_final: Any = True) -> dict[str, Any]:
    data = {"transcript": text, "confidence": confidence, "is_final": is_final}
    return event("call_transcription", call_control_id, transcription_data=data)
