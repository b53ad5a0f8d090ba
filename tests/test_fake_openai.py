"""tests/fake_openai.py: the fake OpenAI server answers like the real API, so the suites that rely on it can."""

from __future__ import annotations

import json
import threading
import time

import requests

from fake_openai import HANG, FakeOpenAI, Status

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
