"""Telnyx v2 webhook events as the network produces them: ids, timestamps and per-type payloads."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

CONNECTION_ID = "2719446745612125478"


def now_iso() -> str:
    """ISO 8601 with microseconds and a Z, like `2026-03-02T22:25:27.521992Z`."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_call_control_id() -> str:
    """An opaque handle shaped like Telnyx's: `v3:` + url-safe random."""
    return "v3:" + secrets.token_urlsafe(39)


@dataclass
class Leg:
    """One call leg as the network sees it; the caller's leg is A, a transfer target is B."""

    direction: str
    from_number: str
    to_number: str
    call_session_id: str
    client_state: str | None = None
    call_control_id: str = field(default_factory=new_call_control_id)
    call_leg_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    start_time: str = field(default_factory=now_iso)
    state: str = "parked"
    machine_detection: bool = False  # the transfer that made this leg asked for answering machine detection
    park_after_unbridge: bool = False  # ...and to keep the other leg when this one ends

    def common(self) -> dict[str, Any]:
        """Fields every call event carries."""
        return {
            "call_control_id": self.call_control_id,
            "call_leg_id": self.call_leg_id,
            "call_session_id": self.call_session_id,
            "connection_id": CONNECTION_ID,
            "client_state": self.client_state,
        }

    def numbers(self) -> dict[str, Any]:
        return {"from": self.from_number, "to": self.to_number}


@dataclass(frozen=True)
class WebhookEvent:
    """One event to deliver; `envelope(attempt, url)` renders the exact JSON body."""

    event_type: str
    payload: dict[str, Any]
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    occurred_at: str = field(default_factory=now_iso)
    created_at: float = field(default_factory=time.monotonic)

    @property
    def call_control_id(self) -> str:
        return self.payload["call_control_id"]

    def envelope(self, attempt: int, delivered_to: str) -> dict[str, Any]:
        data = {
            "record_type": "event",
            "event_type": self.event_type,
            "id": self.event_id,
            "occurred_at": self.occurred_at,
            "payload": self.payload,
        }
        return {"data": data, "meta": {"attempt": attempt, "delivered_to": delivered_to}}


def initiated(leg: Leg) -> WebhookEvent:
    direction_fields = {
        "direction": leg.direction,
        "state": leg.state,
        "caller_id_name": leg.from_number,
        "start_time": leg.start_time,
        "offered_codecs": "PCMU,PCMA,G722",
        "connection_codecs": "G722,PCMU,PCMA",
        "shaken_stir_attestation": "A",
        "shaken_stir_validated": True,
        "tags": [],
        "custom_headers": [],
        "sip_headers": [],
    }
    return WebhookEvent("call.initiated", {**leg.common(), **leg.numbers(), **direction_fields})


def answered(leg: Leg) -> WebhookEvent:
    extra = {"start_time": leg.start_time, "state": "answered", "tags": [], "custom_headers": [], "sip_headers": []}
    return WebhookEvent("call.answered", {**leg.common(), **leg.numbers(), **extra})


def bridged(leg: Leg) -> WebhookEvent:
    return WebhookEvent("call.bridged", {**leg.common(), **leg.numbers()})


def speak_started(leg: Leg) -> WebhookEvent:
    return WebhookEvent("call.speak.started", leg.common())


def speak_ended(leg: Leg, status: str) -> WebhookEvent:
    return WebhookEvent("call.speak.ended", {**leg.common(), "status": status})


def transcription(leg: Leg, transcript: str, confidence: float) -> WebhookEvent:
    data = {"transcript": transcript, "confidence": confidence, "is_final": True}
    return WebhookEvent("call.transcription", {**leg.common(), "transcription_data": data})


def dtmf_received(leg: Leg, digit: str) -> WebhookEvent:
    return WebhookEvent("call.dtmf.received", {**leg.common(), **leg.numbers(), "digit": digit})


def hangup(leg: Leg, cause: str, source: str) -> WebhookEvent:
    extra = {
        "start_time": leg.start_time,
        "state": "hangup",
        "hangup_cause": cause,
        "hangup_source": source,
        "sip_hangup_cause": "unspecified",
        "tags": [],
        "call_quality_stats": None,
    }
    return WebhookEvent("call.hangup", {**leg.common(), **leg.numbers(), **extra})


def machine_detection_ended(leg: Leg, result: str) -> WebhookEvent:
    """Answering machine detection's verdict on a leg: human, machine or not_sure."""
    return WebhookEvent("call.machine.detection.ended", {**leg.common(), **leg.numbers(), "result": result})


def recording_saved(leg: Leg, started_at: str) -> WebhookEvent:
    """A recording's file is ready; the URLs are made up and lead nowhere."""
    urls = {"mp3": f"https://recordings.example.invalid/{leg.call_leg_id}.mp3"}
    payload = {**leg.common(), "channels": "dual", "recording_started_at": started_at, "recording_ended_at": now_iso(),
               "recording_urls": urls, "public_recording_urls": urls}
    return WebhookEvent("call.recording.saved", payload)
