"""simulator/fake_messaging.py through the fake Telnyx's HTTP: bodies checked as Telnyx checks them, one message
per Idempotency-Key, faults on demand."""

from __future__ import annotations

import pytest
import requests

from simulator.fake_telnyx import FakeTelnyx
from simulator.faults import http_error

GOOD = {"from": "+13125550100", "to": "+15555550180", "text": "Message for the clinic"}


@pytest.fixture
def fake():
    with FakeTelnyx() as server:
        yield server


def send(fake, body, key="key-1", auth="Bearer KEY_test"):
    headers = {"Authorization": auth, **({"Idempotency-Key": key} if key else {})}
    return requests.post(fake.base_url + "/messages", json=body, headers=headers, timeout=5)


def test_a_valid_sms_is_accepted_with_the_message_record(fake):
    answer = send(fake, GOOD)
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert data["record_type"] == "message" and data["to"] == [{"phone_number": "+15555550180", "status": "queued"}]
    assert data["from"] == {"phone_number": "+13125550100"} and data["text"] == GOOD["text"]
    (sent,) = fake.messaging.sent
    assert (sent.from_, sent.to, sent.text, sent.idempotency_key) == ("+13125550100", "+15555550180", GOOD["text"],
                                                                      "key-1")


def test_a_repeated_idempotency_key_sends_nothing_more(fake):
    first, second = send(fake, GOOD), send(fake, GOOD)
    assert first.json() == second.json()
    assert len(fake.messaging.sent) == 1
    send(fake, GOOD, key="key-2")
    assert len(fake.messaging.sent) == 2
    assert [r.deduplicated for r in fake.requests_for("", action="messages")] == [False, True, False]


@pytest.mark.parametrize("change, pointer", [
    ({"to": None}, "/to"),
    ({"to": "5555550180"}, "/to"),
    ({"to": "+0555550180"}, "/to"),
    ({"from": "Clinic"}, "/from"),
    ({"from": None}, "/from"),
    ({"text": "  "}, "/text"),
    ({"text": None}, "/text"),
    ({"type": "FAX"}, "/type"),
    ({"to": 15555550180}, "/to"),
])
def test_bodies_telnyx_would_refuse_get_422_and_send_nothing(fake, change, pointer):
    body = {key: value for key, value in {**GOOD, **change}.items() if value is not None}
    answer = send(fake, body)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["source"]["pointer"] == pointer
    assert fake.messaging.sent == []


def test_without_an_api_key_it_is_401(fake):
    assert send(fake, GOOD, auth="").status_code == 401 and fake.messaging.sent == []


def test_failures_can_be_planned_and_send_nothing(fake):
    fake.plan("messages", http_error(503), http_error(429, "10011", retry_after="1"))
    assert send(fake, GOOD).status_code == 503
    limited = send(fake, GOOD)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert fake.messaging.sent == []
    assert send(fake, GOOD).status_code == 200 and len(fake.messaging.sent) == 1
