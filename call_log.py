"""One JSON line per finished call: what was said, how sure everyone was, and how it ended."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from call_state import CallState, TurnRecord
from redact import mask_number, redact_text

log = logging.getLogger(__name__)


def build_record(state: CallState, ended_at: float, redact: bool = True) -> dict[str, Any]:
    """The call log entry for a finished call; transcripts redacted when asked."""
    clean = redact_text if redact else (lambda text: text)
    return {
        "call_control_id": state.call_control_id,
        "caller": mask_number(state.caller),
        "started_at": _iso(state.started_at),
        "ended_at": _iso(ended_at),
        "outcome": state.outcome,
        "ai": state.ai,
        "transferred_to": state.transfer_destination if state.outcome == "transferred" else None,
        "escalation_reason": _maybe(clean, state.escalation_reason),
        "turns": [_turn(turn, clean) for turn in state.turns],
        "messages": [clean(message) for message in state.messages],
    }


def _turn(turn: TurnRecord, clean) -> dict[str, Any]:
    latency = None
    if turn.responded_at is not None and turn.received_at:
        latency = round((turn.responded_at - turn.received_at) * 1000, 1)
    return {
        "transcript": clean(turn.transcript),
        "asr_confidence": turn.asr_confidence,
        "brain_confidence": turn.brain_confidence,
        "action": turn.action,
        "reply": _maybe(clean, turn.reply),
        "response_ms": latency,
    }


def _maybe(clean, text: str | None) -> str | None:
    # The assistant's replies and failure reasons can quote the caller (a model repeating a number
    # back, a model error quoting its own output), so they are masked like transcripts.
    return clean(text) if text is not None else None


def _iso(timestamp: float) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp else None


class CallLog:
    """Appends records to a JSON-lines file; a failed write is logged, never raised into the call."""

    def __init__(self, path: str | None):
        self.path = path
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        if not self.path:
            return
        line = json.dumps(record, ensure_ascii=False) + "\n"
        try:
            with self._lock, open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
        except OSError:
            log.exception("call=%s could not write the call log", record.get("call_control_id"))
