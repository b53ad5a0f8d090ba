"""telnyx_client.py: the Call Control client against `responses`: paths, bodies, auth, retries and the benign 90018."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from telnyx_client import (
    TelnyxClient,
    TelnyxConnectionError,
    TelnyxHTTPError,
    TelnyxTimeout,
    command_id_for,
)

BASE = "https://api.telnyx.test/v2"
CALL = "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg"
URL = f"{BASE}/calls/{CALL}/actions"
OK = {"data": {"result": "ok"}}


def error_body(code: str, title: str = "error") -> dict:
    return {"errors": [{"code": code, "title": title, "detail": title}]}


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def telnyx_client(sleeps) -> TelnyxClient:
    return TelnyxClient("KEY_test", BASE, max_attempts=3, max_backoff=0.5, sleep=sleeps.append)


def sent_bodies() -> list[dict]:
    return [json.loads(call.request.body) for call in responses.calls]


@responses.activate
@pytest.mark.parametrize(
    "verb, args, action, expected",
    [
        ("answer", (), "answer", {}),
        ("speak", ("Hello", "Telnyx.KokoroTTS.af"), "speak", {"payload": "Hello", "voice": "Telnyx.KokoroTTS.af"}),
        ("transcription_start", (), "transcription_start", {}),
        ("transcription_stop", (), "transcription_stop", {}),
        ("playback_stop", (), "playback_stop", {}),
        ("transfer", ("+15555550100",), "transfer", {"to": "+15555550100"}),
        ("hangup", (), "hangup", {}),
    ],
)
def test_each_verb_posts_its_action_with_bearer_auth(telnyx_client, verb, args, action, expected):
    responses.post(f"{URL}/{action}", json=OK)
    assert getattr(telnyx_client, verb)(CALL, *args, command_id="cmd-1") is True
    request = responses.calls[0].request
    assert request.headers["Authorization"] == "Bearer KEY_test"
    assert json.loads(request.body) == {**expected, "command_id": "cmd-1"}


@responses.activate
def test_call_control_id_keeps_its_colon_in_the_path(telnyx_client):
    responses.post(f"{URL}/hangup", json=OK)
    telnyx_client.hangup(CALL, command_id="c")
    assert responses.calls[0].request.path_url == f"/v2/calls/{CALL}/actions/hangup"


@responses.activate
def test_call_already_ended_is_a_normal_outcome(telnyx_client, sleeps):
    responses.post(f"{URL}/speak", status=422, json=error_body("90018", "Call has already ended"))
    assert telnyx_client.speak(CALL, "Hi", "Telnyx.KokoroTTS.af", command_id="c") is False
    assert len(responses.calls) == 1 and sleeps == []


@responses.activate
@pytest.mark.parametrize("status, code", [(422, "90015"), (400, "10015"), (401, "10009"), (404, "404"), (403, "x")])
def test_other_client_errors_raise_without_retry(telnyx_client, status, code, sleeps):
    responses.post(f"{URL}/answer", status=status, json=error_body(code, "nope"))
    with pytest.raises(TelnyxHTTPError) as raised:
        telnyx_client.answer(CALL, command_id="c")
    assert (raised.value.status, raised.value.code) == (status, code)
    assert len(responses.calls) == 1 and sleeps == []


@responses.activate
@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_retryable_statuses_are_retried_with_the_same_command_id(telnyx_client, status, sleeps):
    responses.post(f"{URL}/answer", status=status, json=error_body("10007"))
    responses.post(f"{URL}/answer", status=status, json=error_body("10007"))
    responses.post(f"{URL}/answer", json=OK)
    assert telnyx_client.answer(CALL, command_id="same-id") is True
    assert [body["command_id"] for body in sent_bodies()] == ["same-id"] * 3
    assert len(sleeps) == 2 and all(0 < s <= 0.5 for s in sleeps)


@responses.activate
def test_gives_up_after_max_attempts(telnyx_client, sleeps):
    responses.post(f"{URL}/answer", status=503, json=error_body("10007"))
    with pytest.raises(TelnyxHTTPError) as raised:
        telnyx_client.answer(CALL, command_id="c")
    assert raised.value.status == 503
    assert len(responses.calls) == 3 and len(sleeps) == 2


@responses.activate
def test_huge_retry_after_is_capped(telnyx_client, sleeps):
    responses.post(f"{URL}/answer", status=429, headers={"Retry-After": "3600"}, json=error_body("10011"))
    responses.post(f"{URL}/answer", json=OK)
    assert telnyx_client.answer(CALL, command_id="c") is True
    assert sleeps == [0.5]


@responses.activate
def test_connection_errors_are_retried_then_named(telnyx_client, sleeps):
    responses.post(f"{URL}/answer", body=requests.ConnectionError("reset"))
    responses.post(f"{URL}/answer", body=requests.ConnectionError("reset"))
    responses.post(f"{URL}/answer", body=requests.ConnectionError("reset"))
    with pytest.raises(TelnyxConnectionError):
        telnyx_client.answer(CALL, command_id="c")
    assert len(responses.calls) == 3


@responses.activate
def test_timeouts_are_retried_then_named(telnyx_client):
    responses.post(f"{URL}/hangup", body=requests.ReadTimeout("slow"))
    responses.post(f"{URL}/hangup", json=OK)
    assert telnyx_client.hangup(CALL, command_id="c") is True
    responses.replace(responses.POST, f"{URL}/hangup", body=requests.ReadTimeout("slow"))
    with pytest.raises(TelnyxTimeout):
        telnyx_client.hangup(CALL, command_id="c")


@responses.activate
def test_garbled_error_body_still_raises_a_named_error(telnyx_client):
    responses.post(f"{URL}/answer", status=422, body="<html>bad gateway</html>")
    with pytest.raises(TelnyxHTTPError) as raised:
        telnyx_client.answer(CALL, command_id="c")
    assert raised.value.code is None


def test_requests_carry_explicit_timeouts():
    configured = TelnyxClient("k", BASE, connect_timeout=1.5, read_timeout=2.5)
    assert configured.timeout == (1.5, 2.5)


def test_command_ids_are_deterministic_and_distinct():
    assert command_id_for("call", "evt-1", "Speak", "0") == command_id_for("call", "evt-1", "Speak", "0")
    assert command_id_for("call", "evt-1", "Speak", "0") != command_id_for("call", "evt-2", "Speak", "0")
    assert command_id_for("call", "evt-1", "Speak", "0") != command_id_for("call", "evt-1", "Speak", "1")
