"""ai_switch.py: the AI switch reaches the next new call, survives a restart, and the rollback guard trips it.

The scripted API (`/admin/ai`) is tested here too: it is the switch as scripts see it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

import pytest

from ai_switch import AiSwitch, RollbackGuard, Verdict, breach, verdict
from brains import BrainError
from calls import CallState
from config import RollbackConfig, build_settings
from fixtures import load_fixture, sign, with_ids
from stores.state_file import StateFile

ADMIN = "admin-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {ADMIN}"}


# ---------------------------------------------------------------- pure parts


def test_verdict_counts_brain_failures_and_hand_offs():
    failed = CallState("a", escalation_reason="brain failed: model request timed out", transfer_attempted=True)
    asked = CallState("b", escalation_reason="caller asked for a person", transfer_attempted=True)
    assert verdict(failed) == Verdict(brain_failed=True, escalated=True)
    assert verdict(asked) == Verdict(brain_failed=False, escalated=True)
    assert verdict(CallState("c")) == Verdict(brain_failed=False, escalated=False)


@pytest.mark.parametrize(("failed", "escalated", "found"), [
    (2, 2, None),  # at the limits: not over them
    (3, 3, "brain_failures"),
    (0, 5, "escalations"),
])
def test_breach_needs_a_full_window_over_a_threshold(failed, escalated, found):
    config = RollbackConfig(window_calls=5, max_brain_failure_share=0.4, max_escalation_share=0.8)
    window = [Verdict(i < failed, i < escalated) for i in range(5)]
    assert (breach(window, config) or (None,))[0] == found
    assert breach(window[:4], config) is None  # not enough calls yet


# ---------------------------------------------------------------- the switch in the store


def _settings(raw_config):
    raw_config["webhook"]["verify_signatures"] = False
    return build_settings(raw_config, {})


def test_a_change_survives_a_restart_in_the_state_file(raw_config, tmp_path):
    settings = _settings(raw_config)
    path = str(tmp_path / "ops_state.json")
    AiSwitch(StateFile(path), settings, clock=lambda: 1000.0).change(False, 40, "test")
    after_restart = AiSwitch(StateFile(path), settings).current()
    assert (after_restart.enabled, after_restart.canary_percent, after_restart.source) == (False, 40.0, "test")
    assert after_restart.changed_at == 1000.0


def test_an_unreadable_state_file_is_set_aside_and_the_config_used(raw_config, tmp_path, caplog):
    path = tmp_path / "ops_state.json"
    path.write_text("{half a file")
    with caplog.at_level(logging.ERROR):
        setting = AiSwitch(StateFile(str(path)), _settings(raw_config)).current()
    assert setting.enabled is True and setting.source == "config"
    assert (tmp_path / "ops_state.json.unreadable").read_text() == "{half a file"
    assert "unreadable" in caplog.text


@pytest.mark.both_stores
def test_switching_off_sends_the_next_new_call_to_a_person(app, post_webhook, telnyx, settle, raw_config):
    receptionist = app.extensions["receptionist"]
    receptionist.switch.change(False, 100, "test")
    for name in ["call_initiated", "call_answered"]:
        post_webhook(load_fixture(name))
        settle(app)
    assert "transcription_start" not in telnyx.actions()
    assert telnyx.actions() == ["answer", "speak"]
    assert telnyx.commands[-1].body["payload"] == raw_config["assistant"]["transfer_announcement"]


@pytest.mark.both_stores
def test_a_change_reaches_another_process_sharing_the_store(make_app, raw_config, telnyx, scripted_brain, settle):
    """Two services on one store (two workers, or two instances on Redis): one switches, the other obeys."""
    first = make_app(raw_config, telnyx=telnyx, brain=scripted_brain)
    second = make_app(raw_config, telnyx=telnyx, brain=scripted_brain)
    first.extensions["receptionist"].switch.change(False, 10, "test")
    setting = second.extensions["receptionist"].switch.current()
    if first.extensions["receptionist"].store.outlives_process:
        assert (setting.enabled, setting.canary_percent) == (False, 10.0)
    else:  # memory: one process only; the second reads the state file when it starts
        restarted = make_app(raw_config, telnyx=telnyx, brain=scripted_brain)
        assert restarted.extensions["receptionist"].switch.current().enabled is False


# ---------------------------------------------------------------- the guard, in the service


def place_call(post_webhook, app, settle, number: int) -> None:
    """One whole call with one caller turn: initiated, answered, greeted, a question, hung up."""
    call_control_id = f"v3:guard-{number}-{uuid.uuid4().hex[:8]}"
    for name in ["call_initiated", "call_answered", "call_speak_ended", "call_transcription", "call_hangup"]:
        post_webhook(with_ids(load_fixture(name), event_id=str(uuid.uuid4()), call_control_id=call_control_id))
        settle(app)


@pytest.mark.both_stores
def test_the_guard_trips_when_the_brain_starts_failing(make_app, raw_config, telnyx, scripted_brain, settle,
                                                       keypair, caplog):
    raw_config["rollback"] = {"window_calls": 4, "max_brain_failure_share": 0.5, "max_escalation_share": 1.0}
    app = make_app(raw_config, telnyx=telnyx, brain=scripted_brain)
    client = app.test_client()

    def post(body):
        raw = json.dumps(body).encode()
        headers = sign(raw, keypair[0], str(int(time.time())))
        return client.post("/webhooks/telnyx", data=raw, headers=headers, content_type="application/json")

    receptionist = app.extensions["receptionist"]
    for number in range(4):  # a healthy model
        place_call(post, app, settle, number)
    assert receptionist.switch.current().enabled
    for number in range(4, 7):
        scripted_brain.enqueue(BrainError("model API answered HTTP 503"))
        with caplog.at_level(logging.ERROR):
            place_call(post, app, settle, number)
        if number < 6:  # 1 and 2 failures of the last 4: not over half yet
            assert receptionist.switch.current().enabled, number
    setting = receptionist.switch.current()
    assert setting.tripped and "brain failed on 75% of the last 4 calls" in setting.reason
    assert "rollback guard: AI switched off" in caplog.text
    telnyx.commands.clear()
    place_call(post, app, settle, 99)  # the next call goes straight to a person
    assert "transcription_start" not in telnyx.actions() and "transfer" in telnyx.actions()


def test_switching_back_on_starts_a_fresh_window(raw_config, tmp_path):
    shared = StateFile(str(tmp_path / "state.json"))
    config = RollbackConfig(window_calls=3, max_brain_failure_share=0.5, max_escalation_share=1.0)
    switch = AiSwitch(shared, _settings(raw_config))
    guard = RollbackGuard(shared, switch, config)
    failing = CallState("x", escalation_reason="brain failed: x", transfer_attempted=True)
    for _ in range(3):
        guard.call_finished(failing)
    assert switch.current().tripped
    switch.change(True, 100, "a person")
    guard.call_finished(failing)
    assert switch.current().enabled and len(guard.window()) == 1
    guard.call_finished(CallState("y", ai=False))  # not the assistant's call: not counted
    assert len(guard.window()) == 1


# ---------------------------------------------------------------- /admin/ai for scripts


@pytest.fixture
def admin_client(make_app, raw_config, telnyx, scripted_brain):
    return make_app(raw_config, telnyx=telnyx, brain=scripted_brain, env={"ADMIN_TOKEN": ADMIN}).test_client()


def test_the_api_round_trip(admin_client, caplog):
    assert admin_client.get("/admin/ai", headers=BEARER).json["enabled"] is True
    with caplog.at_level(logging.WARNING):
        changed = admin_client.post("/admin/ai", json={"enabled": False, "canary_percent": 20}, headers=BEARER)
    assert changed.status_code == 200
    assert changed.json["enabled"] is False and changed.json["canary_percent"] == 20
    assert changed.json["source"].startswith("api") and changed.json["changed_at"] > 0
    assert "ai switch: enabled=False canary_percent=20 by api" in caplog.text
    assert admin_client.get("/admin/ai", headers=BEARER).json["canary_percent"] == 20


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope-nope-nope-nope"}, {"Authorization": ADMIN}])
def test_the_api_wants_the_bearer_token(admin_client, headers):
    assert admin_client.get("/admin/ai", headers=headers).status_code == 401
    assert admin_client.post("/admin/ai", json={"enabled": False}, headers=headers).status_code == 401


@pytest.mark.parametrize("body", [
    {"enabled": "false"}, {"canary_percent": 50}, {"enabled": True, "canary_percent": 101},
    {"enabled": True, "canary_percent": True}, {"enabled": True, "canary_percent": "many"}, [1, 2],
])
def test_the_api_refuses_bad_bodies_and_changes_nothing(admin_client, body):
    response = admin_client.post("/admin/ai", json=body, headers=BEARER)
    assert response.status_code == 400 and "error" in response.json
    assert admin_client.get("/admin/ai", headers=BEARER).json["source"] == "config"


def test_without_admin_token_there_is_no_admin(client):
    assert client.get("/admin/ai", headers=BEARER).status_code == 404
    assert client.get("/admin/").status_code == 404
    assert client.get("/admin/login").status_code == 404
