"""tests/fake_openai.py: the fake OpenAI server answers like the real API, so the suites that rely on it can."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from fake_openai import HANG, FakeOpenAI, Status, Stream, Tool

GOOD = {"reply": "We open at 9 on Saturdays.", "action": "continue", "department": None, "confidence": 0.8}
MARGIN_S = 0.5


def chat(base_url: str, body: dict, timeout: float = 5) -> requests.Response:
    return requests.post(f"{base_url}/chat/completions", json=body, timeout=timeout)


def content(response: requests.Response) -> dict:
    """The JSON object the fake put in the first choice's message."""
    return json.loads(response.json()["choices"][0]["message"]["content"])


def test_fake_answers_like_the_real_api(fake_model):
    response = chat(fake_model.base_url, {"model": "m", "messages": []})
    body = response.json()
    assert response.status_code == 200
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "m" and body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert content(response)["confidence"] == 0.9
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_fake_error_status_has_an_openai_error_body(fake_model):
    fake_model.enqueue(Status(429, retry_after_s=2))
    response = chat(fake_model.base_url, {})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_fake_default_delay_range_slows_default_replies():
    with FakeOpenAI(default=GOOD, default_delay_s=(0.2, 0.3)) as slow:
        started = time.monotonic()
        assert content(chat(slow.base_url, {"model": "m", "messages": []}))["reply"] == GOOD["reply"]
        assert 0.2 <= time.monotonic() - started < 0.3 + MARGIN_S


def test_fake_stops_promptly_while_requests_hang():
    fake = FakeOpenAI().start()
    fake.enqueue(HANG, HANG)
    outcomes = []

    def post() -> None:
        try:
            chat(fake.base_url, {})
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


# ---------------------------------------------------------------- streaming


def stream_chunks(base_url: str, body: dict) -> list[tuple[float, dict | str]]:
    """Each server-sent event's data with the time it arrived, read with plain HTTP."""
    started, events = time.monotonic(), []
    with requests.post(f"{base_url}/chat/completions", json={"stream": True, **body}, stream=True, timeout=5) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        for line in r.iter_lines():
            if line.startswith(b"data: "):
                data = line[6:].decode()
                events.append((time.monotonic() - started, data if data == "[DONE]" else json.loads(data)))
    return events


def test_fake_streams_at_the_set_pace():
    with FakeOpenAI(ttft_s=0.3, tokens_per_s=20) as paced:
        paced.enqueue(Stream("One two three four five six seven eight nine ten.", Tool("end_call")))
        events = stream_chunks(paced.base_url, {"model": "m", "stream_options": {"include_usage": True}})
    texts = [(at, e["choices"][0]["delta"].get("content")) for at, e in events if e != "[DONE]" and e["choices"]]
    words = [(at, text) for at, text in texts if text]
    assert "".join(text for _, text in words) == "One two three four five six seven eight nine ten."
    assert 0.3 <= words[0][0] < 0.3 + MARGIN_S
    assert (words[-1][0] - words[0][0]) == pytest.approx((len(words) - 1) / 20, abs=0.15)
    tool = [e for _, e in events if e != "[DONE]" and e["choices"] and e["choices"][0]["delta"].get("tool_calls")]
    assert tool[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "end_call"
    assert events[-2][1]["usage"]["completion_tokens"] == len(words) + 2  # text tokens and two tool chunks
    assert events[-3][1]["choices"][0]["finish_reason"] == "tool_calls" and events[-1][1] == "[DONE]"
    timeline = paced.timeline(0)  # arrival, then each text token sent: what the first-audio bench measures against
    assert len(timeline) == 1 + len(words)
    assert timeline[1] - timeline[0] == pytest.approx(0.3, abs=0.05)


def test_fake_streams_a_json_answer_as_text_and_a_tool_call(fake_model):
    fake_model.enqueue({**GOOD, "action": "transfer", "department": "billing"})
    events = [e for _, e in stream_chunks(fake_model.base_url, {"model": "m"}) if e != "[DONE]"]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    calls = [c for e in events for c in e["choices"][0]["delta"].get("tool_calls") or []]
    assert text == GOOD["reply"]
    assert calls[0]["function"]["name"] == "transfer"
    assert json.loads(calls[1]["function"]["arguments"]) == {"department": "billing"}


def test_fake_records_a_client_hanging_up_mid_stream(fake_model):
    fake_model.enqueue(Stream("word " * 100, ttft_s=0, tokens_per_s=20))
    with requests.post(f"{fake_model.base_url}/chat/completions", json={"stream": True}, stream=True, timeout=5) as r:
        next(r.iter_lines())
        hung_up = time.monotonic()
    assert fake_model.wait_for_hang_up(0, timeout_s=2) - hung_up < 0.2
    assert fake_model.hung_up == [0]


def test_fake_without_tools_refuses_them_and_keeps_its_script():
    with FakeOpenAI(tools=False) as bare:
        bare.enqueue(GOOD)
        refused = chat(bare.base_url, {"model": "m", "messages": [], "tools": [{"type": "function"}]})
        assert refused.status_code == 400 and "tools" in refused.json()["error"]["message"]
        assert content(chat(bare.base_url, {"model": "m", "messages": []})) == GOOD
        assert len(bare.requests) == 2
