"""A message a caller leaves reaches the staff: an SMS through the (fake) Telnyx Messaging API and a signed
webhook, each exactly once across duplicated webhooks and failures, without the caller waiting for either."""

from __future__ import annotations

import copy
import json
import time

import pytest

from background import wait_until
from message_senders import MessageSenders, signed_headers
from outbox import Delivery, DeliveryFailed
from simulator.fake_telnyx import FakeTelnyx
from simulator.faults import RESET, http_error
from simulator.staff_inbox import StaffInbox
from staff_messages import StaffMessage, caller_name, sms_text, webhook_payload
from webhooks import event, new_call_id, transcription

pytestmark = pytest.mark.both_stores

SECRET = "whsec_" + "c2VjcmV0LWZvci10ZXN0cy1vbmx5"  # base64 of "secret-for-tests-only"
STAFF = ["+15555550180", "+15555550181"]
CALLER, DIALLED = "+13125550111", "+13125550100"


@pytest.fixture
def fake():
    with FakeTelnyx() as server:
        yield server


@pytest.fixture
def inbox():
    with StaffInbox(b"secret-for-tests-only") as receiver:
        yield receiver


@pytest.fixture
def service(make_app, example_config, fake, inbox, scripted_brain, store_env, tmp_path):
    """The service on the fake Telnyx (its real client), messages to two staff phones and the inbox."""
    raw = copy.deepcopy(example_config)
    raw["messages"] = {"sms_to": STAFF, "webhook_url": inbox.url, "max_attempts": 5, "first_retry_s": 0.05}
    raw["call_log"]["path"] = str(tmp_path / "calls.jsonl")
    if store_env:
        from store_setup import isolated_prefix

        raw["redis"]["key_prefix"] = isolated_prefix()
    env = {"TELNYX_API_KEY": "KEY_test", "TELNYX_BASE_URL": fake.base_url, "MESSAGES_WEBHOOK_SECRET": SECRET}
    return make_app(raw, env=env, brain=scripted_brain)


@pytest.fixture
def post(service, keypair):
    """Sign and POST a webhook body to `service` the way Telnyx does."""
    from fixtures import sign

    client = service.test_client()

    def send(body):
        raw = json.dumps(body).encode()
        return client.post("/webhooks/telnyx", data=raw, headers=sign(raw, keypair[0], str(int(time.time()))),
                           content_type="application/json")

    return send


def leave_message(post, call_id: str, words: str, *, twice: bool = False) -> None:
    """A caller asks to leave a message and says it; `twice` delivers the message's webhook a second time."""
    for body in (event("call_initiated", call_id), event("call_answered", call_id),
                 event("call_speak_ended", call_id), transcription(call_id, "can I leave a message please"),
                 event("call_speak_ended", call_id)):
        assert post(body).status_code == 200
    said = transcription(call_id, words)
    assert post(said).get_json()["status"] == "accepted"
    if twice:
        assert post(said).get_json()["status"] == "duplicate"


def sms_for(fake, call_id):
    return [m for m in fake.messaging.sent if call_id in m.text]


def test_the_message_reaches_every_staff_phone_and_the_webhook_once(service, fake, inbox, post, settle):
    call_id = new_call_id()
    leave_message(post, call_id, "Hi, this is Jane Doe, please call me back about my crown", twice=True)
    settle(service)
    assert wait_until(lambda: len(sms_for(fake, call_id)) == 2 and len(inbox.received) == 1, 10)
    time.sleep(0.3)  # anything extra would have come by now
    sent = sms_for(fake, call_id)
    assert sorted(m.to for m in sent) == STAFF and {m.from_ for m in sent} == {DIALLED}
    text = sent[0].text
    assert text.startswith("Bright Smile Dental: message from Jane Doe (+13125550111) at ")
    assert '"Hi, this is Jane Doe, please call me back about my crown"' in text and f"(call {call_id})" in text
    assert all(m.idempotency_key for m in sent) and len({m.idempotency_key for m in sent}) == 2
    records = fake.requests_for("", action="messages")
    assert len(records) == 2 and all(r.authorization == "Bearer KEY_test" for r in records)
    (hook,) = inbox.received
    assert hook.signature_valid and inbox.attempts == 1
    assert hook.payload["type"] == "message.taken"
    assert hook.payload["data"] | {"taken_at": None} == {
        "id": hook.webhook_id, "call_control_id": call_id, "business": "Bright Smile Dental", "caller": CALLER,
        "caller_name": "Jane Doe", "called": DIALLED, "taken_at": None,
        "message": "Hi, this is Jane Doe, please call me back about my crown"}


def test_failures_are_retried_with_backoff_and_still_deliver_once(service, fake, inbox, post, settle):
    fake.plan("messages", http_error(503), RESET, http_error(429, "10011"))
    inbox.fail_next(500, 503)
    call_id = new_call_id()
    leave_message(post, call_id, "please call me back")
    settle(service)
    assert wait_until(lambda: len(sms_for(fake, call_id)) == 2 and len(inbox.received) == 1, 15)
    time.sleep(0.3)
    assert len(sms_for(fake, call_id)) == 2 and inbox.attempts == 3
    faults = [r.fault for r in fake.requests_for("", action="messages") if r.fault]
    assert faults == ["503 10007", "reset", "429 10011"]


def test_the_caller_does_not_wait_for_a_slow_delivery(service, fake, inbox, post, settle):
    """Telnyx's Messaging API hangs: the goodbye is spoken at once, the SMS follows when it can."""
    from simulator.faults import slow

    fake.always("messages", slow(2.0))
    call_id = new_call_id()
    started = time.monotonic()
    leave_message(post, call_id, "please call me back")
    settle(service)
    spoken = [r.body["payload"] for r in fake.requests_for(call_id, action="speak")]
    assert spoken[-1] == service.extensions["receptionist"].policy.lines["message_taken"]
    assert time.monotonic() - started < 1.5


def test_the_call_log_records_each_delivery_and_its_final_status(service, fake, inbox, post, settle,
                                                                 tmp_path):
    call_id = new_call_id()
    leave_message(post, call_id, "please call me back")
    assert wait_until(lambda: len(sms_for(fake, call_id)) == 2 and len(inbox.received) == 1, 10)
    post(event("call_hangup", call_id))
    settle(service)
    path = tmp_path / "calls.jsonl"
    assert wait_until(lambda: path.exists() and len(path.read_text().splitlines()) == 4, 5)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    (call,) = [line for line in lines if "record" not in line]
    assert call["outcome"] == "message_taken" and len(call["message_deliveries"]) == 3
    finals = [line for line in lines if line.get("record") == "message_delivery"]
    assert sorted(line["channel"] for line in finals) == ["sms", "sms", "webhook"]
    assert {line["status"] for line in finals} == {"delivered"} and {line["call_control_id"] for line in finals} == {
        call_id}
    assert {d["delivery_id"] for d in call["message_deliveries"]} == {line["delivery_id"] for line in finals}


# ---------------------------------------------------------------- the pieces, without the service


MESSAGE = StaffMessage("v3:m", CALLER, DIALLED, "call me", 1_800_000_000.0, "Bright Smile Dental")


@pytest.mark.parametrize("called, reason", [("", "no number to send from"), ("anonymous", "no number to send from")])
def test_an_sms_without_a_number_to_send_from_fails_at_once(fake, called, reason):
    senders = MessageSenders(fake.base_url, "KEY_test", b"k")
    message = StaffMessage("v3:m", CALLER, called, "call me", 1_800_000_000.0, "Clinic")
    with pytest.raises(DeliveryFailed, match=reason) as caught:
        senders.send_sms(Delivery("d", "sms", STAFF[0], message.as_dict()))
    assert caught.value.retry is False and fake.messaging.sent == []


def test_an_sms_the_api_refuses_is_not_retried(fake):
    senders = MessageSenders(fake.base_url, "KEY_test", b"k")
    with pytest.raises(DeliveryFailed, match="HTTP 422") as caught:
        senders.send_sms(Delivery("d", "sms", "5555550180", MESSAGE.as_dict()))  # not E.164
    assert caught.value.retry is False


def test_signature_is_standard_webhooks_v1():
    """The example from the Standard Webhooks specification's reference tests, recomputed here."""
    import base64
    import hashlib
    import hmac

    body = b'{"test": 2432232314}'
    headers = signed_headers(b"k3y", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    expected = base64.b64encode(hmac.new(b"k3y", b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + body,
                                         hashlib.sha256).digest()).decode()
    assert headers == {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
                       "webhook-signature": f"v1,{expected}"}


def test_sms_text_is_cut_and_a_withheld_number_said_so():
    long = StaffMessage("v3:m", "", DIALLED, "x" * 2000, 1_800_000_000.0, "Clinic")
    text = sms_text(long)
    assert "message from a withheld number at 2027-01-15 08:00 UTC" in text and len(text) < 900
    assert webhook_payload(long, "d")["data"]["caller"] is None


@pytest.mark.parametrize("said, name", [("Hi this is Omar Khan calling", "Omar Khan"), ("my name is li", None),
                                        ("My name is Ana, call me", "Ana"), ("this is about my bill", None)])
def test_a_name_is_taken_only_when_the_caller_gives_one(said, name):
    assert caller_name(said) == name


@pytest.mark.parametrize("messages, env, problem", [
    ({"sms_to": ["555-0100"]}, {}, "messages.sms_to[0]: must be an E.164 number"),
    ({"webhook_url": "ftp://hooks.example.com"}, {"MESSAGES_WEBHOOK_SECRET": "s"}, "messages.webhook_url: must be"),
    ({"webhook_url": "https://hooks.example.com"}, {}, "MESSAGES_WEBHOOK_SECRET: not set"),
    ({"webhook_url": "https://hooks.example.com"}, {"MESSAGES_WEBHOOK_SECRET": "whsec_not base64!"},
     "MESSAGES_WEBHOOK_SECRET: a whsec_ secret must be base64"),
])
def test_message_settings_that_cannot_work_stop_the_service(raw_config, messages, env, problem):
    from config import ConfigError, build_settings

    raw_config["messages"] = messages
    raw_config["webhook"]["verify_signatures"] = False
    with pytest.raises(ConfigError) as caught:
        build_settings(raw_config, env)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
