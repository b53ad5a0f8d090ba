"""Render one simulated call as a readable transcript with millisecond timings from the call's start."""

from __future__ import annotations

from simulator.carrier import SimCall
from simulator.expectations import Check
from simulator.fake_telnyx import RequestRecord

LABELS = {"caller": "caller   ", "assistant": "assistant", "dtmf": "caller   ", "network": "network  "}


def render(title: str, call: SimCall, requests: list[RequestRecord], checks: list[Check], notes: list[str],
           description: str = "") -> str:
    """Timeline (caller, assistant, network, commands), then notes and expectation results."""
    lines = [f"=== {title}  ({call.call_control_id[:14]}...)"] + ([f"    {description}"] if description else [])
    entries = [(m.at, f"{LABELS.get(m.kind, m.kind)}  {m.text}") for m in call.timeline]
    entries += [(r.at, f"  -> {_command(r)}") for r in requests]
    for at, text in sorted(entries, key=lambda item: item[0]):
        lines.append(f"  {(at - call.started_at) * 1000:8.0f} ms  {text}")
    lines += [f"  note: {note}" for note in notes]
    lines += [f"  [{_mark(check)}] {check.name}: {check.detail}" for check in checks]
    return "\n".join(lines)


def _command(record: RequestRecord) -> str:
    result = "ok" if record.status == 200 else f"{record.status} {record.code}"
    extras = [x for x in ("dedup" if record.deduplicated else "", f"fault {record.fault}" if record.fault else "") if x]
    summary = _body_summary(record)
    return f"{record.action}{summary} -> {result}{' (' + ', '.join(extras) + ')' if extras else ''}"


def _body_summary(record: RequestRecord) -> str:
    body = record.body if isinstance(record.body, dict) else {}
    if record.action == "speak":
        return f" ({len(str(body.get('payload', '')))} chars)"
    if record.action == "transfer":
        return f" to {body.get('to')}"
    if record.action == "messages":
        return f" SMS from {body.get('from')} to {body.get('to')}: {str(body.get('text', ''))[:90]}..."
    if record.action == "playback_stop":
        return f" stop={body.get('stop', 'all')}"
    return ""


def _mark(check: Check) -> str:
    if check.skipped:
        return "skip"
    return " ok " if check.passed else "FAIL"
