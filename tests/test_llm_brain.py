"""The LLM brain: the real openai client against the fake OpenAI server on loopback."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from app import build_brain
from brains import BrainError, BrainReply, Turn
from brains.intent import IntentBrain
from brains.llm import PLACEHOLDER_API_KEY, LLMBrain
from config import build_settings
from fake_openai import DISCONNECT, HANG, Delay, FakeOpenAI, Status, Trickle

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yml"
TIMEOUT_S = 1.0
MARGIN_S = 0.5
FAKE_KEY = "sk-test-not-a-real-key-1234567890"
GOOD = {"reply": "We open at 9 on Saturdays.", "action": "continue", "department": None, "confidence": 0.8}


def settings_for(env: dict[str, str], **ai) -> object:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw["webhook"]["verify_signatures"] = False
    raw["ai"].update({"timeout_s": TIMEOUT_S, **ai})
    return build_settings(raw, env)


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def make_brain(fake):
    def make(**ai) -> LLMBrain:
        return LLMBrain(settings_for({"OPENAI_BASE_URL": fake.base_url}, **ai))

    return make


def timed_failure(brain: LLMBrain) -> tuple[BrainError, float]:
    started = time.monotonic()
    with pytest.raises(BrainError) as caught:
        brain.reply([], "are you open on saturday")
    return caught.value, time.monotonic() - started


# ---------------------------------------------------------------- the request


def test_request_carries_model_format_and_utterance(fake, make_brain):
    make_brain().reply([], "are you open on saturday?")
    (body,) = fake.requests
    assert body["model"] == "gpt-4o-mini"
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["role"] == "system"
    assert body["messages"][-1] == {"role": "user", "content": "are you open on saturday?"}
    assert fake.headers[0]["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"


def test_system_prompt_has_facts_and_department_names_but_no_numbers(fake, make_brain):
    make_brain().reply([], "hello")
    prompt = fake.requests[0]["messages"][0]["content"]
    for fact in ("Bright Smile Dental", "Saturday 9 am to 1 pm", "1200 Harbor Street", "family dental clinic"):
        assert fact in prompt
    assert "front_desk" in prompt and "billing" in prompt
    assert "automated assistant" in prompt and "JSON" in prompt and '"confidence"' in prompt
    for number in ("+15555550100", "+15555550101", "5555550100", "555-0100"):
        assert number not in prompt


def test_history_is_bounded_and_mapped_to_roles(fake, make_brain):
    history = [Turn("caller" if i % 2 == 0 else "assistant", f"line {i}") for i in range(7)]
    make_brain(max_history_turns=3).reply(history, "and on sunday?")
    assert fake.requests[0]["messages"][1:] == [
        {"role": "user", "content": "line 4"},
        {"role": "assistant", "content": "line 5"},
        {"role": "user", "content": "line 6"},
        {"role": "user", "content": "and on sunday?"},
    ]


def test_no_history_when_max_history_turns_is_zero(fake, make_brain):
    make_brain(max_history_turns=0).reply([Turn("caller", "earlier")], "now")
    assert [m["role"] for m in fake.requests[0]["messages"]] == ["system", "user"]


def test_api_key_is_sent_but_never_logged(fake, caplog):
    caplog.set_level(logging.INFO)
    brain = LLMBrain(settings_for({"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake.base_url}))
    fake.enqueue(500, 500)
    with pytest.raises(BrainError):
        brain.reply([], "hello")
    assert fake.headers[0]["authorization"] == f"Bearer {FAKE_KEY}"
    assert FAKE_KEY not in caplog.text
    assert "Bright Smile Dental" not in caplog.text  # nor the prompt
    assert "HTTP 500" in caplog.text


# ---------------------------------------------------------------- the reply


def test_good_reply_is_parsed(fake, make_brain):
    fake.enqueue(
        {"reply": " Let me put you through. ", "action": "transfer", "department": "billing", "confidence": 0.7}
    )
    assert make_brain().reply([], "my bill") == BrainReply("Let me put you through.", "transfer", 0.7, "billing")


@pytest.mark.parametrize("given, clamped", [(1.7, 1.0), (-0.3, 0.0), (1, 1.0), (0, 0.0)])
def test_confidence_is_clamped(fake, make_brain, given, clamped):
    fake.enqueue({**GOOD, "confidence": given})
    assert make_brain().reply([], "hi").confidence == clamped


def test_unknown_department_is_passed_through_for_the_dialog_to_reject(fake, make_brain):
    fake.enqueue({**GOOD, "action": "transfer", "department": "pharmacy"})
    assert make_brain().reply([], "hi").department == "pharmacy"


def test_empty_department_means_none(fake, make_brain):
    fake.enqueue({**GOOD, "department": ""})
    assert make_brain().reply([], "hi").department is None


@pytest.mark.parametrize(
    "content, reason",
    [
        ("Sure! We open at 9.", "not JSON"),
        ("```json\n{}\n```", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('"just text"', "not a JSON object"),
        ({k: v for k, v in GOOD.items() if k != "reply"}, "'reply'"),
        ({**GOOD, "reply": "   "}, "'reply'"),
        ({**GOOD, "reply": 42}, "'reply'"),
        ({k: v for k, v in GOOD.items() if k != "action"}, "'action'"),
        ({**GOOD, "action": "dance"}, "'action'"),
        ({**GOOD, "action": "Transfer"}, "'action'"),
        ({k: v for k, v in GOOD.items() if k != "confidence"}, "'confidence'"),
        ({**GOOD, "confidence": "high"}, "'confidence'"),
        ({**GOOD, "confidence": True}, "'confidence'"),
        ('{"reply": "hi", "action": "continue", "department": null, "confidence": NaN}', "'confidence'"),
        ({**GOOD, "department": 7}, "'department'"),
    ],
)
def test_malformed_output_is_a_brain_error_without_retry(fake, make_brain, content, reason):
    fake.enqueue(content)
    error, _ = timed_failure(make_brain())
    assert reason in str(error)
    assert len(fake.requests) == 1


def test_error_message_quotes_only_a_short_snippet(fake, make_brain):
    fake.enqueue("secret-ish payload " * 50)
    error, _ = timed_failure(make_brain())
    assert len(str(error)) < 120


# ---------------------------------------------------------------- retries and deadlines


@pytest.mark.parametrize("failure", [500, 502, 429, Status(503, retry_after_s=30), DISCONNECT])
def test_transient_failure_is_retried_once(fake, make_brain, failure):
    fake.enqueue(failure, GOOD)
    assert make_brain().reply([], "hi").reply == GOOD["reply"]
    assert len(fake.requests) == 2


def test_two_failures_are_a_brain_error_after_exactly_two_requests(fake, make_brain):
    fake.enqueue(500, 500, GOOD)
    error, _ = timed_failure(make_brain())
    assert "HTTP 500" in str(error)
    assert len(fake.requests) == 2


def test_max_retries_zero_means_one_request(fake, make_brain):
    fake.enqueue(500, GOOD)
    timed_failure(make_brain(max_retries=0))
    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(fake, make_brain, status):
    fake.enqueue(status, GOOD)
    error, _ = timed_failure(make_brain())
    assert f"HTTP {status}" in str(error)
    assert len(fake.requests) == 1


def test_unreachable_server_is_a_brain_error(fake, make_brain):
    brain = make_brain()
    fake.stop()
    error, elapsed = timed_failure(brain)
    assert "connect" in str(error)
    assert elapsed < TIMEOUT_S + MARGIN_S


def test_slow_but_timely_answer_is_accepted(fake, make_brain):
    fake.enqueue(Delay(0.3, then=GOOD))
    assert make_brain().reply([], "hi").reply == GOOD["reply"]


@pytest.mark.parametrize("stall", [HANG, Trickle(interval_s=0.2), Delay(5)])
def test_stalled_server_is_a_brain_error_at_the_deadline(fake, make_brain, stall):
    fake.enqueue(stall, GOOD)
    error, elapsed = timed_failure(make_brain())
    assert TIMEOUT_S - 0.1 < elapsed < TIMEOUT_S + MARGIN_S
    assert "time" in str(error) or "deadline" in str(error)


def test_deadline_covers_the_attempt_and_the_retry_together(fake, make_brain):
    fake.enqueue(Delay(0.4, then=500), Delay(0.8, then=GOOD))
    _, elapsed = timed_failure(make_brain())
    assert elapsed < TIMEOUT_S + MARGIN_S
    # The retry went out before the deadline; the fake may record it a moment after the brain gave up.
    assert len(fake.wait_for_requests(2, timeout_s=2.0)) == 2


def test_retry_after_a_failure_then_hang_still_meets_the_deadline(fake, make_brain):
    fake.enqueue(500, HANG)
    _, elapsed = timed_failure(make_brain())
    assert elapsed < TIMEOUT_S + MARGIN_S
    assert len(fake.wait_for_requests(2, timeout_s=2.0)) == 2


# ---------------------------------------------------------------- choosing a brain


@pytest.mark.parametrize(
    "env, ai, kind",
    [
        ({}, {}, IntentBrain),
        ({"OPENAI_API_KEY": FAKE_KEY}, {}, LLMBrain),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, {}, LLMBrain),
        ({"OPENAI_API_KEY": FAKE_KEY}, {"enabled": False}, IntentBrain),
    ],
)
def test_build_brain_picks_by_environment(env, ai, kind, caplog):
    caplog.set_level(logging.INFO, logger="brains")
    assert isinstance(build_brain(settings_for(env, **ai)), kind)
    expected = "brain: LLM" if kind is LLMBrain else "brain: offline intent matcher"
    assert expected in caplog.text
    assert FAKE_KEY not in caplog.text


# ---------------------------------------------------------------- the fake itself (other suites rely on it)


def test_fake_answers_like_the_real_api(fake):
    response = requests.post(f"{fake.base_url}/chat/completions", json={"model": "m", "messages": []}, timeout=5)
    body = response.json()
    assert response.status_code == 200
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "m" and body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert json.loads(body["choices"][0]["message"]["content"])["confidence"] == 0.9
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_fake_error_status_has_an_openai_error_body(fake):
    fake.enqueue(Status(429, retry_after_s=2))
    response = requests.post(f"{fake.base_url}/chat/completions", json={}, timeout=5)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_fake_default_delay_range_slows_default_replies():
    with FakeOpenAI(default=GOOD, default_delay_s=(0.2, 0.3)) as slow:
        brain = LLMBrain(settings_for({"OPENAI_BASE_URL": slow.base_url}))
        started = time.monotonic()
        assert brain.reply([], "hi").reply == GOOD["reply"]
        assert 0.2 <= time.monotonic() - started < 0.3 + MARGIN_S


def test_fake_stops_promptly_while_requests_hang():
    fake = FakeOpenAI().start()
    fake.enqueue(HANG, HANG)
    url, outcomes = f"{fake.base_url}/chat/completions", []

    def post() -> None:
        try:
            requests.post(url, json={}, timeout=5)
        except requests.ConnectionError:
            outcomes.append("dropped")

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    fake.wait_for_requests(2)
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 0.5
    for thread in threads:
        thread.join(timeout=2)
    assert outcomes == ["dropped", "dropped"]
