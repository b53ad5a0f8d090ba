"""Scenario files parse, bad ones are refused with a reason, and expectations judge calls correctly."""

from __future__ import annotations

import pytest

from simulator.expectations import CallView, check_call, outcome
from simulator.load import Percentiles, generated_scenario
from simulator.scenario import ScenarioError, all_scenario_paths, load_scenario, parse_scenario


@pytest.mark.parametrize("path", all_scenario_paths(), ids=lambda p: p.stem)
def test_every_shipped_scenario_parses_and_expects_an_outcome(path):
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.expect["outcome"] in ("transferred", "hung_up_by_assistant", "caller_hung_up")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"expect": {"outcome_is": "x"}}, "unknown expect keys"),
        ({"caller": [{"say": "a", "dtmf": "1"}]}, "exactly one of"),
        ({"caller": ["hello"]}, "a caller step is a mapping"),
        ([], "a scenario is a mapping"),
    ],
)
def test_bad_scenarios_are_refused_with_a_reason(raw, message):
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(raw)


def test_steps_parse_with_their_options():
    scenario = parse_scenario({"caller": [{"say": "hi", "confidence": 0.3}, {"dtmf": 0}, {"wait_s": 2},
                                          {"hangup": {"during_speech": True, "after_s": 1.5}}]})
    say, dtmf, wait, hangup = scenario.steps
    assert (say.kind, say.text, say.confidence) == ("say", "hi", 0.3)
    assert (dtmf.kind, dtmf.text) == ("dtmf", "0")
    assert (wait.kind, wait.pause_s) == ("wait_s", 2.0)
    assert (hangup.kind, hangup.during_speech, hangup.after_s) == ("hangup", True, 1.5)


def test_expectations_fail_when_the_call_did_not_end_as_expected(carrier):
    call = carrier.place_call("+13125550111", "+13125550100")
    carrier.handle_command(call.call_control_id, "answer", {})
    carrier.hang_up(call)
    checks = {c.name: c for c in check_call(CallView(call, []), {"outcome": "transferred", "message_taken": True})}
    assert outcome(call) == "caller_hung_up"
    assert not checks["outcome is transferred"].passed
    assert checks["message taken"].skipped  # no call log path was given
    assert checks["call ended"].passed


def test_message_taken_reads_the_call_log(carrier, tmp_path):
    call = carrier.place_call("+13125550111", "+13125550100")
    carrier.hang_up(call)
    log = tmp_path / "calls.jsonl"
    log.write_text('{"call_control_id": "other", "messages": ["x"]}\n'
                   f'{{"call_control_id": "{call.call_control_id}", "messages": ["call me back"]}}\n')
    [check] = [c for c in check_call(CallView(call, [], str(log)), {"message_taken": True}) if "message" in c.name]
    assert check.passed and not check.skipped


def test_percentiles_use_nearest_rank():
    figures = Percentiles.of([float(v) for v in range(1, 101)])
    assert (figures.p50, figures.p95, figures.p99) == (50.0, 95.0, 99.0)
    assert Percentiles.of([]).p50 is None


def test_load_scenario_asks_then_says_goodbye():
    scenario = generated_scenario(turns=3)
    assert [s.kind for s in scenario.steps] == ["say"] * 4
    assert "goodbye" in scenario.steps[-1].text
