"""END-TO-END with the LLM brain: the real openai client in the service, a fake OpenAI-compatible
server and the simulated Telnyx network on loopback, the service under gunicorn as deployed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fake_openai import HANG, FakeOpenAI
from simulator.network import Network, NetworkOptions
from simulator.runner import run_scenario
from simulator.scenario import parse_scenario
from simulator.service import start_service


def reply(text: str, action: str = "continue", confidence: float = 0.9, department: str | None = None) -> dict:
    return {"reply": text, "action": action, "department": department, "confidence": confidence}


@pytest.fixture(scope="module")
def fake_model():
    """The conftest fake OpenAI server, for the whole module: the live service below is shared too."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def live(fake_model):
    overrides = {"ai.timeout_s": 1.0}
    with Network(NetworkOptions(speed=0.05)) as network:
        env = {**network.service_env(), "OPENAI_BASE_URL": fake_model.base_url}
        with start_service(env, overrides=overrides) as service:
            network.webhook_url = service.webhook_url
            yield network, service


def scenario(name: str, lines: list[str], expect: dict, transfer: dict | None = None):
    raw = {"name": name, "caller": [{"say": line, "confidence": 0.95} for line in lines], "expect": expect}
    if transfer:
        raw["transfer"] = transfer
    return parse_scenario(raw)


def call_log(service) -> list[dict]:
    return [json.loads(line) for line in Path(service.call_log_path).read_text().splitlines()]


def test_llm_answers_a_question_and_ends_the_call(live, fake_model):
    network, service = live
    fake_model.reset()
    fake_model.enqueue(reply("We are open eight to five on weekdays."))
    fake_model.enqueue(reply("You're welcome.", "end"))
    result = run_scenario(network, scenario(
        "llm_question", ["when are you open", "great thanks bye"],
        {"outcome": "hung_up_by_assistant", "assistant_said_contains": ["eight to five", "goodbye"],
         "spoke_goodbye_before_hangup": True, "max_commands_after_hangup": 0},
    ), service.call_log_path)
    assert result.passed, result.transcript
    prompts = fake_model.requests
    assert len(prompts) == 2
    assert prompts[1]["messages"][-1] == {"role": "user", "content": "great thanks bye"}
    assert {"role": "assistant", "content": "We are open eight to five on weekdays."} in prompts[1]["messages"]


def test_llm_transfer_goes_to_the_named_department(live, fake_model):
    network, service = live
    fake_model.reset()
    fake_model.enqueue(reply("Let me get billing for you.", "transfer", 0.9, "billing"))
    result = run_scenario(network, scenario(
        "llm_transfer", ["I have a question about my invoice"],
        {"outcome": "transferred", "transferred_to": "+15555550101", "transfer_attempts": 1},
        transfer={"answer": True, "ring_s": 1, "talk_s": 1},
    ), service.call_log_path)
    assert result.passed, result.transcript


def test_llm_that_hangs_gets_the_fallback_and_a_transfer(live, fake_model):
    network, service = live
    fake_model.reset()
    fake_model.enqueue(HANG)
    fake_model.enqueue(HANG)
    result = run_scenario(network, scenario(
        "llm_hangs", ["can you tell me about whitening"],
        {"outcome": "transferred", "transferred_to": "+15555550100",
         "assistant_said_contains": ["trouble right now"]},
        transfer={"answer": True, "ring_s": 1, "talk_s": 1},
    ), service.call_log_path)
    assert result.passed, result.transcript
    record = next(r for r in call_log(service) if r["call_control_id"] == result.call.call_control_id)
    assert record["escalation_reason"].startswith("brain failed")
