"""The fake Telnyx API: answers, error envelopes, command_id dedup and fault injection, over real HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from background import wait_until
from simulator.carrier import Carrier, SimCall
from simulator.fake_telnyx import FakeTelnyx, OtherHost
from simulator.faults import (
    CUT,
    ENDLESS,
    RESET,
    FaultPlan,
    header_trickle,
    http_error,
    huge_body,
    redirect,
    slow,
    trickle,
)

AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture
def fake(carrier):
    with FakeTelnyx(carrier, seed=7) as fake:
        yield fake


@pytest.fixture
def loopback():
    """No carrier: every well-formed command for any call is accepted unless a fault is scripted."""
    with FakeTelnyx() as fake:
        yield fake


def post(fake: FakeTelnyx, call_control_id: str, action: str, body=None, headers=AUTH) -> requests.Response:
    url = f"{fake.base_url}/calls/{call_control_id}/actions/{action}"
    return requests.post(url, json=body if body is not None else {}, headers=headers, timeout=5)


def new_call(carrier: Carrier, answered: bool = False, fake: FakeTelnyx | None = None) -> SimCall:
    call = carrier.place_call("+13125550111", "+13125550100")
    if answered:
        assert post(fake, call.call_control_id, "answer", {"command_id": "answer-1"}).status_code == 200
    return call


def error_of(response: requests.Response) -> dict:
    [error] = response.json()["errors"]
    assert isinstance(error["code"], str)
    return error


def test_answer_is_acknowledged_with_the_real_success_body(fake, carrier):
    call = new_call(carrier)
    response = post(fake, call.call_control_id, "answer", {"command_id": "c1"})
    assert (response.status_code, response.json()) == (200, {"data": {"result": "ok"}})
    assert [e.event_type for e in carrier.events] == ["call.initiated", "call.answered"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}])
def test_missing_or_malformed_bearer_is_401_10009(fake, carrier, headers):
    response = post(fake, new_call(carrier).call_control_id, "answer", headers=headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == "10009"


def test_unknown_action_is_404(fake, carrier):
    response = post(fake, new_call(carrier).call_control_id, "dance")
    assert response.status_code == 404


def test_unknown_call_control_id_is_90015(fake):
    response = post(fake, "v3:nope", "answer")
    assert response.status_code == 422
    assert error_of(response)["code"] == "90015"


def test_speak_before_answer_is_90034(fake, carrier):
    response = post(fake, new_call(carrier).call_control_id, "speak", {"payload": "hi", "voice": "Telnyx.KokoroTTS.af"})
    assert response.status_code == 422
    assert error_of(response)["code"] == "90034"


def test_second_transcription_start_is_90054(fake, carrier):
    call = new_call(carrier, answered=True, fake=fake)
    assert post(fake, call.call_control_id, "transcription_start", {"command_id": "t1"}).status_code == 200
    response = post(fake, call.call_control_id, "transcription_start", {"command_id": "t2"})
    assert (response.status_code, error_of(response)["code"]) == (422, "90054")


def test_every_command_after_hangup_is_90018(fake, carrier):
    call = new_call(carrier, answered=True, fake=fake)
    assert post(fake, call.call_control_id, "hangup", {"command_id": "h1"}).status_code == 200
    for action, body in [("speak", {"payload": "hi", "voice": "v"}), ("hangup", {}), ("transfer", {"to": "+1555"})]:
        response = post(fake, call.call_control_id, action, body)
        assert (response.status_code, error_of(response)["code"]) == (422, "90018"), action
    assert carrier.events[-1].event_type == "call.hangup"
    assert carrier.events[-1].payload["hangup_source"] == "callee"


@pytest.mark.parametrize(
    ("action", "body", "code", "pointer"),
    [
        ("speak", {"voice": "Telnyx.KokoroTTS.af"}, "10004", "/payload"),
        ("speak", {"payload": "hi", "voice": "v", "language": "klingon"}, "10032", "/language"),
        ("speak", {"payload": 5, "voice": "v"}, "10015", "/payload"),
        ("transfer", {}, "10004", "/to"),
        ("transfer", {"to": "+15555550100", "timeout_secs": "thirty"}, "10015", "/timeout_secs"),
        ("transcription_start", {"transcription_engine": "Whisper"}, "10032", "/transcription_engine"),
        ("reject", {"cause": "BECAUSE"}, "10032", "/cause"),
    ],
)
def test_invalid_body_is_422_naming_the_field(fake, carrier, action, body, code, pointer):
    call = new_call(carrier, answered=True, fake=fake)
    response = post(fake, call.call_control_id, action, body)
    error = error_of(response)
    assert (response.status_code, error["code"], error["source"]["pointer"]) == (422, code, pointer)


def test_body_that_is_not_json_is_400(fake, carrier):
    url = f"{fake.base_url}/calls/{new_call(carrier).call_control_id}/actions/answer"
    response = requests.post(url, data=b"{nope", headers=AUTH, timeout=5)
    assert (response.status_code, error_of(response)["code"]) == (400, "10015")


def test_repeated_command_id_is_acknowledged_but_not_acted_on(fake, carrier):
    call = new_call(carrier, answered=True, fake=fake)
    body = {"payload": "Hello there", "voice": "Telnyx.KokoroTTS.af", "command_id": "speak-1"}
    assert post(fake, call.call_control_id, "speak", body).status_code == 200
    assert post(fake, call.call_control_id, "speak", body).status_code == 200
    assert [s.text for s in call.speeches] == ["Hello there"]
    assert [r.deduplicated for r in fake.requests_for(call.call_control_id, action="speak")] == [False, True]
    assert fake.deduplicated == 1


def test_command_id_dedup_is_per_call(fake, carrier):
    first, second = new_call(carrier), new_call(carrier)
    for call in (first, second):
        assert post(fake, call.call_control_id, "answer", {"command_id": "same"}).status_code == 200
    assert first.answered and second.answered
    assert fake.deduplicated == 0


def test_a_refused_command_does_not_burn_its_command_id(fake, carrier):
    call = new_call(carrier)
    body = {"payload": "hi", "voice": "v", "command_id": "early"}
    assert post(fake, call.call_control_id, "speak", body).status_code == 422  # not answered yet
    post(fake, call.call_control_id, "answer", {"command_id": "a"})
    assert post(fake, call.call_control_id, "speak", body).status_code == 200
    assert len(call.speeches) == 1


def test_injected_faults_fail_a_command_once_then_let_the_retry_through(fake, carrier):
    fake.faults = FaultPlan(error_rate=1.0, rate_limit_share=0.0)
    call = new_call(carrier)
    first = post(fake, call.call_control_id, "answer", {"command_id": "a1"})
    retry = post(fake, call.call_control_id, "answer", {"command_id": "a1"})
    assert first.status_code in (500, 503) and retry.status_code == 200
    assert call.answered and fake.requests_for(call.call_control_id)[0].fault is not None


def test_rate_limit_fault_sends_429_with_retry_after(fake, carrier):
    fake.faults_by_action["answer"] = FaultPlan(error_rate=1.0, rate_limit_share=1.0, retry_after_s=3600)
    response = post(fake, new_call(carrier).call_control_id, "answer", {"command_id": "a1"})
    assert (response.status_code, error_of(response)["code"], response.headers["Retry-After"]) == (429, "10011", "3600")


def test_ambiguous_fault_acts_then_fails_and_the_retry_is_deduplicated(fake, carrier):
    fake.faults = FaultPlan(error_rate=1.0, ambiguous_share=1.0)
    call = new_call(carrier)
    assert post(fake, call.call_control_id, "answer", {"command_id": "a1"}).status_code == 503
    assert call.answered
    assert post(fake, call.call_control_id, "answer", {"command_id": "a1"}).status_code == 200
    assert fake.deduplicated == 1 and call.duplicate_effects == 0
    assert [e.event_type for e in carrier.events].count("call.answered") == 1


# ---------------------------------------------------------------- without a carrier; scripted faults


def statuses(fake: FakeTelnyx, call_control_id: str, action: str, times: int) -> list[int]:
    return [post(fake, call_control_id, action).status_code for _ in range(times)]


def test_without_a_carrier_every_well_formed_command_is_accepted_and_recorded(loopback):
    response = post(loopback, "v3:any", "speak", {"payload": "hi", "voice": "v", "command_id": "s1"})
    assert (response.status_code, response.json()) == (200, {"data": {"result": "ok"}})
    [record] = loopback.requests_for("v3:any")
    assert (record.action, record.command_id, record.authorization) == ("speak", "s1", AUTH["Authorization"])
    assert record.acted and record.ok and record.fault is None
    refused = post(loopback, "v3:any", "speak", {"voice": "v"})
    assert (refused.status_code, error_of(refused)["code"]) == (422, "10004"), "bodies are still validated"


def test_planned_faults_answer_the_next_requests_once_each_in_order(loopback):
    loopback.plan("answer", http_error(503), http_error(429, "10011", retry_after="7"))
    first, second, third = (post(loopback, "v3:a", "answer", {"command_id": "a1"}) for _ in range(3))
    assert (first.status_code, error_of(first)["code"], error_of(first)["title"]) == (503, "10007",
                                                                                     "Service unavailable")
    assert (second.status_code, error_of(second)["code"], second.headers["Retry-After"]) == (429, "10011", "7")
    assert third.status_code == 200
    records = loopback.requests_for("v3:a")
    assert [r.fault for r in records] == ["503 10007", "429 10011 Retry-After 7", None]
    assert [r.acted for r in records] == [False, False, True], "a refused request is not carried out"


def test_a_fault_for_one_call_comes_first_then_one_for_every_call_then_always(loopback):
    loopback.always("answer", http_error(503))
    loopback.plan("answer", http_error(500))
    loopback.plan("answer", http_error(502), call="v3:a")
    assert statuses(loopback, "v3:b", "answer", 1) == [500]
    assert statuses(loopback, "v3:a", "answer", 3) == [502, 503, 503]
    loopback.clear_faults()
    assert statuses(loopback, "v3:a", "answer", 1) == [200]


def test_an_always_fault_lasts_and_leaves_other_actions_and_calls_alone(loopback):
    loopback.always("hangup", http_error(422, "90018"), call="v3:ended")
    assert statuses(loopback, "v3:ended", "hangup", 3) == [422] * 3
    assert error_of(post(loopback, "v3:ended", "hangup"))["title"] == "Call has already ended"
    assert statuses(loopback, "v3:ended", "answer", 1) == [200]
    assert statuses(loopback, "v3:other", "hangup", 1) == [200]


def test_a_reset_gives_no_answer_and_does_not_act(loopback):
    loopback.plan("answer", RESET)
    with pytest.raises(requests.ConnectionError):
        post(loopback, "v3:a", "answer", {"command_id": "a1"})
    assert post(loopback, "v3:a", "answer", {"command_id": "a1"}).status_code == 200
    reset, retry = loopback.requests_for("v3:a")
    assert (reset.status, reset.fault, reset.acted) == (0, "reset", False)
    assert (retry.acted, retry.deduplicated) == (True, False)


def test_a_cut_off_answer_was_acted_on_so_the_retry_is_deduplicated(fake, carrier):
    call = new_call(carrier)
    fake.plan("answer", CUT)
    with pytest.raises(requests.RequestException):
        post(fake, call.call_control_id, "answer", {"command_id": "a1"})
    assert call.answered
    assert post(fake, call.call_control_id, "answer", {"command_id": "a1"}).status_code == 200
    cut, retry = fake.requests_for(call.call_control_id)
    assert (cut.status, cut.fault, cut.acted) == (200, "cut", True)
    assert retry.deduplicated and call.duplicate_effects == 0


def test_a_slow_answer_is_acted_on_at_once_and_answered_late(loopback):
    loopback.plan("answer", slow(0.3))
    with pytest.raises(requests.Timeout):
        requests.post(f"{loopback.base_url}/calls/v3:a/actions/answer", json={"command_id": "a1"}, headers=AUTH,
                      timeout=(1, 0.1))
    assert wait_until(lambda: loopback.requests_for("v3:a"), 5), "the client's 0.1 s can pass before it is recorded"
    [late] = loopback.requests_for("v3:a")
    assert (late.status, late.fault, late.acted) == (200, "slow 0.3 s", True)
    started = time.monotonic()
    loopback.plan("answer", slow(0.3))
    assert post(loopback, "v3:a", "answer", {"command_id": "a2"}).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_a_trickled_answer_arrives_whole_one_byte_at_a_time(loopback):
    loopback.plan("answer", trickle(0.02))
    started = time.monotonic()
    response = post(loopback, "v3:a", "answer", {"command_id": "a1"})
    took = time.monotonic() - started
    assert (response.status_code, response.json()) == (200, {"data": {"result": "ok"}})
    assert took >= 0.02 * len(response.content) * 0.9
    assert loopback.requests_for("v3:a")[0].fault == "trickle 0.02 s"


@pytest.mark.parametrize(("status", "method"), [(301, "GET"), (302, "GET"), (307, "POST"), (308, "POST")])
def test_a_redirect_sends_a_client_that_follows_it_to_the_other_host(loopback, status, method):
    """The threat the client must resist: requests follows a redirect by default, turning a command into a GET
    (301, 302) or re-sending its body (307, 308) to whatever host the Location names, which answers 200."""
    body = {"payload": "Hello caller", "voice": "v", "command_id": "s1"}
    with OtherHost() as other:
        loopback.plan("speak", redirect(status, f"{other.url}/elsewhere"))
        followed = post(loopback, "v3:a", "speak", body)
    [record] = loopback.requests_for("v3:a")
    assert (followed.status_code, followed.json()) == (200, {"data": {"result": "ok"}})
    assert [(m, path) for m, path, _ in other.requests] == [(method, "/elsewhere")]
    sent = other.requests[0][2]
    assert (json.loads(sent) == body) if method == "POST" else sent == b"", "a 307 or 308 re-sends the spoken text"
    assert (record.status, record.fault, record.acted) == (status, f"{status} redirect", False)


def test_a_huge_body_is_the_answer_padded_with_spaces_and_written_lazily(loopback):
    loopback.plan("answer", huge_body(1000))
    small = post(loopback, "v3:a", "answer", {"command_id": "a1"})
    assert (len(small.content), small.json()) == (1000, {"data": {"result": "ok"}})
    size = 256 * 2**20
    loopback.plan("answer", huge_body(size))
    url = f"{loopback.base_url}/calls/v3:a/actions/answer"
    with requests.post(url, json={"command_id": "a2"}, headers=AUTH, timeout=5, stream=True) as huge:
        first = huge.raw.read(2**20)
        assert (huge.status_code, huge.headers["Content-Length"]) == (200, str(size))
    assert first == b" " * 2**20
    assert [r.fault for r in loopback.requests_for("v3:a")] == ["huge 1000 bytes", f"huge {size} bytes"]
    assert all(r.acted for r in loopback.requests_for("v3:a"))


def test_an_endless_body_keeps_coming(loopback):
    loopback.plan("answer", ENDLESS)
    url = f"{loopback.base_url}/calls/v3:a/actions/answer"
    with requests.post(url, json={"command_id": "a1"}, headers=AUTH, timeout=5, stream=True) as endless:
        received = 0
        for chunk in endless.iter_content(2**16):
            received += len(chunk)
            if received >= 8 * 2**20:
                break
        assert endless.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in endless.headers
    assert received >= 8 * 2**20
    assert loopback.requests_for("v3:a")[0].fault == "endless"


@pytest.mark.parametrize(("fault", "whole_head_at_once"), [(trickle(0.05), True), (header_trickle(0.05), False)])
def test_a_trickle_holds_back_the_body_or_the_headers_too(loopback, fault, whole_head_at_once):
    """trickle() sends the status line and headers at once; header_trickle() sends even those a byte at a time."""
    loopback.plan("answer", fault)
    host, port = loopback.base_url.split("/")[2].split(":")
    request = (b"POST /v2/calls/v3:a/actions/answer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
               b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        first = sock.recv(65536)
    assert first.startswith(b"H")
    assert (b"\r\n\r\n" in first) is whole_head_at_once, first
    if not whole_head_at_once:
        assert len(first) < len(b"HTTP/1.1 200 OK\r\n"), first
    assert loopback.requests_for("v3:a")[0].fault == fault.label


def test_latency_delays_every_answer_without_counting_as_a_fault(loopback):
    loopback.faults = FaultPlan(latency_s=0.2)
    started = time.monotonic()
    assert post(loopback, "v3:a", "answer").status_code == 200
    assert time.monotonic() - started >= 0.2
    assert loopback.requests_for("v3:a")[0].fault is None


def test_stopping_releases_a_slow_answer_with_a_reset():
    fake = FakeTelnyx().start()
    fake.always("answer", slow(30))
    outcome: list = []
    waiting = threading.Thread(target=lambda: outcome.append(_post_catching(fake)))
    waiting.start()
    assert wait_until(lambda: fake.requests_for("v3:a"), 5)
    fake.stop()
    waiting.join(5)
    assert not waiting.is_alive() and isinstance(outcome[0], requests.ConnectionError), outcome


def _post_catching(fake: FakeTelnyx):
    try:
        return post(fake, "v3:a", "answer", {"command_id": "a1"})
    except requests.RequestException as exc:
        return exc
