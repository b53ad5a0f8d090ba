"""RELIABILITY: the Telnyx API fails (5xx, 429 with a huge Retry-After, reset, cut-off answer, slow answer, 422).

The real TelnyxClient talks HTTP to a small Call Control API on 127.0.0.1 that can be told to fail. What
must hold: a bounded number of attempts, the same `command_id` on every attempt, no wait longer than the
client's configured cap (measured in wall time), no retry on 422, and 422 `90018` ("call has already
ended") as a normal outcome. End to end, whole calls driven through the signed webhook endpoint of
`create_app()` (which builds its TelnyxClient from the config, pointed at the faulty API) still end as
they should, and no logical command ever reached the API under two different command_ids.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from config import build_settings
from figures import record
from fixtures import encode, sign
from reliability_helpers import settle, wait_until
from security_helpers import background_failures, event, new_call_id, transcription, watching_logs
from telnyx_client import TelnyxClient, TelnyxConnectionError, TelnyxError, TelnyxHTTPError, TelnyxTimeout

API_KEY = "KEY_loopback_test"
CONNECT_S, READ_S, ATTEMPTS, BACKOFF_S = 0.5, 0.5, 3, 0.2
# The longest one command may take: every attempt times out on connect and read, every pause is capped.
CAP_S = ATTEMPTS * (CONNECT_S + READ_S) + (ATTEMPTS - 1) * BACKOFF_S
MARGIN_S = 0.5  # scheduling slack on a loaded machine; small next to what an unbounded wait would take
SLOW_S = 1.5  # an answer this late is past READ_S


# ---------------------------------------------------------------- a Call Control API on loopback that fails


@dataclass(frozen=True)
class Fault:
    """How the API answers one request: `kind` is status, reset, cut or slow."""

    kind: str
    status: int = 200
    code: str = ""
    retry_after: str | None = None

    @property
    def label(self) -> str:
        if self.kind != "status":
            return self.kind
        return f"{self.status} {self.code}" + (f" Retry-After {self.retry_after}" if self.retry_after else "")


def status(code: int, telnyx_code: str = "10007", retry_after: str | None = None) -> Fault:
    return Fault("status", code, telnyx_code, retry_after)


OK = Fault("status")
RESET = Fault("reset")  # the connection is reset before any answer
CUT = Fault("cut")  # 200 headers and half a body, then a reset
SLOW = Fault("slow")  # 200, but only after SLOW_S
RATE_LIMITED = status(429, "10011", retry_after="3600")
RETRYABLE = {
    "500": status(500),
    "503": status(503),
    "429 Retry-After 3600": RATE_LIMITED,
    "reset": RESET,
    "cut off mid-answer": CUT,
    f"answer after {SLOW_S} s": SLOW,
}
NAMED = {"500": TelnyxHTTPError, "503": TelnyxHTTPError, "429 Retry-After 3600": TelnyxHTTPError,
         "reset": TelnyxConnectionError, "cut off mid-answer": TelnyxConnectionError,
         f"answer after {SLOW_S} s": TelnyxTimeout}


@dataclass(frozen=True)
class Hit:
    """One request the API received, and how it was answered."""

    at: float
    call_control_id: str
    action: str
    body: dict[str, Any]
    fault: Fault

    @property
    def ok(self) -> bool:
        return self.fault == OK

    @property
    def command_id(self) -> str:
        return self.body.get("command_id", "")


class FaultyTelnyx:
    """Answers Call Control actions with 200 unless a fault is planned: `plan(action, *faults)` fails the next
    requests for that action in order (only that call's, with `call=`), `always(action, fault)` fails every one."""

    def __init__(self):
        self.hits: list[Hit] = []
        self._planned: dict[tuple[str | None, str], deque[Fault]] = defaultdict(deque)
        self._always: dict[str, Fault] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.handle_error = lambda *args: None  # a client that gave up mid-answer is expected here

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v2"

    def plan(self, action: str, *faults: Fault, call: str | None = None) -> None:
        with self._lock:
            self._planned[(call, action)].extend(faults)

    def always(self, action: str, fault: Fault) -> None:
        with self._lock:
            self._always[action] = fault

    def take(self, call_control_id: str, action: str, body: dict[str, Any]) -> Fault:
        with self._lock:
            planned = self._planned[(call_control_id, action)] or self._planned[(None, action)]
            fault = planned.popleft() if planned else self._always.get(action, OK)
            self.hits.append(Hit(time.monotonic(), call_control_id, action, body, fault))
            return fault

    def hits_for(self, call_control_id: str, action: str | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.call_control_id == call_control_id and action in (None, h.action)]

    def __enter__(self) -> FaultyTelnyx:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


def _handler(api: FaultyTelnyx) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API: the client's pool is exercised too

        def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            parts = self.path.split("/")  # /v2/calls/<id>/actions/<action>
            fault = api.take(parts[3], parts[-1], body)
            try:
                self._answer(fault)
            except OSError:  # the client timed out and left before the slow answer
                self.close_connection = True

        def _answer(self, fault: Fault) -> None:
            if fault.kind == "reset":
                return self._reset()
            if fault.kind == "slow" and api.stopping.wait(SLOW_S):
                return self._reset()
            if fault.kind == "cut":
                self._send(200, b'{"data": {"result": "ok"}}', cut=True)
                return self._reset()
            if fault.status == 200:
                return self._send(200, b'{"data": {"result": "ok"}}')
            error = {"errors": [{"code": fault.code, "title": "scripted failure", "detail": "scripted failure"}]}
            self._send(fault.status, json.dumps(error).encode(), fault.retry_after)

        def _send(self, code: int, data: bytes, retry_after: str | None = None, cut: bool = False) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            self.wfile.write(data[: len(data) // 2] if cut else data)
            self.wfile.flush()

        def _reset(self) -> None:
            """Close with an RST (SO_LINGER 0), not a polite FIN."""
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - fixed by http.server
            pass

    return Handler


@pytest.fixture
def api():
    with FaultyTelnyx() as server:
        yield server


@pytest.fixture
def client(api):
    telnyx = TelnyxClient(API_KEY, api.base_url, connect_timeout=CONNECT_S, read_timeout=READ_S,
                          max_attempts=ATTEMPTS, max_backoff=BACKOFF_S)
    yield telnyx
    telnyx.session.close()


def bounded(work: Callable[[], Any], limit_s: float) -> tuple[Any, BaseException | None, float]:
    """Run `work` in a thread; fail the test (instead of hanging it) if it is still busy after `limit_s`."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # handed back to the test, which asserts on it
            outcome["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit_s)
    elapsed = time.monotonic() - started
    assert not thread.is_alive(), f"the command was still running after {limit_s:.1f} s"
    return outcome.get("result"), outcome.get("error"), elapsed


def speak(client: TelnyxClient, call_control_id: str) -> Callable[[], bool]:
    return lambda: client.speak(call_control_id, "Hello", "Telnyx.KokoroTTS.af", command_id="cmd-speak-1")


# ---------------------------------------------------------------- one command against one fault


@pytest.mark.parametrize("label", list(RETRYABLE))
def test_transient_fault_is_retried_with_the_same_command_id_within_the_cap(api, client, label):
    cid = new_call_id()
    api.plan("speak", *[RETRYABLE[label]] * (ATTEMPTS - 1))
    result, error, elapsed = bounded(speak(client, cid), CAP_S + 5)
    hits = api.hits_for(cid)
    bodies = {json.dumps(h.body, sort_keys=True) for h in hits}
    held = error is None and result is True and len(hits) == ATTEMPTS and len(bodies) == 1
    held = held and elapsed <= CAP_S + MARGIN_S
    record("Telnyx API transient fault, then success", 1, int(held),
           f"{label}: {len(hits)} attempts in {elapsed:.2f} s (cap {CAP_S:.1f} s)")
    assert error is None, repr(error)
    assert result is True
    assert [h.fault.label for h in hits] == [RETRYABLE[label].label] * (ATTEMPTS - 1) + [OK.label]
    assert {h.command_id for h in hits} == {"cmd-speak-1"} and len(bodies) == 1, "every attempt must be identical"
    assert elapsed <= CAP_S + MARGIN_S


@pytest.mark.parametrize("label", list(RETRYABLE))
def test_persistent_fault_gives_up_after_max_attempts_with_a_named_error(api, client, label):
    cid = new_call_id()
    api.always("speak", RETRYABLE[label])
    result, error, elapsed = bounded(speak(client, cid), CAP_S + 5)
    hits = api.hits_for(cid)
    held = isinstance(error, NAMED[label]) and len(hits) == ATTEMPTS and elapsed <= CAP_S + MARGIN_S
    record("Telnyx API fault that never clears", 1, int(held),
           f"{label}: {len(hits)} attempts, {type(error).__name__} after {elapsed:.2f} s")
    assert isinstance(error, NAMED[label]), repr(error)
    assert len(hits) == ATTEMPTS
    assert {h.command_id for h in hits} == {"cmd-speak-1"}
    assert elapsed <= CAP_S + MARGIN_S
    gaps = [later.at - earlier.at for earlier, later in zip(hits, hits[1:], strict=False)]
    per_attempt = CONNECT_S + READ_S if label.startswith("answer after") else 0.0
    assert all(gap <= per_attempt + BACKOFF_S + MARGIN_S for gap in gaps), gaps


def test_huge_retry_after_is_waited_for_only_up_to_the_cap(api, client):
    """3600 s is honoured as max_backoff: the client pauses, but never longer than the cap."""
    cid = new_call_id()
    api.always("answer", RATE_LIMITED)
    _, error, elapsed = bounded(lambda: client.answer(cid, command_id="cmd-answer"), CAP_S + 5)
    hits = api.hits_for(cid)
    gaps = [later.at - earlier.at for earlier, later in zip(hits, hits[1:], strict=False)]
    record("429 with Retry-After: 3600", 1, int(all(gap < BACKOFF_S + MARGIN_S for gap in gaps)),
           f"pauses {', '.join(f'{g:.2f}' for g in gaps)} s (cap {BACKOFF_S} s)")
    assert isinstance(error, TelnyxHTTPError) and error.status == 429 and error.code == "10011"
    assert len(gaps) == ATTEMPTS - 1
    assert all(BACKOFF_S * 0.9 <= gap < BACKOFF_S + MARGIN_S for gap in gaps), gaps
    assert elapsed < (ATTEMPTS - 1) * BACKOFF_S + MARGIN_S


@pytest.mark.parametrize("code", ["90015", "90034", "90054", "10004", "10016"])
def test_422_is_raised_at_once_without_retry(api, client, code):
    cid = new_call_id()
    api.always("speak", status(422, code))
    _, error, elapsed = bounded(speak(client, cid), CAP_S + 5)
    attempts = len(api.hits_for(cid))
    record("422 from the API (not retried)", 1, int(attempts == 1 and isinstance(error, TelnyxHTTPError)),
           f"code {code}: {attempts} attempt in {elapsed:.2f} s")
    assert isinstance(error, TelnyxHTTPError) and (error.status, error.code) == (422, code)
    assert attempts == 1
    assert elapsed < MARGIN_S


def test_call_already_ended_is_a_normal_outcome(api, client, caplog):
    cid = new_call_id()
    api.always("hangup", status(422, "90018"))
    api.plan("speak", status(503), status(422, "90018"))  # the caller hangs up between two attempts
    caplog.set_level(logging.INFO, logger="telnyx_client")
    hung_up, error, _ = bounded(lambda: client.hangup(cid, command_id="cmd-hangup"), CAP_S + 5)
    spoke, speak_error, _ = bounded(speak(client, cid), CAP_S + 5)
    record("422 90018 (call already ended)", 2, int(hung_up is False) + int(spoke is False),
           "answered False, no exception, no further attempt")
    assert (error, speak_error) == (None, None)
    assert hung_up is False and spoke is False
    assert [h.action for h in api.hits_for(cid)] == ["hangup", "speak", "speak"]
    assert "already ended" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_cut_off_answer_is_a_named_retryable_error(api, client):
    """Regression: a reset after the headers raised requests' ChunkedEncodingError straight out of the client,
    unretried and not a TelnyxError, so the receptionist dropped the rest of the call's commands."""
    cid = new_call_id()
    api.plan("answer", CUT)
    result, error, _ = bounded(lambda: client.answer(cid, command_id="cmd-answer"), CAP_S + 5)
    assert error is None, repr(error)
    assert result is True and len(api.hits_for(cid)) == 2
    api.always("answer", CUT)
    _, error, _ = bounded(lambda: client.answer(cid, command_id="cmd-answer-2"), CAP_S + 5)
    assert isinstance(error, TelnyxConnectionError), repr(error)


# ---------------------------------------------------------------- whole calls through the webhook endpoint


class Call:
    """Plays the network for one inbound call: posts signed webhooks, reads what reached the API."""

    def __init__(self, app, private_key, api: FaultyTelnyx):
        self.client, self.key, self.api = app.test_client(), private_key, api
        self.cid = new_call_id()
        self.acks: list[int] = []

    def post(self, body: dict[str, Any]) -> None:
        """Deliver a webhook twice, as Telnyx does when it misses the first 200; the copy must be dropped."""
        raw = encode(body)
        for _ in range(2):
            headers = sign(raw, self.key, str(int(time.time())))
            response = self.client.post("/webhooks/telnyx", data=raw, headers=headers,
                                        content_type="application/json")
            self.acks.append(response.status_code)
        assert self.acks[-2:] == [200, 200]

    def send(self, name: str, **payload: Any) -> None:
        self.post(event(name, self.cid, **payload))

    def say(self, text: str) -> None:
        self.post(transcription(self.cid, text))

    def accepted(self, action: str, count: int = 1, timeout_s: float = 10.0) -> list[Hit]:
        """Wait until `count` `action` commands were accepted (200) for this call."""
        done = wait_until(lambda: len([h for h in self.api.hits_for(self.cid, action) if h.ok]) >= count, timeout_s)
        hits = self.api.hits_for(self.cid, action)
        everything = [h.action for h in self.api.hits_for(self.cid)]
        assert done, f"{action}: {[h.fault.label for h in hits]}; all: {everything}"
        return [h for h in hits if h.ok]


def logical_commands(hits: list[Hit]) -> dict[tuple[str, str], set[str]]:
    """(action, body without command_id) -> the command_ids it was sent under."""
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for hit in hits:
        body = {k: v for k, v in hit.body.items() if k != "command_id"}
        seen[(hit.action, json.dumps(body, sort_keys=True))].add(hit.command_id)
    return seen


@pytest.fixture
def service(raw_config, keypair, api, tmp_path):
    """create_app() as deployed, except that Telnyx is the faulty API and its timeouts are short."""
    raw_config["telnyx"].update(connect_timeout_s=CONNECT_S, read_timeout_s=READ_S, max_attempts=ATTEMPTS,
                                max_backoff_s=BACKOFF_S)
    env = {"TELNYX_PUBLIC_KEY": keypair[1], "TELNYX_API_KEY": API_KEY, "TELNYX_BASE_URL": api.base_url}
    app = create_app(build_settings(raw_config, env))
    yield app
    app.extensions["receptionist"].shutdown()


def call_log(app_config: dict) -> list[dict[str, Any]]:
    path = Path(app_config["call_log"]["path"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_call_with_every_command_failing_once_is_still_answered_greeted_and_transferred(
    service, api, keypair, raw_config
):
    api.plan("answer", status(503), status(500))
    api.plan("speak", CUT, SLOW)  # the greeting is cut off once, the transfer announcement is late once
    api.plan("transcription_start", RATE_LIMITED)
    api.plan("transfer", RESET, status(502))
    api.plan("transcription_stop", status(429, "10011"))
    injected = 8
    call = Call(service, keypair[0], api)
    with watching_logs(logging.INFO) as logs:
        started = time.monotonic()
        call.send("call_initiated")
        call.accepted("answer")
        call.send("call_answered")
        greeting = call.accepted("speak")[0]
        call.accepted("transcription_start")
        call.send("call_speak_ended")
        call.say("can I talk to a real person please")
        call.accepted("speak", 2)
        call.send("call_speak_ended")
        transfer = call.accepted("transfer")[0]
        leg = new_call_id()
        call.post(event("transfer_leg_answered", leg, client_state=transfer.body["target_leg_client_state"]))
        call.accepted("transcription_stop")
        call.send("call_hangup")
        settle(service)
        took = time.monotonic() - started
    hits = api.hits_for(call.cid)
    commands = logical_commands(hits)
    two_ids = {key: ids for key, ids in commands.items() if len(ids) > 1}
    per_id = defaultdict(int)
    for hit in hits:
        per_id[hit.command_id] += 1
    (entry,) = [r for r in call_log(raw_config) if r["call_control_id"] == call.cid]
    held = not two_ids and entry["outcome"] == "transferred" and len(commands) == 6
    record("Telnyx API faults during a whole call (webhook to hangup)", injected,
           injected if held else 0, f"{len(hits)} requests for 6 commands, call took {took:.1f} s")
    assert "automated assistant" in greeting.body["payload"]
    assert transfer.body["to"] == raw_config["transfer"]["destinations"]["front_desk"]
    assert entry["outcome"] == "transferred" and entry["transferred_to"] == "front_desk"
    assert not two_ids, two_ids
    assert len(commands) == 6 and len(per_id) == 6, [h.action for h in hits]
    assert len(hits) == 6 + injected
    assert max(per_id.values()) <= ATTEMPTS
    assert not background_failures(logs.records)
    assert not [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR]
    assert len(service.extensions["receptionist"].calls) == 0


def test_call_ended_and_refused_commands_do_not_stall_a_call(service, api, keypair, raw_config):
    """422 90054 on transcription_start is logged and not retried; 422 90018 on the final hangup is normal."""
    api.plan("transcription_start", status(422, "90054"))
    api.always("hangup", status(422, "90018"))  # the caller put the phone down first
    call = Call(service, keypair[0], api)
    with watching_logs(logging.INFO) as logs:
        call.send("call_initiated")
        call.accepted("answer")
        call.send("call_answered")
        call.accepted("speak")
        call.send("call_speak_ended")
        call.say("that's all thanks")
        goodbye = call.accepted("speak", 2)[-1]
        call.send("call_speak_ended")
        assert wait_until(lambda: call.api.hits_for(call.cid, "hangup"), 5)
        call.send("call_hangup")
        settle(service)
    actions = [h.action for h in api.hits_for(call.cid)]
    errors = [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR]
    (entry,) = [r for r in call_log(raw_config) if r["call_control_id"] == call.cid]
    record("422 during a call (90054 refused, 90018 on hangup)", 2,
           int(actions.count("transcription_start") == 1) + int(actions.count("hangup") == 1))
    assert "Goodbye" in goodbye.body["payload"]
    assert actions.count("transcription_start") == 1 and actions.count("hangup") == 1, actions
    assert any("transcription_start failed" in e and "90054" in e for e in errors), errors
    assert not [e for e in errors if "hangup" in e]
    assert not background_failures(logs.records)
    assert entry["outcome"] in {"hung_up_by_assistant", "caller_hung_up"}
    assert len(service.extensions["receptionist"].calls) == 0


FLAKY_ACTIONS = ("answer", "speak", "transcription_start", "transfer")


def flaky_calls(service, api: FaultyTelnyx, keypair, raw_config, plans: list[dict[str, list[Fault]]]) -> dict:
    """One concurrent call per plan (action -> its first faults), each played to a transfer and a hangup."""
    calls = [Call(service, keypair[0], api) for _ in plans]
    for call, plan in zip(calls, plans, strict=True):
        for action, faults in plan.items():
            api.plan(action, *faults, call=call.cid)
    failures: list[BaseException] = []

    def run(call: Call) -> None:
        try:
            play_to_transfer(call)
        except BaseException as exc:  # reported by the caller, with the figures
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    settle(service, 20)
    logged = {r["call_control_id"] for r in call_log(raw_config)}
    good = 0
    for call in calls:
        single = all(len(ids) == 1 for ids in logical_commands(api.hits_for(call.cid)).values())
        transferred = any(h.ok for h in api.hits_for(call.cid, "transfer"))
        good += int(single and transferred and call.cid in logged and set(call.acks) == {200})
    faults = sum(h.fault != OK for h in api.hits)
    return {"calls": len(calls), "good": good, "failures": failures, "faults": faults, "requests": len(api.hits)}


def play_to_transfer(call: Call) -> None:
    call.send("call_initiated")
    call.accepted("answer")
    call.send("call_answered")
    call.accepted("transcription_start")
    call.send("call_speak_ended")
    call.say("put me through to a representative")
    call.accepted("speak", 2)
    call.send("call_speak_ended")
    call.accepted("transfer")
    call.send("call_hangup")


def test_concurrent_calls_against_a_flaky_api_each_end_with_one_command_id_per_command(
    service, api, keypair, raw_config
):
    """Six calls at once; each one's first request per action fails, each call in a different way per action."""
    kinds = list(RETRYABLE.values())
    plans = [{action: [kinds[(i + j) % len(kinds)]] for j, action in enumerate(FLAKY_ACTIONS)}
             for i in range(len(kinds))]
    result = flaky_calls(service, api, keypair, raw_config, plans)
    record("six concurrent calls, every action failing 6 ways", result["calls"], result["good"],
           f"{result['faults']} faults injected over {result['requests']} requests")
    assert not result["failures"], result["failures"]
    assert result["good"] == result["calls"]


@pytest.mark.soak
def test_many_concurrent_calls_against_a_flaky_api_soak(service, api, keypair, raw_config):
    """40 calls at once, each action failing 0 to max_attempts - 1 times in random ways."""
    rng = random.Random(5)
    kinds = list(RETRYABLE.values())
    plans = [{action: rng.choices(kinds, k=rng.randrange(ATTEMPTS)) for action in FLAKY_ACTIONS} for _ in range(40)]
    result = flaky_calls(service, api, keypair, raw_config, plans)
    record("40 concurrent calls against a flaky API (soak)", result["calls"], result["good"],
           f"{result['faults']} faults injected over {result['requests']} requests")
    assert not result["failures"], result["failures"]
    assert result["good"] == result["calls"]


def test_the_client_cap_matches_the_configured_values(service):
    """The wall-time bounds above are only meaningful if the service builds its client from these values."""
    telnyx = service.extensions["receptionist"].runners.telnyx
    assert isinstance(telnyx, TelnyxClient)
    assert telnyx.timeout == (CONNECT_S, READ_S)
    assert (telnyx.max_attempts, telnyx.max_backoff) == (ATTEMPTS, BACKOFF_S)
    assert issubclass(TelnyxTimeout, TelnyxError) and issubclass(TelnyxConnectionError, TelnyxError)
