"""A call's state and its queued events as JSON text, for a store outside the process (stores/redis.py).

Only translates: `load_*(dump_*(x)) == x`. Commands are tagged with their class name, events with a kind.

During a rolling deploy two versions share one Redis: a field this version does not know (written by a newer
one) is dropped on reading, with one warning per set of unknown names, and a field missing (written by an
older one) takes its default. So adding a field with a default never strands a call; renaming or removing
one, or adding one without a default, needs a release that reads both shapes first.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, fields
from typing import Any, get_args

from brains import Turn
from calls import CallState, Phase, TurnRecord
from commands import Command
from events import CallEvent, CallExpired, LegEvent, TimerFired
from stores import QueuedEvent

COMMANDS: dict[str, type] = {kind.__name__: kind for kind in get_args(Command)}

log = logging.getLogger(__name__)
_unknown_seen: set[tuple[str, frozenset[str]]] = set()


class CorruptRecord(ValueError):
    """Stored text that is not what this codec wrote."""


def dump_state(state: CallState) -> str:
    data = {field.name: getattr(state, field.name) for field in fields(CallState)}
    data["phase"] = state.phase.value
    data["after_speech"] = _dump_command(state.after_speech)
    data["history"] = [asdict(turn) for turn in state.history]
    data["turns"] = [asdict(turn) for turn in state.turns]
    return _dumps(data)


def load_state(text: str | bytes) -> CallState:
    data = _loads(text)
    try:
        data["phase"] = Phase(data["phase"])
        data["after_speech"] = _load_command(data["after_speech"])
        data["history"] = [_build(Turn, turn) for turn in data["history"]]
        data["turns"] = [_build(TurnRecord, turn) for turn in data["turns"]]
        return _build(CallState, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptRecord(f"call state: {exc}") from exc


def dump_event(event: QueuedEvent) -> str:
    return _dumps(_event_data(event))


def load_event(text: str | bytes) -> QueuedEvent:
    data = _loads(text)
    try:
        return _event_from(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptRecord(f"queued event: {exc}") from exc


def _event_data(event: QueuedEvent) -> dict[str, Any]:
    if isinstance(event, CallEvent):
        return {"kind": "webhook", **_webhook(event)}
    if isinstance(event, LegEvent):
        return {"kind": "leg", "event": _webhook(event.event)}
    if isinstance(event, TimerFired):
        return {"kind": "timer", "name": event.name, "token": event.token}
    if isinstance(event, CallExpired):
        return {"kind": "expired"}
    raise TypeError(f"{type(event).__name__} is never queued")


def _webhook(event: CallEvent) -> dict[str, Any]:
    """Field by field: `asdict` would deep-copy the payload, recursing as deep as the sender nested it."""
    return {field.name: getattr(event, field.name) for field in fields(CallEvent)}


def _event_from(data: dict[str, Any]) -> QueuedEvent:
    kind = data.pop("kind")
    if kind == "webhook":
        return _build(CallEvent, data)
    if kind == "leg":
        return LegEvent(_build(CallEvent, data["event"]))
    if kind == "timer":
        return TimerFired(data["name"], data["token"])
    if kind == "expired":
        return CallExpired()
    raise ValueError(f"unknown kind {kind!r}")


def _dump_command(command: Command | None) -> dict[str, Any] | None:
    return None if command is None else {"type": type(command).__name__, **asdict(command)}


def _load_command(data: dict[str, Any] | None) -> Command | None:
    if data is None:
        return None
    return _build(COMMANDS[data.pop("type")], data)


def _build(kind: type, data: dict[str, Any]):
    """kind(**data) without the keys `kind` does not have (a newer version wrote them): see the docstring."""
    known = {field.name for field in fields(kind)}
    unknown = frozenset(data) - known
    if unknown:
        if (kind.__name__, unknown) not in _unknown_seen:
            _unknown_seen.add((kind.__name__, unknown))
            log.warning("%s stored by a newer version: ignoring %s", kind.__name__, ", ".join(sorted(unknown)))
        data = {key: value for key, value in data.items() if key in known}
    return kind(**data)


def _dumps(data: dict[str, Any]) -> str:
    # allow_nan: a webhook's 1e400 parses as inf, and Python's json reads back what it writes here.
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _loads(text: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CorruptRecord(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CorruptRecord("not a JSON object")
    return data
