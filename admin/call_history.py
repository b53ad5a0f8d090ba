"""What the operator page reads about finished calls: the call log's newest lines, and the messages callers left.

The call log (call_log.py) is the record: transcripts there are already masked as configured. Only its last
TAIL_BYTES are read, so a log of years costs the page no more than one of a day; a line that is not a call
record (cut by a crash, edited by hand) is skipped. With several instances, each reads the log on its own
disk: give them one shared `call_log.path`, or read the page on each.

A message is one entry of a record's `messages`. Whether someone called the caller back is kept in the store's
shared values (one key per message), so every worker and instance sees the mark; the message's delivery by
SMS or webhook can add its status beside it (`Message.delivery`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from stores import SharedValues

log = logging.getLogger(__name__)

TAIL_BYTES = 4 * 1024 * 1024


def recent_calls(path: str | None, limit: int = 500) -> list[dict[str, Any]]:
    """The newest `limit` call records, newest first; [] without a call log."""
    if not path:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read()
    except FileNotFoundError:
        return []
    except OSError:
        log.exception("admin: cannot read the call log %s", path)
        return []
    lines = tail.split(b"\n")
    if size > TAIL_BYTES:
        lines = lines[1:]  # the first line is probably cut
    records = [record for record in map(_record, reversed(lines)) if record is not None]
    return records[:limit]


def _record(line: bytes) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    # Lines with a "record" kind (a recording saved after the call, a message delivery's status) are not calls.
    if not isinstance(record, dict) or not isinstance(record.get("call_control_id"), str) or "record" in record:
        return None
    record["turns"] = [_turn(turn) for turn in _list(record.get("turns")) if isinstance(turn, dict)]
    record["messages"] = [text for text in _list(record.get("messages")) if isinstance(text, str)]
    for key in ("caller", "started_at", "ended_at", "outcome", "transferred_to", "escalation_reason"):
        record[key] = _text(record.get(key))
    return record


def _turn(turn: dict[str, Any]) -> dict[str, Any]:
    """A turn with every field the page shows, whatever an older or hand-edited line lacks."""
    return {"transcript": _text(turn.get("transcript")) or "", "reply": _text(turn.get("reply")),
            "action": _text(turn.get("action")), "asr_confidence": _number(turn.get("asr_confidence")),
            "response_ms": _number(turn.get("response_ms"))}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def find_call(records: list[dict[str, Any]], call_control_id: str) -> dict[str, Any] | None:
    return next((record for record in records if record["call_control_id"] == call_control_id), None)


@dataclass(frozen=True)
class Message:
    key: str  # "<call_control_id>#<index in the record's messages>"
    call_control_id: str
    caller: str
    left_at: str
    text: str
    called_back_at: float | None = None
    delivery: str | None = None  # how it was passed on (SMS, webhook), once that exists


def messages(records: list[dict[str, Any]], marks: SharedValues) -> list[Message]:
    """Every message in `records`, newest first, with its called-back mark."""
    found = []
    for record in records:
        for index, text in enumerate(record["messages"]):
            key = f"{record['call_control_id']}#{index}"
            found.append(Message(key, record["call_control_id"], str(record.get("caller") or "unknown"),
                                 str(record.get("ended_at") or ""), text, called_back_at(marks, key)))
    return found


def _mark_name(key: str) -> str:
    return f"called_back:{key}"


def called_back_at(marks: SharedValues, key: str) -> float | None:
    stored = marks.get(_mark_name(key))
    return json.loads(stored)["at"] if stored else None


def mark_called_back(marks: SharedValues, key: str, clock=time.time) -> None:
    marks.put(_mark_name(key), json.dumps({"at": clock()}))
