"""app.py: the webhook endpoint (verify, parse, dedupe, hand off, 200), every way a request is refused, the wiring."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from app import build_brain
from brains.intent import IntentBrain
from brains.llm import LLMBrain
from config import build_settings
from fixtures import load_fixture, sign, with_ids

pytestmark = pytest.mark.both_stores

CALL = "v3:Zq3Vx8LmR2tYp6KbN0cWd4HfJ9sTg1EuA7oXi5MlC3nB8vQy2rDkPw_FhSe"
FAKE_KEY = "sk-test-not-a-real-key-1234567890"


def test_call_initiated_is_acknowledged_and_answered(app, post_webhook, telnyx):
    response = post_webhook(load_fixture("call_initiated"))
    assert response.status_code == 200 and response.json == {"status": "accepted"}
    telnyx.wait_for(1)
    assert telnyx.actions() == ["answer"]
    assert telnyx.commands[0].call_control_id == CALL
    assert telnyx.commands[0].body["command_id"]


def test_initiated_answered_hangup_drives_answer_greeting_and_cleanup(app, post_webhook, telnyx, raw_config, settle):
    for name in ["call_initiated", "call_answered"]:
        assert post_webhook(load_fixture(name)).status_code == 200
        settle(app)
    assert telnyx.actions() == ["answer", "speak", "transcription_start"]
    greeting = telnyx.commands[1].body
    assert greeting["payload"] == raw_config["assistant"]["greeting"]
    assert greeting["voice"] == raw_config["assistant"]["voice"]
    assert telnyx.commands[2].body["transcription_tracks"] == "inbound"
    post_webhook(load_fixture("call_hangup"))
    settle(app)
    assert app.extensions["receptionist"].stats()["live_calls"] == 0
    record = json.loads(Path(raw_config["call_log"]["path"]).read_text().splitlines()[0])
    assert record["call_control_id"] == CALL
    assert record["caller"] == "+1********11"


def test_a_whole_conversation_turn(app, post_webhook, telnyx, scripted_brain, settle):
    from brains import BrainReply

    scripted_brain.enqueue(BrainReply("We're open Saturday nine to one.", "continue", 0.92))
    for name in ["call_initiated", "call_answered", "call_speak_ended", "call_transcription"]:
        post_webhook(load_fixture(name))
        settle(app)
    assert telnyx.spoken()[-1] == "We're open Saturday nine to one."
    assert scripted_brain.history[0][1] == load_fixture("call_transcription")["data"]["payload"]["transcription_data"][
        "transcript"
    ]


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda raw, h: (raw.replace(b"incoming", b"outgoing"), h), id="tampered-body"),
        pytest.param(lambda raw, h: (raw, {**h, "telnyx-timestamp": str(int(h["telnyx-timestamp"]) - 301)}),
                     id="stale"),
        pytest.param(lambda raw, h: (raw, {}), id="unsigned"),
        pytest.param(lambda raw, h: (raw, {"telnyx-timestamp": h["telnyx-timestamp"]}), id="no-signature"),
        pytest.param(lambda raw, h: (raw, {**h, "telnyx-signature-ed25519": "garbage"}), id="garbled"),
    ],
)
def test_unauthentic_webhooks_get_401_and_cause_nothing(app, client, keypair, telnyx, mangle, settle):
    raw = json.dumps(load_fixture("call_initiated")).encode()
    raw, headers = mangle(raw, sign(raw, keypair[0], str(int(time.time()))))
    response = client.post("/webhooks/telnyx", data=raw, headers=headers, content_type="application/json")
    assert response.status_code == 401
    assert response.json == {"error": "invalid signature", "status": 401}
    time.sleep(0.05)
    settle(app)
    assert telnyx.commands == []


def test_webhook_signed_by_another_key_is_refused(app, post_webhook, telnyx, settle):
    from fixtures import new_keypair

    response = post_webhook(load_fixture("call_initiated"), key=new_keypair()[0])
    assert response.status_code == 401
    settle(app)
    assert telnyx.commands == []


# Every reason parse_event refuses a body is in test_events.py; here, that its message reaches the sender.
@pytest.mark.parametrize(
    "raw, message",
    [
        (b"{not json", "body is not valid JSON"),
        (b'{"data": {"payload": {"call_control_id": "v3:x"}}}', "missing data.event_type"),
    ],
)
def test_malformed_bodies_get_400_with_the_parse_error(app, post_webhook, telnyx, raw, message):
    response = post_webhook(raw)
    assert response.status_code == 400
    assert message in response.json["error"]
    assert telnyx.commands == []


def test_oversize_body_is_refused_before_anything_else(client, raw_config, telnyx):
    big = b"x" * (raw_config["webhook"]["max_body_bytes"] + 1)
    response = client.post("/webhooks/telnyx", data=big, content_type="application/json")
    assert response.status_code == 413
    assert response.json == {"error": "body too large", "status": 413}
    assert telnyx.commands == []


def test_redelivery_is_dropped_but_acknowledged(app, post_webhook, telnyx, settle):
    body = load_fixture("call_initiated")
    assert post_webhook(body).json == {"status": "accepted"}
    assert post_webhook(body).json == {"status": "duplicate"}
    settle(app)
    assert telnyx.actions() == ["answer"]


def test_unknown_event_type_is_acknowledged_and_ignored(app, post_webhook, telnyx, settle):
    post_webhook(load_fixture("call_initiated"))
    settle(app)
    body = with_ids(load_fixture("call_answered"))
    body["data"]["event_type"] = "call.deepfake_detection.result"
    assert post_webhook(body).status_code == 200
    settle(app)
    assert telnyx.actions() == ["answer"]


def test_events_after_hangup_send_nothing(app, post_webhook, telnyx, settle):
    for name in ["call_initiated", "call_answered", "call_hangup", "call_speak_ended", "call_transcription"]:
        post_webhook(load_fixture(name))
        settle(app)
    assert telnyx.actions() == ["answer", "speak", "transcription_start"]


def test_command_after_hangup_race_is_benign(app, post_webhook, telnyx, settle):
    post_webhook(load_fixture("call_initiated"))
    settle(app)
    telnyx.ended.add(CALL)  # the caller hung up; Telnyx answers 422/90018 from now on
    assert post_webhook(load_fixture("call_answered")).status_code == 200
    settle(app)
    assert telnyx.actions() == ["answer"]
    assert post_webhook(load_fixture("call_hangup")).status_code == 200
    settle(app)
    assert app.extensions["receptionist"].stats()["live_calls"] == 0


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok" and response.json["live_calls"] == 0


def test_healthz_says_stopping_once_shutdown_begins(app, client):
    app.extensions["receptionist"].begin_shutdown()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "stopping"


def test_wrong_method_and_unknown_path_get_json_errors(client):
    assert client.get("/webhooks/telnyx").json["status"] == 405
    assert client.get("/nope").json["status"] == 404


def test_verification_off_accepts_unsigned_and_warns(make_app, settings, telnyx, scripted_brain, caplog):
    with caplog.at_level(logging.WARNING):
        unverified = make_app(settings, telnyx=telnyx, brain=scripted_brain)
    assert "VERIFICATION IS OFF" in caplog.text
    raw = json.dumps(load_fixture("call_initiated")).encode()
    response = unverified.test_client().post("/webhooks/telnyx", data=raw, content_type="application/json")
    assert response.status_code == 200
    assert [command.action for command in telnyx.wait_for(1)] == ["answer"]


def test_body_without_event_id_is_deduplicated_by_what_it_says_not_how_it_was_delivered(
    app, post_webhook, telnyx, settle
):
    body = load_fixture("call_initiated")
    del body["data"]["id"]
    assert post_webhook(body).json == {"status": "accepted"}
    assert post_webhook(body).json == {"status": "duplicate"}
    body["meta"] = {"attempt": 2, "delivered_to": "https://failover.example.com/webhooks/telnyx"}
    assert post_webhook(json.dumps(body, indent=1, sort_keys=True).encode()).json == {"status": "duplicate"}
    del body["meta"]
    assert post_webhook(body).json == {"status": "duplicate"}
    body["data"].update(event_type="call.hangup", occurred_at="2026-03-02T15:04:06.000000Z")  # another event
    assert post_webhook(body).json == {"status": "accepted"}
    settle(app)
    assert telnyx.actions() == ["answer"]


def test_every_command_body_sent_in_a_conversation_matches_the_official_schema(
    app, post_webhook, telnyx, scripted_brain, settle
):
    from brains import BrainReply
    from spec import validate_request

    weekend = "We're open Saturday nine to one, and weekdays from eight until five."
    scripted_brain.enqueue(BrainReply(weekend, "continue", 0.9))
    scripted_brain.enqueue(BrainReply("Connecting you to billing.", "transfer", 0.9, "billing"))
    steps = ["call_initiated", "call_answered", "call_speak_ended", "call_transcription"]
    for name in steps:
        post_webhook(load_fixture(name))
        settle(app)
    post_webhook(with_ids(load_fixture("call_transcription")))  # barge-in while the reply plays
    settle(app)
    post_webhook(with_ids(load_fixture("call_speak_ended")))
    post_webhook(with_ids(load_fixture("call_speak_ended")))
    settle(app)
    post_webhook(load_fixture("transfer_leg_answered"))
    post_webhook(load_fixture("call_hangup"))
    settle(app)
    assert telnyx.actions() == [
        "answer", "speak", "transcription_start", "speak", "playback_stop", "speak", "transfer", "transcription_stop",
    ]
    for command in telnyx.commands:
        validate_request(command.action, command.body)
    assert telnyx.commands[6].body["to"] == "+15555550101"


# ---------------------------------------------------------------- production wiring


@pytest.mark.parametrize(
    "env, ai, kind",
    [
        ({}, {}, IntentBrain),
        ({"OPENAI_API_KEY": FAKE_KEY}, {}, LLMBrain),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, {}, LLMBrain),
        ({"OPENAI_API_KEY": FAKE_KEY}, {"enabled": False}, IntentBrain),
    ],
)
def test_build_brain_picks_by_environment(raw_config, env, ai, kind, caplog):
    caplog.set_level(logging.INFO, logger="app")
    raw_config["webhook"]["verify_signatures"] = False
    raw_config["ai"].update(ai)
    assert isinstance(build_brain(build_settings(raw_config, env)), kind)
    expected = "brain: LLM" if kind is LLMBrain else "brain: offline intent matcher"
    assert expected in caplog.text
    assert FAKE_KEY not in caplog.text
