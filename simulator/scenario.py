"""Scenario files: who calls, what they say or press, when they hang up, and what the call must end with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from simulator.carrier import TransferPlan

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
STEP_KINDS = ("say", "dtmf", "wait_s", "hangup")
EXPECT_KEYS = frozenset({
    "outcome", "transferred_to", "spoke_goodbye_before_hangup", "assistant_said_contains",
    "assistant_said_times", "max_commands_after_hangup", "message_taken", "max_duplicate_effects",
    "transfer_attempts", "sms_sent", "recorded",
})
SERVICES = ("default", "after_hours", "recording")  # which service a scenario calls (simulator/service.py)


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file and the problem."""


@dataclass(frozen=True)
class Step:
    """One thing the caller does once the assistant has finished its turn (or, for barge-in, during it).

    Times are in scenario seconds, multiplied by the run's speed factor like speech durations.
    `after_failed_transfer` makes the caller wait for a transfer to fail first (and the assistant to
    speak after it), as a caller on hold would.
    """

    kind: str
    text: str = ""
    confidence: float = 0.95
    pause_s: float = 0.3
    during_speech: bool = False
    after_s: float = 0.5
    after_failed_transfer: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    from_number: str = "+13125550111"
    to_number: str = "+13125550100"
    steps: tuple[Step, ...] = ()
    transfer: TransferPlan = field(default_factory=TransferPlan)
    expect: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 60.0
    service: str = "default"  # one of SERVICES: the demo's service, or one set up differently (service.py)


def load_scenario(path: str | Path) -> Scenario:
    """Parse and check one scenario file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return parse_scenario(raw, default_name=path.stem)
    except (OSError, yaml.YAMLError, ScenarioError, TypeError, ValueError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc


def all_scenario_paths(directory: Path = SCENARIO_DIR) -> list[Path]:
    return sorted(directory.glob("*.yml"))


def parse_scenario(raw: Any, default_name: str = "scenario") -> Scenario:
    if not isinstance(raw, dict):
        raise ScenarioError("a scenario is a mapping")
    expect = raw.get("expect") or {}
    unknown = set(expect) - EXPECT_KEYS
    if unknown:
        raise ScenarioError(f"unknown expect keys: {sorted(unknown)}")
    return Scenario(
        name=str(raw.get("name", default_name)),
        description=str(raw.get("description", "")).strip(),
        from_number=str(raw.get("from", "+13125550111")),
        to_number=str(raw.get("to", "+13125550100")),
        steps=tuple(parse_step(item) for item in raw.get("caller") or []),
        transfer=TransferPlan(**(raw.get("transfer") or {})),
        expect=dict(expect),
        timeout_s=float(raw.get("timeout_s", 60.0)),
        service=_service(raw.get("service", "default")),
    )


def _service(name: Any) -> str:
    if name not in SERVICES:
        raise ScenarioError(f"service must be one of {', '.join(SERVICES)}, got {name!r}")
    return name


def parse_step(item: Any) -> Step:
    """`{say: text, confidence, pause_s}`, `{dtmf: "0"}`, `{wait_s: 2}`, `{hangup: {during_speech, after_s}}`."""
    if not isinstance(item, dict):
        raise ScenarioError(f"a caller step is a mapping, got {item!r}")
    kinds = [k for k in STEP_KINDS if k in item]
    if len(kinds) != 1:
        raise ScenarioError(f"a caller step needs exactly one of {STEP_KINDS}: {item!r}")
    kind = kinds[0]
    known = ("confidence", "pause_s", "during_speech", "after_s", "after_failed_transfer")
    options = {k: v for k, v in item.items() if k in known}
    if kind == "hangup":
        options.update(item["hangup"] or {})
        return Step("hangup", **options)
    if kind == "wait_s":
        return Step("wait_s", pause_s=float(item["wait_s"]))
    return Step(kind, text=str(item[kind]), **options)
