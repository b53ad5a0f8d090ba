"""telnyx_client.py: the Call Control client against `responses`: paths, bodies, auth, retries and the benign 90018,
redirects and oversize answers. Real servers (trickles, memory, the host a redirect names) are in
tests/reliability/test_downstream.py."""

from __future__ import annotations

import json
import re

import pytest
import requests
import responses

from telnyx_client import (
    MAX_ANSWER_BYTES,
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
    assert configured.attempt_deadline_s == 4.0, "each attempt as a whole: connect + read timeout, no config key"


@responses.activate
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_raised_at_once_naming_only_its_host(telnyx_client, sleeps, status):
    location = "https://elsewhere.test/v2/calls/x/actions/speak?token=secret"
    responses.post(f"{URL}/speak", status=status, headers={"Location": location})
    responses.add(responses.GET, location, json=OK)
    responses.add(responses.POST, location, json=OK)
    with pytest.raises(TelnyxHTTPError) as raised:
        telnyx_client.speak(CALL, "Hello", "Telnyx.KokoroTTS.af", command_id="c")
    assert (raised.value.status, raised.value.code) == (status, None)
    assert str(raised.value) == f"HTTP {status} code=None redirect to host elsewhere.test not followed"
    assert [call.request.url for call in responses.calls] == [f"{URL}/speak"] and sleeps == []


@responses.activate
@pytest.mark.parametrize(
    "location, named",
    [(None, "nowhere (no Location)"), ("/v2/elsewhere", "the same host"), ("http://[::1/x", "a malformed Location")],
)
def test_a_redirect_without_a_usable_location_is_still_a_named_error(telnyx_client, location, named):
    responses.post(f"{URL}/answer", status=302, headers={"Location": location} if location else {})
    with pytest.raises(TelnyxHTTPError, match=re.escape(f"redirect to {named} not followed")):
        telnyx_client.answer(CALL, command_id="c")


def padded(size: int, body: dict) -> bytes:
    """`body` as JSON, padded with leading spaces to `size` bytes: still valid JSON."""
    text = json.dumps(body).encode()
    return b" " * (size - len(text)) + text


@responses.activate
def test_an_answer_of_exactly_the_limit_is_read_and_one_byte_more_is_an_error(telnyx_client, sleeps):
    responses.post(f"{URL}/answer", body=padded(MAX_ANSWER_BYTES, OK), content_type="application/json")
    assert telnyx_client.answer(CALL, command_id="c") is True
    responses.replace(responses.POST, f"{URL}/answer", body=padded(MAX_ANSWER_BYTES + 1, OK))
    with pytest.raises(TelnyxHTTPError) as raised:
        telnyx_client.answer(CALL, command_id="c")
    assert raised.value.status == 200 and f"larger than {MAX_ANSWER_BYTES} bytes" in str(raised.value)
    assert len(responses.calls) == 2 and sleeps == [], "a 200 is not a retryable status, whatever its size"


@responses.activate
def test_an_oversize_answer_with_a_retryable_status_is_retried(telnyx_client, sleeps):
    responses.post(f"{URL}/answer", status=503, body=padded(MAX_ANSWER_BYTES + 1, error_body("10007")))
    responses.post(f"{URL}/answer", json=OK)
    assert telnyx_client.answer(CALL, command_id="c") is True
    assert len(responses.calls) == 2 and len(sleeps) == 1


@responses.activate
def test_an_error_envelope_is_still_read_from_a_streamed_answer(telnyx_client):
    responses.post(f"{URL}/speak", status=422, body=padded(4000, error_body("90034", "Call not answered yet")))
    with pytest.raises(TelnyxHTTPError) as raised:
        telnyx_client.speak(CALL, "Hi", "Telnyx.KokoroTTS.af", command_id="c")
    assert (raised.value.code, raised.value.title) == ("90034", "Call not answered yet")


def test_connections_direct_or_through_an_http_proxy_report_their_socket_to_the_deadline():
    """The watchdog can only shut a trickle's socket if the connection reports it: the pools must be the client's."""
    adapter = TelnyxClient("k", BASE).session.get_adapter(BASE)
    for manager in (adapter.poolmanager, adapter.proxy_manager_for("http://proxy.test:3128")):
        pools = manager.pool_classes_by_scheme
        assert {scheme: pool.ConnectionCls.__name__ for scheme, pool in pools.items()} == {
            "http": "_WatchedHTTPConnection", "https": "_WatchedHTTPSConnection"}


def test_command_ids_are_deterministic_and_distinct():
    assert command_id_for("call", "evt-1", "Speak", "0") == command_id_for("call", "evt-1", "Speak", "0")
    assert command_id_for("call", "evt-1", "Speak", "0") != command_id_for("call", "evt-2", "Speak", "0")
    assert command_id_for("call", "evt-1", "Speak", "0") != command_id_for("call", "evt-1", "Speak", "1")
