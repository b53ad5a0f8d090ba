"""One JSON line per finished call: what was said, how sure everyone was, and how it ended.

Phone numbers and other personal data are masked here, before anything is written.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import UTC, datetime
from typing import Any

from calls import CallState, TurnRecord

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
        "after_hours": state.after_hours,
        "transferred_to": state.transfer_destination if state.outcome == "transferred" else None,
        "escalation_reason": _maybe(clean, state.escalation_reason),
        "turns": [_turn(turn, clean) for turn in state.turns],
        "messages": [clean(message) for message in state.messages],
        "recording": state.recording,
        "recording_url": state.recording_url,
    }


def _turn(turn: TurnRecord, clean) -> dict[str, Any]:
    return {
        "transcript": clean(turn.transcript),
        "asr_confidence": turn.asr_confidence,
        "brain_confidence": turn.brain_confidence,
        "action": turn.action,
        "reply": _maybe(clean, turn.reply),
        "response_ms": _since(turn, turn.responded_at),
        "last_speak_ms": _since(turn, turn.last_spoke_at),
        "holding_ms": _since(turn, turn.held_at),
        "sentences": turn.sentences,
        "output_tokens": turn.output_tokens,
        "barged_in": turn.barged_in,
    }


def _since(turn: TurnRecord, moment: float | None) -> float | None:
    """Milliseconds from the caller's final transcript to `moment`."""
    if moment is None or not turn.received_at:
        return None
    return round((moment - turn.received_at) * 1000, 1)


def _maybe(clean, text: str | None) -> str | None:
    # The assistant's replies and failure reasons can quote the caller (a model repeating a number
    # back, a model error quoting its own output), so they are masked like transcripts.
    return clean(text) if text is not None else None


def _iso(timestamp: float) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp else None


# ---------------------------------------------------------------- masking

# Matches start only where a run of address characters starts, so a long word without '@' costs one scan,
# not one scan per character (a model can answer with kilobytes of text).
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(\.[\w-]+)+")
# Between the digits of a number people and models write spaces, dots, dashes (also en and em dashes),
# commas, slashes and brackets, up to three in a row ("555 - 867 - 5309").
_SEPARATOR = r"[\s().,/\u2010-\u2015-]"
# A phone number or card-like run: 7+ digits with separators between them.
_DIGIT_RUN = re.compile(rf"\+?\d(?:{_SEPARATOR}{{0,3}}\d){{6,}}")
# Speech recognition may write digits read one by one as words: "five five five, eight six seven ...".
_DIGIT_WORDS = "zero|oh|one|two|three|four|five|six|seven|eight|nine"
_SPOKEN_TOKEN = rf"(?:{_DIGIT_WORDS}|\d+)\b"
_SPOKEN_RUN = re.compile(rf"\b(?:{_SPOKEN_TOKEN}{_SEPARATOR}{{1,3}}){{2,}}{_SPOKEN_TOKEN}", re.IGNORECASE)
_SPOKEN_DIGITS = re.compile(rf"{_DIGIT_WORDS}|\d+", re.IGNORECASE)


def mask_number(number: str | None) -> str:
    """'+13125550111' -> '+1********11': enough to tell calls apart in a log, not enough to dial."""
    if not number:
        return "unknown"
    digits = number.strip()
    if len(digits) <= 4:
        return "*" * len(digits)
    return digits[:2] + "*" * (len(digits) - 4) + digits[-2:]


def redact_text(text: str) -> str:
    """Replace emails and long digit runs (phones, cards, account numbers), written or spoken, in free text."""
    text = _EMAIL.sub("[email]", text)
    text = _SPOKEN_RUN.sub(_mask_spoken, text)
    return _DIGIT_RUN.sub("[number]", text)


def _mask_spoken(match: re.Match) -> str:
    # Count digits, not words: "555 eight six seven 5309" is ten digits in five words. Runs of written
    # digits only are left to _DIGIT_RUN, which also takes a leading "+".
    tokens = _SPOKEN_DIGITS.findall(match.group())
    if all(token.isdigit() for token in tokens):
        return match.group()
    digits = sum(len(token) if token.isdigit() else 1 for token in tokens)
    return "[number]" if digits >= 7 else match.group()


# ---------------------------------------------------------------- the file

# Characters some readers end a line at (Python's str.splitlines, JavaScript, log shippers) that json.dumps
# leaves raw with ensure_ascii=False; the other line breaks are control characters, which it always escapes.
_RAW_LINE_BREAKS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(record: dict[str, Any]) -> str:
    """One record as one line for every reader: UTF-8 JSON with every character that can break a line escaped."""
    return json.dumps(record, ensure_ascii=False).translate(_RAW_LINE_BREAKS) + "\n"


class CallLog:
    """Appends records to a JSON-lines file; a failed write is logged, never raised into the call."""

    def __init__(self, path: str | None):
        self.path = path
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        if not self.path:
            return
        line = json_line(record)
        try:
            with self._lock, open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
        except OSError:
            log.exception("call=%s could not write the call log", record.get("call_control_id"))
