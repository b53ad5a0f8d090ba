"""brains/llm.py: the LLM brain, the real openai client against the fake OpenAI server on loopback."""

from __future__ import annotations

import copy
import logging
import socket
import time

import pytest

from brains import BrainError, BrainReply, Turn
from brains.llm import PLACEHOLDER_API_KEY, LLMBrain, make_client
from config import build_settings
from fake_openai import DISCONNECT, HANG, Delay, Status, Trickle

TIMEOUT_S = 1.0
MARGIN_S = 0.5
FAKE_KEY = "sk-test-not-a-real-key-1234567890"
GOOD = {"reply": "We open at 9 on Saturdays.", "action": "continue", "department": None, "confidence": 0.8}


@pytest.fixture
def llm_settings(raw_config):
    """Build Settings from the example config with an `env` and `ai` keys changed (ai.timeout_s is TIMEOUT_S)."""

    def build(env: dict[str, str], **ai):
        raw = copy.deepcopy(raw_config)
        raw["webhook"]["verify_signatures"] = False
        raw["ai"].update({"timeout_s": TIMEOUT_S, **ai})
        return build_settings(raw, env)

    return build


@pytest.fixture
def make_brain(fake_model, llm_settings):
    def make(**ai) -> LLMBrain:
        return LLMBrain(llm_settings({"OPENAI_BASE_URL": fake_model.base_url}, **ai))

    return make


def timed_failure(brain: LLMBrain) -> tuple[BrainError, float]:
    started = time.monotonic()
    with pytest.raises(BrainError) as caught:
        brain.reply([], "are you open on saturday")
    return caught.value, time.monotonic() - started


# ---------------------------------------------------------------- the request


def test_request_carries_model_format_and_utterance(fake_model, make_brain):
    make_brain().reply([], "are you open on saturday?")
    (body,) = fake_model.requests
    assert body["model"] == "gpt-4o-mini"
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["role"] == "system"
    assert body["messages"][-1] == {"role": "user", "content": "are you open on saturday?"}
    assert fake_model.headers[0]["authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"


def test_system_prompt_has_facts_and_department_names_but_no_numbers(fake_model, make_brain):
    make_brain().reply([], "hello")
    prompt = fake_model.requests[0]["messages"][0]["content"]
    for fact in ("Bright Smile Dental", "Saturday 9 am to 1 pm", "1200 Harbor Street", "family dental clinic"):
        assert fact in prompt
    assert "front_desk" in prompt and "billing" in prompt
    assert "automated assistant" in prompt and "JSON" in prompt and '"confidence"' in prompt
    for number in ("+15555550100", "+15555550101", "5555550100", "555-0100"):
        assert number not in prompt


def test_history_is_bounded_and_mapped_to_roles(fake_model, make_brain):
    history = [Turn("caller" if i % 2 == 0 else "assistant", f"line {i}") for i in range(7)]
    make_brain(max_history_turns=3).reply(history, "and on sunday?")
    assert fake_model.requests[0]["messages"][1:] == [
        {"role": "user", "content": "line 4"},
        {"role": "assistant", "content": "line 5"},
        {"role": "user", "content": "line 6"},
        {"role": "user", "content": "and on sunday?"},
    ]


def test_no_history_when_max_history_turns_is_zero(fake_model, make_brain):
    make_brain(max_history_turns=0).reply([Turn("caller", "earlier")], "now")
    assert [m["role"] for m in fake_model.requests[0]["messages"]] == ["system", "user"]


def test_api_key_is_sent_but_never_logged(fake_model, llm_settings, caplog):
    caplog.set_level(logging.INFO)
    brain = LLMBrain(llm_settings({"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake_model.base_url}))
    fake_model.enqueue(500, 500)
    with pytest.raises(BrainError):
        brain.reply([], "hello")
    assert fake_model.headers[0]["authorization"] == f"Bearer {FAKE_KEY}"
    assert FAKE_KEY not in caplog.text
    assert "Bright Smile Dental" not in caplog.text  # nor the prompt
    assert "HTTP 500" in caplog.text


def test_the_model_connection_sends_each_write_at_once(fake_model, llm_settings):
    """TCP_NODELAY: the SDK writes a request's head and body apart, and with Nagle's algorithm on the body
    waits for the server's delayed ACK of the head (up to 40 ms) on every kept-alive request."""
    client = make_client(llm_settings({"OPENAI_BASE_URL": fake_model.base_url}))
    for _ in range(2):  # a new connection, then the kept-alive one
        with client.chat.completions.with_streaming_response.create(model="m", messages=[], stream=True) as opened:
            sock = opened.http_response.extensions["network_stream"].get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            opened.http_response.read()
    assert len(fake_model.requests) == 2


# ---------------------------------------------------------------- the reply


def test_good_reply_is_parsed(fake_model, make_brain):
    fake_model.enqueue(
        {"reply": " Let me put you through. ", "action": "transfer", "department": "billing", "confidence": 0.7}
    )
    assert make_brain().reply([], "my bill") == BrainReply("Let me put you through.", "transfer", 0.7, "billing")


@pytest.mark.parametrize("given, clamped", [(1.7, 1.0), (-0.3, 0.0), (1, 1.0), (0, 0.0)])
def test_confidence_is_clamped(fake_model, make_brain, given, clamped):
    fake_model.enqueue({**GOOD, "confidence": given})
    assert make_brain().reply([], "hi").confidence == clamped


def test_unknown_department_is_passed_through_for_the_dialog_to_reject(fake_model, make_brain):
    fake_model.enqueue({**GOOD, "action": "transfer", "department": "pharmacy"})
    assert make_brain().reply([], "hi").department == "pharmacy"


def test_empty_department_means_none(fake_model, make_brain):
    fake_model.enqueue({**GOOD, "department": ""})
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
def test_malformed_output_is_a_brain_error_without_retry(fake_model, make_brain, content, reason):
    fake_model.enqueue(content)
    error, _ = timed_failure(make_brain())
    assert reason in str(error)
    assert len(fake_model.requests) == 1


def test_error_message_quotes_only_a_short_snippet(fake_model, make_brain):
    fake_model.enqueue("secret-ish payload " * 50)
    error, _ = timed_failure(make_brain())
    assert len(str(error)) < 120


# ---------------------------------------------------------------- retries and deadlines


@pytest.mark.parametrize("failure", [500, 502, 429, Status(503, retry_after_s=30), DISCONNECT])
def test_transient_failure_is_retried_once(fake_model, make_brain, failure):
    fake_model.enqueue(failure, GOOD)
    assert make_brain().reply([], "hi").reply == GOOD["reply"]
    assert len(fake_model.requests) == 2


def test_two_failures_are_a_brain_error_after_exactly_two_requests(fake_model, make_brain):
    fake_model.enqueue(500, 500, GOOD)
    error, _ = timed_failure(make_brain())
    assert "HTTP 500" in str(error)
    assert len(fake_model.requests) == 2


def test_max_retries_zero_means_one_request(fake_model, make_brain):
    fake_model.enqueue(500, GOOD)
    timed_failure(make_brain(max_retries=0))
    assert len(fake_model.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(fake_model, make_brain, status):
    fake_model.enqueue(status, GOOD)
    error, _ = timed_failure(make_brain())
    assert f"HTTP {status}" in str(error)
    assert len(fake_model.requests) == 1


def test_unreachable_server_is_a_brain_error(fake_model, make_brain):
    brain = make_brain()
    fake_model.stop()
    error, elapsed = timed_failure(brain)
    assert "connect" in str(error)
    assert elapsed < TIMEOUT_S + MARGIN_S


def test_slow_but_timely_answer_is_accepted(fake_model, make_brain):
    fake_model.enqueue(Delay(0.3, then=GOOD))
    assert make_brain().reply([], "hi").reply == GOOD["reply"]


@pytest.mark.parametrize("stall", [HANG, Trickle(interval_s=0.2), Delay(5)])
def test_stalled_server_is_a_brain_error_at_the_deadline(fake_model, make_brain, stall):
    fake_model.enqueue(stall, GOOD)
    error, elapsed = timed_failure(make_brain())
    assert TIMEOUT_S - 0.1 < elapsed < TIMEOUT_S + MARGIN_S
    assert "time" in str(error) or "deadline" in str(error)


def test_deadline_covers_the_attempt_and_the_retry_together(fake_model, make_brain):
    fake_model.enqueue(Delay(0.4, then=500), Delay(0.8, then=GOOD))
    _, elapsed = timed_failure(make_brain())
    assert elapsed < TIMEOUT_S + MARGIN_S
    # The retry went out before the deadline; the fake may record it a moment after the brain gave up.
    assert len(fake_model.wait_for_requests(2, timeout_s=2.0)) == 2


def test_retry_after_a_failure_then_hang_still_meets_the_deadline(fake_model, make_brain):
    fake_model.enqueue(500, HANG)
    _, elapsed = timed_failure(make_brain())
    assert elapsed < TIMEOUT_S + MARGIN_S
    assert len(fake_model.wait_for_requests(2, timeout_s=2.0)) == 2
