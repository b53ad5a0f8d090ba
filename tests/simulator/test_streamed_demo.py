"""END-TO-END: the demo's streamed-reply scenarios (scenarios/streamed/) against the service under gunicorn
with the LLM brain streaming from the fake model, through the simulated network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.network import Network, NetworkOptions
from simulator.scenario import ScenarioError
from simulator.streamed_demo import STREAMED_DIR, load_streamed, run_streamed_scenarios


def test_the_streamed_scenarios_speak_sentence_by_sentence_and_stop_at_a_barge_in():
    lines: list[str] = []
    with Network(NetworkOptions(speed=0.1)) as network:
        results = run_streamed_scenarios(network, lines.append)
    assert results and all(result.passed for result in results), "\n".join(lines)
    (result,) = [r for r in results if r.scenario.name == "reply_spoken_as_written"]
    speaks = [r for r in network.fake.requests_for(result.call.call_control_id, action="speak")]
    stop = network.fake.requests_for(result.call.call_control_id, action="playback_stop")
    assert [r.body.get("stop") for r in stop] == ["all"]
    said = [r.body["payload"] for r in speaks]
    assert said[1] == "We're open from 9 a.m. to 5 p.m., Monday to Friday."
    assert said[2:4] == ["You'll find us at 12 Harbor Street, right next to the library.", "Is there anything else?"]
    assert stop[0].at < speaks[2].at  # the reply was cut before the next question was answered


def test_a_streamed_scenario_without_a_usable_model_script_is_refused(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text(json.dumps({"name": "bad", "model": [{"text": "Hi.", "tool": "dial"}], "caller": []}))
    with pytest.raises(ScenarioError, match="bad.yml"):
        load_streamed(bad)
    assert all(load_streamed(path) for path in STREAMED_DIR.glob("*.yml"))
