"""Check a finished call against its scenario's `expect:` block, using only what the fake Telnyx saw
(plus the service's call log for `message_taken`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.carrier import SimCall
from simulator.fake_telnyx import RequestRecord


@dataclass(frozen=True)
class Check:
    """One expectation and whether the call met it; `skipped` checks neither pass nor fail the run."""

    name: str
    passed: bool
    detail: str
    skipped: bool = False


@dataclass(frozen=True)
class CallView:
    """Everything an expectation may look at for one call."""

    call: SimCall
    requests: list[RequestRecord]
    call_log_path: str | None = None

    @property
    def said(self) -> list[str]:
        return [speech.text for speech in self.call.speeches]

    def acted(self, action: str) -> list[RequestRecord]:
        """Requests of one action that Telnyx acted on (not refused, not a dedup)."""
        return [r for r in self.requests if r.action == action and r.acted]


def outcome(call: SimCall) -> str:
    if not call.ended:
        return "still_up"
    if call.bridged_to:
        return "transferred"
    return "hung_up_by_assistant" if call.hangup_source == "callee" else "caller_hung_up"


def commands_after_hangup(view: CallView) -> int:
    """New commands for leg A that arrived after the service had acknowledged the call.hangup webhook.

    A retry of a command_id Telnyx already acted on (answered by dedup) is not a new decision, so it
    does not count.
    """
    since = view.call.hangup_acked_at or view.call.ended_at
    if since is None:
        return 0
    mine = [r for r in view.requests if r.call_control_id == view.call.call_control_id and not r.deduplicated]
    return sum(r.at > since for r in mine)


def check_call(view: CallView, expect: dict[str, Any]) -> list[Check]:
    """Every expectation in `expect`, plus the ones every call must meet (ended, no duplicate effects)."""
    wanted = {"max_duplicate_effects": 0, **expect}
    checks = [Check("call ended", view.call.ended, outcome(view.call))]
    for key, value in wanted.items():
        checks.append(CHECKS[key](view, value))
    return checks


def _outcome(view: CallView, value: str) -> Check:
    actual = outcome(view.call)
    return Check(f"outcome is {value}", actual == value, f"outcome was {actual}")


def _transferred_to(view: CallView, value: str) -> Check:
    targets = view.call.transfers
    return Check(f"transferred to {value}", bool(targets) and targets[-1] == value, f"transfer targets: {targets}")


def _transfer_attempts(view: CallView, value: int) -> Check:
    count = len(view.call.transfers)
    return Check(f"{value} transfer attempt(s)", count == value, f"{count} transfer(s)")


def _goodbye_before_hangup(view: CallView, value: bool) -> Check:
    hangups = view.acted("hangup")
    finished = [s for s in view.call.speeches if s.ended_at is not None]
    ok = bool(hangups and finished) and finished[-1].status == "completed" and finished[-1].ended_at <= hangups[0].at
    last = finished[-1].text if finished else None
    detail = f"last speech {last!r} ({finished[-1].status if finished else '-'}), hangup sent: {bool(hangups)}"
    return Check("spoke (to the end) before hanging up", ok == value, detail)


def _said_contains(view: CallView, value: list[str]) -> Check:
    said = " | ".join(view.said).lower()
    missing = [text for text in value if text.lower() not in said]
    return Check(f"assistant said {value}", not missing, f"missing: {missing}" if missing else "all present")


def _said_times(view: CallView, value: dict[str, int]) -> Check:
    counts = {text: sum(text.lower() in line.lower() for line in view.said) for text in value}
    return Check(f"assistant said exactly {value}", counts == value, f"counts: {counts}")


def _max_after_hangup(view: CallView, value: int) -> Check:
    count = commands_after_hangup(view)
    return Check(f"at most {value} command(s) after hangup", count <= value, f"{count} after the hangup was acked")


def _max_duplicate_effects(view: CallView, value: int) -> Check:
    count = view.call.duplicate_effects
    return Check(f"at most {value} duplicated effect(s)", count <= value, f"{count} duplicated effect(s)")


def _message_taken(view: CallView, value: bool) -> Check:
    if not view.call_log_path:
        return Check("message taken", True, "skipped: no call log path given", skipped=True)
    entry = wait_for_call_log_entry(view.call_log_path, view.call.call_control_id)
    if entry is None:
        return Check("message taken", False, "no call log line for this call")
    messages = entry.get("messages") or []
    name = "message taken" if value else "no message taken"
    return Check(name, bool(messages) == value, f"{len(messages)} message(s)")


def _recorded(view: CallView, value: bool) -> Check:
    """Recording started (once) only after the first speech, which carries the consent notice, had played."""
    starts = view.acted("record_start")
    notice = view.call.speeches[0] if view.call.speeches else None
    heard_first = bool(starts) and notice is not None and notice.ended_at is not None and \
        starts[0].at >= notice.ended_at
    ok = (len(starts) == 1 and heard_first) if value else not starts
    detail = f"{len(starts)} record_start, " + ("after the notice ended" if heard_first else "not after the notice")
    return Check("recorded after the notice" if value else "not recorded", ok, detail)


def _sms_sent(view: CallView, value: int) -> Check:
    sent = view.acted("messages")
    return Check("sms sent", len(sent) == value, f"{len(sent)} to {', '.join(r.body['to'] for r in sent) or 'nobody'}")


def wait_for_call_log_entry(path: str, call_control_id: str, timeout_s: float = 3.0) -> dict[str, Any] | None:
    """The service writes the line once it has processed the hangup, so give it a moment."""
    give_up = time.monotonic() + timeout_s
    while True:
        entry = find_call_log_entry(path, call_control_id)
        if entry is not None or time.monotonic() > give_up:
            return entry
        time.sleep(0.05)


def find_call_log_entry(path: str, call_control_id: str) -> dict[str, Any] | None:
    """The service's JSON-lines call log entry for one call, or None (lines about its message deliveries, which
    carry a "record" kind, are not it)."""
    log_file = Path(path)
    if not log_file.exists():
        return None
    for line in log_file.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("call_control_id") == call_control_id and "record" not in entry:
            return entry
    return None


CHECKS: dict[str, Callable[[CallView, Any], Check]] = {
    "outcome": _outcome,
    "transferred_to": _transferred_to,
    "transfer_attempts": _transfer_attempts,
    "spoke_goodbye_before_hangup": _goodbye_before_hangup,
    "assistant_said_contains": _said_contains,
    "assistant_said_times": _said_times,
    "max_commands_after_hangup": _max_after_hangup,
    "max_duplicate_effects": _max_duplicate_effects,
    "message_taken": _message_taken,
    "sms_sent": _sms_sent,
    "recorded": _recorded,
}
