"""Run scenarios against a live service through the simulated network and judge each call."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from simulator.caller import Caller
from simulator.carrier import SimCall
from simulator.expectations import CallView, Check, check_call
from simulator.network import Network
from simulator.scenario import Scenario
from simulator.transcript import render

HANGUP_GRACE_S = 0.5  # after the hangup is acknowledged, watch a little longer for stray commands


@dataclass
class ScenarioResult:
    scenario: Scenario
    call: SimCall
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    transcript: str = ""

    @property
    def passed(self) -> bool:
        return all(check.passed or check.skipped for check in self.checks)


def run_scenario(network: Network, scenario: Scenario, call_log_path: str | None = None,
                 turn_timeout_s: float = 15.0) -> ScenarioResult:
    """Place one call, let the scripted caller play it out, then check the expectations."""
    carrier = network.carrier
    call = carrier.place_call(scenario.from_number, scenario.to_number, scenario.transfer)
    notes = Caller(carrier, call, scenario, turn_timeout_s).run(time.monotonic() + scenario.timeout_s)
    carrier.wait(lambda: call.hangup_acked_at is not None, 5.0)
    time.sleep(HANGUP_GRACE_S)
    _wait_for_messages(network, call, scenario.expect.get("sms_sent", 0))
    requests = network.fake.requests_for(call.call_control_id, *(b.call_control_id for b in call.b_legs))
    requests += messages_about(network, call.call_control_id)
    checks = check_call(CallView(call, requests, call_log_path), scenario.expect)
    result = ScenarioResult(scenario, call, checks, notes)
    result.transcript = render(scenario.name, call, requests, checks, notes, scenario.description)
    return result


def messages_about(network: Network, call_control_id: str) -> list:
    """The SMS the service sent about this call (its text names the call id), as the fake Telnyx recorded them."""
    sent = network.fake.requests_for("", action="messages")
    return [r for r in sent if isinstance(r.body, dict) and call_control_id in str(r.body.get("text", ""))]


def _wait_for_messages(network: Network, call: SimCall, expected: int, timeout_s: float = 5.0) -> None:
    """Messages are sent off the call, after it: give the outbox a moment to send the expected ones."""
    deadline = time.monotonic() + timeout_s
    while len(messages_about(network, call.call_control_id)) < expected and time.monotonic() < deadline:
        time.sleep(0.05)


def run_scenarios(network: Network, scenarios: Sequence[Scenario], call_log_path: str | None = None,
                  out: Callable[[str], None] = print, tally: bool = True) -> list[ScenarioResult]:
    """Run scenarios one after another, printing each transcript and (unless `tally` is false) a final tally."""
    results = []
    for scenario in scenarios:
        result = run_scenario(network, scenario, call_log_path)
        out(result.transcript + "\n")
        results.append(result)
    if tally:
        out(tally_line(results))
    return results


def tally_line(results: Sequence[ScenarioResult]) -> str:
    """"9/9 scenarios met their expectations", or which ones failed."""
    passed = sum(r.passed for r in results)
    return (f"{passed}/{len(results)} scenarios met their expectations"
            + ("" if passed == len(results) else ": FAILED " + ", ".join(r.scenario.name for r in results
                                                                          if not r.passed)))
