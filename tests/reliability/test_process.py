"""RELIABILITY: the process is stopped (SIGTERM) or its worker killed (SIGKILL) while calls are in progress.

These tests cover the in-memory store (no REDIS_URL, one worker), where calls live and die with the process.
What a crash or a deploy does to calls kept in Redis (several workers and instances, leases, takeovers) is in
test_scale_out.py.

SIGTERM (a deploy, a restart): every webhook request the worker has already accepted is answered; a webhook
for a call the stopping process does not hold (a new call above all) gets 503, so Telnyx delivers it again
and nobody is answered by a process that is leaving; the work already queued (a reply being computed, a
speak to send) is finished before the process exits, within a bound below gunicorn's graceful_timeout.
Timers that have not fired (silence reprompts, speech guards) are lost.

SIGKILL of the worker (a crash, the OOM killer): gunicorn starts a new worker, the killed worker's calls
are gone with their in-memory state, and the caller hears silence. Later webhooks of such a call are
answered 200 and do nothing, except that a caller who speaks (or presses a key) is handed to a person
rather than left talking to nobody. New calls work again at once.

The first tests drive the Receptionist in-process (drain, refusal and adoption rules, deterministic);
the rest run gunicorn exactly as deployed against the simulated network and send it real signals.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from background import settle, wait_until
from brains import BrainError, BrainReply, Turn
from events import parse_event
from fake_openai import Delay, FakeOpenAI
from figures import record
from fixtures import sign
from receptionist import STATE_LOST, ServiceStopping
from simulator import events
from simulator.carrier import SimCall, TransferPlan
from simulator.events import Leg, WebhookEvent
from simulator.network import Network, NetworkOptions
from simulator.service import Service, children, start_service
from webhooks import WEBHOOK, event, new_call_id, transcription

REPLY_TEXT = "We are open eight to five on weekdays."
REPLY = {"reply": REPLY_TEXT, "action": "continue", "department": None, "confidence": 0.9}
CALLER, CLINIC = "+13125550111", "+13125550100"
FRONT_DESK = "+15555550100"
GRACEFUL_TIMEOUT_S = 20  # gunicorn.conf.py
SPEED = 0.05  # simulated speech runs 20x faster than real time
# Long silence timeouts: no reprompt interleaves with the replies these tests wait for.
SERVICE_OVERRIDES = {"dialog.silence_timeout_s": 30, "ai.timeout_s": 20.0, "transfer.ring_timeout_s": 5}
STOPPING = {"error": "shutting down", "status": 503}


# ---------------------------------------------------------------- in-process: drain, refusal, adoption


class GatedBrain:
    """A brain whose answers wait until `release()`; records every utterance it was asked about."""

    def __init__(self, limit_s: float = 10.0):
        self.gate = threading.Event()
        self.asked: list[str] = []
        self.limit_s = limit_s
        self._lock = threading.Lock()

    def reply(self, history: Sequence[Turn], utterance: str) -> BrainReply:
        with self._lock:
            self.asked.append(utterance)
        if not self.gate.wait(self.limit_s):
            raise BrainError("gate never opened")
        return BrainReply(REPLY_TEXT, "continue", 0.9)

    def release(self) -> None:
        self.gate.set()


@pytest.fixture
def gated():
    brain = GatedBrain()
    yield brain
    brain.release()


@pytest.fixture
def service(make_app, raw_config, telnyx, gated):
    raw_config["dialog"]["silence_timeout_s"] = 1
    return make_app(raw_config, telnyx=telnyx, brain=gated)


def poster(app, private_key):
    client = app.test_client()

    def post(body: dict[str, Any]):
        raw = json.dumps(body).encode()
        headers = sign(raw, private_key, str(int(time.time())))
        return client.post(WEBHOOK, data=raw, headers=headers, content_type="application/json")

    return post


def open_call(post, call_control_id: str) -> None:
    """Initiated, answered, greeting ended: the call is listening (and its silence timer is running)."""
    for name in ("call_initiated", "call_answered", "call_speak_ended"):
        assert post(event(name, call_control_id)).status_code == 200


def replies_spoken(telnyx, call_control_id: str) -> int:
    return sum(c.body["payload"] == REPLY_TEXT for c in telnyx.commands
               if c.action == "speak" and c.call_control_id == call_control_id)


def test_drain_finishes_queued_replies_and_drops_pending_timers(service, keypair, telnyx, gated):
    receptionist, post = service.extensions["receptionist"], poster(service, keypair[0])
    calls, turns = [new_call_id() for _ in range(3)], 0
    for cid in calls:
        open_call(post, cid)
        assert post(transcription(cid, "when are you open")).status_code == 200
        turns += 1
    assert post(transcription(calls[0], "and on saturday")).status_code == 200  # queued behind a running reply
    turns += 1
    assert wait_until(lambda: len(gated.asked) == 3, 5)
    quiet = [new_call_id() for _ in range(2)]
    for cid in quiet:  # their 1 s silence timers are pending when the drain starts
        open_call(post, cid)
    assert wait_until(lambda: receptionist.queues.pending() == 1, 5)  # only calls[0]'s second turn waits
    threading.Timer(0.3, gated.release).start()
    started = time.monotonic()
    finished = receptionist.drain(timeout_s=5)
    took = time.monotonic() - started
    time.sleep(1.5)  # every call's 1 s silence timer would have fired by now
    spoken = {cid: replies_spoken(telnyx, cid) for cid in calls}
    reprompts = telnyx.spoken().count(receptionist.policy.lines["silence_reprompt"])
    wanted = {calls[0]: 2, calls[1]: 1, calls[2]: 1}
    assert finished and took < 2, took
    assert spoken == wanted
    assert reprompts == 0, "timers stop when the drain starts: a pending reprompt is lost"
    record("SIGTERM drain: replies queued or running when the drain starts", turns, sum(spoken.values()),
           f"drained in {took:.2f} s; {reprompts} of {len(quiet)} pending silence timers fired (lost by design)")


def test_drain_is_bounded_and_drops_the_queued_work_it_cannot_finish(service, keypair, telnyx, gated, caplog):
    receptionist, post = service.extensions["receptionist"], poster(service, keypair[0])
    calls = [new_call_id() for _ in range(2)]
    for cid in calls:
        open_call(post, cid)
        post(transcription(cid, "when are you open"))
        post(transcription(cid, "and on saturday"))
    assert wait_until(lambda: len(gated.asked) == 2, 5)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="receptionist"):
        finished = receptionist.drain(timeout_s=0.3)
    took = time.monotonic() - started
    gated.release()  # the replies that were already running still finish
    settle(receptionist)
    dropped = [r.getMessage() for r in caplog.records if "queued event(s) dropped" in r.getMessage()]
    assert not finished and took < 1.5, took
    assert sorted(d.split()[0] for d in dropped) == sorted(f"call={cid}" for cid in calls)
    assert gated.asked == ["when are you open"] * 2, "a dropped turn must not reach the brain"
    assert [replies_spoken(telnyx, cid) for cid in calls] == [1, 1]
    record("SIGTERM drain: work that cannot finish in time", len(calls), len(dropped),
           f"bounded at 0.3 s (took {took:.2f} s); queued turns dropped and logged per call, running ones finished")


def test_while_stopping_only_calls_this_process_holds_are_served(service, keypair, telnyx, gated):
    receptionist, post = service.extensions["receptionist"], poster(service, keypair[0])
    gated.release()
    live, ended, new = new_call_id(), new_call_id(), new_call_id()
    open_call(post, live)
    open_call(post, ended)
    post(event("call_hangup", ended))
    settle(receptionist)
    receptionist.begin_shutdown()
    before = len(telnyx.commands)
    refused_initiated = event("call_initiated", new)
    answers = {
        "new call": post(refused_initiated),
        "unknown call's transcription": post(transcription(new_call_id(), "hello?")),
        "live call's transcription": post(transcription(live, "when are you open")),
        "ended call's late speak.ended": post(event("call_speak_ended", ended)),
    }
    settle(receptionist)
    statuses = {label: (r.status_code, r.json) for label, r in answers.items()}
    wanted = {
        "new call": (503, STOPPING),
        "unknown call's transcription": (503, STOPPING),
        "live call's transcription": (200, {"status": "accepted"}),
        "ended call's late speak.ended": (200, {"status": "accepted"}),
    }
    after = [(c.call_control_id, c.action) for c in telnyx.commands[before:]]
    assert statuses == wanted
    assert after == [(live, "speak")], after
    assert receptionist.seen.first_time(refused_initiated["data"]["id"]), "a refused webhook must not count as seen"
    with pytest.raises(ServiceStopping):
        receptionist.accept(parse_event(json.dumps(refused_initiated).encode(), received_at=time.time()))
    record("webhooks after SIGTERM: refuse what this process cannot finish", len(answers),
           sum(statuses[k] == v for k, v in wanted.items()), "503 for calls it does not hold, 200 for its own")


def test_a_caller_speaking_on_a_call_this_process_does_not_hold_is_handed_to_a_person(
    service, keypair, telnyx, gated
):
    receptionist, post = service.extensions["receptionist"], poster(service, keypair[0])
    orphan, pressed, gone, hung_up = (new_call_id() for _ in range(4))
    telnyx.ended.add(gone)  # Telnyx answers 90018: that call is over already
    post(event("call_hangup", hung_up))
    ignored = [event("call_speak_ended", orphan), event("call_speak_started", orphan), event("call_answered", orphan),
               transcription(hung_up, "late words after the hangup")]
    answers = [post(body) for body in ignored]
    settle(receptionist)
    assert telnyx.commands == [], "nothing is sent for an unknown call's other events"
    for cid in (orphan, pressed, gone):
        answers.append(post(transcription(cid, "hello? are you still there?") if cid != pressed
                            else event("call_dtmf_received", cid, digit="5")))
    settle(receptionist)
    answers.append(post(transcription(orphan, "hello??")))  # speaking again must not transfer twice
    for cid in (orphan, pressed):
        answers.append(post(event("call_speak_ended", cid)))  # the fallback line has been heard
    settle(receptionist)
    fallback = receptionist.policy.lines["fallback"]
    sent = {cid: [(c.action, c.body.get("payload") or c.body.get("to")) for c in telnyx.commands
                  if c.call_control_id == cid] for cid in (orphan, pressed, gone)}
    wanted = [("speak", fallback), ("transfer", FRONT_DESK)]
    assert all(r.status_code == 200 for r in answers)
    assert sent[orphan] == wanted and sent[pressed] == wanted, sent
    assert sent[gone] == [] and receptionist.calls.get(gone) is None and receptionist.calls.has_ended(gone)
    assert receptionist.calls.get(orphan).escalation_reason.endswith(STATE_LOST)
    handled = sum(sent[cid] == wanted for cid in (orphan, pressed)) + (receptionist.calls.get(gone) is None)
    record("caller speaks on a call whose state died with the worker", len(sent), handled,
           "fallback line, then one transfer to the default destination; a call Telnyx says is over is dropped")


# ---------------------------------------------------------------- gunicorn as deployed: helpers


@dataclass
class Live:
    network: Network
    service: Service
    model: FakeOpenAI

    @property
    def master(self) -> int:
        return self.service.process.pid

    def log(self) -> str:
        return (Path(self.service.call_log_path).parent / "service.log").read_text(errors="replace")

    def call(self) -> SimCall:
        """A new inbound call, waited for until the greeting has been heard and transcription runs."""
        carrier = self.network.carrier
        call = carrier.place_call(CALLER, CLINIC, TransferPlan(answer=True, ring_s=1.0, talk_s=2.0))
        assert carrier.wait(lambda: call.answered and call.transcribing and not call.speaking, 10), call.timeline
        return call

    def spoken(self, call: SimCall, text: str = REPLY_TEXT) -> int:
        """How many speaks of `text` Telnyx accepted for this call."""
        return sum(r.body["payload"] == text and r.status == 200
                   for r in self.network.fake.requests_for(call.call_control_id, action="speak"))

    def signed(self, webhook: WebhookEvent) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(webhook.envelope(1, self.service.webhook_url)).encode()
        return body, self.network.signer.headers(body)


@contextmanager
def live_service(model: FakeOpenAI, brain_delay_s: float, *, graceful_timeout_s: int | None = None) -> Iterator[Live]:
    """gunicorn as deployed, the simulated Telnyx network, and the fake model answering REPLY after a delay."""
    model.default = Delay(brain_delay_s, REPLY)
    with Network(NetworkOptions(speed=SPEED)) as network:
        env = {**network.service_env(), "OPENAI_BASE_URL": model.base_url}
        if graceful_timeout_s is not None:
            env["GUNICORN_CMD_ARGS"] = f"--graceful-timeout {graceful_timeout_s}"
        with start_service(env, overrides=SERVICE_OVERRIDES) as service:
            network.webhook_url = service.webhook_url
            yield Live(network, service, model)


class HalfSentWebhook:
    """A signed webhook POST whose headers and half its body are on the wire; `finish()` sends the rest."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str]):
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        self.conn.putrequest("POST", parts.path)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.conn.putheader(name, value)
        self.conn.endheaders()
        self.conn.send(body[: len(body) // 2])
        self.rest = body[len(body) // 2 :]

    def finish(self) -> tuple[int | None, Any]:
        """(status, JSON body), or (None, the error) when the connection was reset or closed instead."""
        try:
            self.conn.send(self.rest)
            response = self.conn.getresponse()
            return response.status, json.loads(response.read())
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return None, repr(exc)
        finally:
            self.conn.close()


def only_worker(master: int, timeout_s: float = 10.0) -> int:
    assert wait_until(lambda: len(children(master)) == 1, timeout_s), children(master)
    return children(master)[0]


def unknown_hangup() -> WebhookEvent:
    """A harmless webhook: the hangup of a call nobody knows (remembered as ended, nothing sent)."""
    return events.hangup(Leg("incoming", CALLER, CLINIC, new_call_id()), "normal_clearing", "caller")


def post_on(session: requests.Session, live: Live, webhook: WebhookEvent) -> tuple[int | None, Any]:
    """(status, JSON body) of one signed webhook, or (None, the error) when no answer came."""
    body, headers = live.signed(webhook)
    try:
        response = session.post(live.service.webhook_url, data=body, headers=headers, timeout=3)
        return response.status_code, response.json()
    except (requests.RequestException, ValueError) as exc:
        return None, repr(exc)


def until_refused(session: requests.Session, live: Live, timeout_s: float = 1.5) -> tuple[int | None, Any]:
    """Post harmless webhooks on a kept-alive connection until the stopping worker stops answering 200."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = post_on(session, live, unknown_hangup())
        if answer[0] != 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.01)


# ---------------------------------------------------------------- SIGTERM under gunicorn


def test_sigterm_with_calls_in_flight_answers_accepted_webhooks_and_speaks_every_queued_reply(fake_model):
    with live_service(fake_model, brain_delay_s=1.5) as live:
        calls = [live.call() for _ in range(5)]
        thinking, arriving = calls[:3], calls[3:]
        for call in thinking:
            live.network.carrier.say(call, "when are you open", 0.95)
        live.model.wait_for_requests(3, 10)  # three replies are being computed
        in_flight = [HalfSentWebhook(live.service.webhook_url, *live.signed(
            events.transcription(call.a, "when are you open", 0.95))) for call in arriving]
        probe, newcomer = requests.Session(), requests.Session()
        assert post_on(probe, live, unknown_hangup())[0] == 200  # both connections are now kept alive
        assert post_on(newcomer, live, unknown_hangup())[0] == 200
        time.sleep(0.3)  # let the worker pick up the half-sent requests
        stopped_at = time.monotonic()
        live.service.process.send_signal(signal.SIGTERM)
        refusal = until_refused(probe, live)
        new_leg = Leg("incoming", CALLER, CLINIC, new_call_id())
        new_call = post_on(newcomer, live, events.initiated(new_leg))
        finished = [request.finish() for request in in_flight]
        exit_code = live.service.process.wait(GRACEFUL_TIMEOUT_S + 10)
        took = time.monotonic() - stopped_at
        spoken = [live.spoken(call) for call in calls]
        answered_new = live.network.fake.requests_for(new_leg.call_control_id)
        server_errors = [a for a in live.network.delivery.log.attempts if a.status and a.status >= 500
                         and a.status != 503]
        log = live.log()
    assert finished == [(200, {"status": "accepted"})] * len(in_flight), finished
    assert refusal == (503, STOPPING), refusal
    assert new_call == (503, STOPPING), new_call
    assert answered_new == [], "the stopping process must not answer a new call"
    assert spoken == [1] * len(calls), spoken
    assert exit_code == 0 and took < GRACEFUL_TIMEOUT_S, (exit_code, took)
    assert "shutdown drain took" in log and "queued event(s) dropped" not in log
    assert server_errors == []
    refused = {"a kept-alive connection's next webhook": refusal == (503, STOPPING),
               "a new call": new_call == (503, STOPPING) and not answered_new}
    record("SIGTERM: webhook requests already accepted", len(in_flight),
           sum(status == 200 and body == {"status": "accepted"} for status, body in finished),
           "half-sent when the signal came; answered 200, no reset")
    record("SIGTERM: new call while the process stops", len(refused), sum(refused.values()),
           "503 so Telnyx delivers it again; never answered by the leaving process")
    record("SIGTERM: replies computed or queued at the signal", len(calls), sum(n == 1 for n in spoken),
           f"each reply spoken before exit; exit {exit_code} after {took:.1f} s (graceful_timeout "
           f"{GRACEFUL_TIMEOUT_S} s)")


@pytest.mark.soak
def test_sigterm_drain_gives_up_on_queued_work_before_the_master_kills_the_worker(fake_model):
    """graceful_timeout 7 s leaves a drain of 2 s (after at most 2 s of keep-alive linger): a 5.2 s reply
    still finishes, the turn queued behind it is dropped, and the worker exits before the master's SIGKILL."""
    graceful_s = 7
    with live_service(fake_model, brain_delay_s=5.2, graceful_timeout_s=graceful_s) as live:
        calls = [live.call() for _ in range(2)]
        for call in calls:
            live.network.carrier.say(call, "when are you open", 0.95)
        live.model.wait_for_requests(2, 10)
        for call in calls:  # a second turn each, queued behind the reply being computed
            assert live.network.carrier.say(call, "and on saturday", 0.95)
        assert wait_until(lambda: sum(a.ok and a.event_type == "call.transcription"
                                      for a in live.network.delivery.log.attempts) == 4, 5)
        stopped_at = time.monotonic()
        live.service.process.send_signal(signal.SIGTERM)
        exit_code = live.service.process.wait(graceful_s + 10)
        took = time.monotonic() - stopped_at
        spoken = [live.spoken(call) for call in calls]
        asked = len(live.model.requests)
        log = live.log()
    # At least the second turn; a greeting's speak.ended overtaken by the first turn may wait behind it too.
    dropped = sum(bool(re.search(rf"call={re.escape(call.call_control_id)} shutdown: \d+ queued event\(s\) dropped",
                                 log)) for call in calls)
    assert spoken == [1, 1] and asked == 2, (spoken, asked)
    assert dropped == len(calls), log[-3000:]
    assert exit_code == 0 and took < graceful_s, (exit_code, took)
    assert "SIGKILL" not in log and "was sent SIGKILL" not in log
    record("SIGTERM: more queued work than the drain allows", len(calls), dropped,
           f"first replies spoken {spoken}; second turns dropped and logged; exit {exit_code} after {took:.1f} s "
           f"(graceful_timeout {graceful_s} s)")


# ---------------------------------------------------------------- SIGKILL of the worker under gunicorn


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the worker through Linux /proc")
def test_worker_killed_mid_turn_is_replaced_its_calls_are_lost_and_a_caller_who_speaks_is_transferred(fake_model):
    with live_service(fake_model, brain_delay_s=2.0) as live:
        carrier, fake = live.network.carrier, live.network.fake
        call = live.call()
        carrier.say(call, "when are you open", 0.95)
        computing = len(live.model.wait_for_requests(1, 10))  # replies being computed in the worker we kill
        old_worker = only_worker(live.master)
        os.kill(old_worker, signal.SIGKILL)
        killed_at = time.monotonic()
        assert wait_until(lambda: children(live.master) not in ([], [old_worker]), 10), "no new worker"
        new_worker = only_worker(live.master)
        health = requests.get(f"{live.service.url}/healthz", timeout=5)
        time.sleep(max(0.0, killed_at + 2.5 - time.monotonic()))  # the reply would have been spoken by now
        replies_spoken = live.spoken(call)
        reply_lost = replies_spoken == 0 and not call.speaking
        silent_s = time.monotonic() - killed_at
        # Late events of the lost call: acknowledged and ignored, nothing sent.
        sent_before = len(fake.requests_for(call.call_control_id))
        stale = [events.speak_started(call.a), events.speak_ended(call.a, "completed"), events.answered(call.a)]
        stale_answers = [post_on(requests.Session(), live, webhook)[0] for webhook in stale]
        time.sleep(0.3)
        quiet_after_stale = len(fake.requests_for(call.call_control_id)) == sent_before
        # The caller asks whether anyone is there: the new worker hands them to the front desk.
        carrier.say(call, "hello? are you still there?", 0.95)
        transferred = carrier.wait(lambda: call.bridged_to is not None, 10)
        fallback_heard = any(s.text.startswith("I'm having trouble") for s in call.speeches)
        assert carrier.wait(lambda: call.ended, 10)
        # A new call after the restart is greeted and listened to as usual.
        fresh = live.call()
        fresh_ok = fresh.answered and fresh.transcribing and fresh.speeches[0].text.startswith("Thanks for calling")
        carrier.hang_up(fresh)
        wait_until(lambda: len(Path(live.service.call_log_path).read_text().splitlines()) >= 2, 5)
        lines = [json.loads(line) for line in Path(live.service.call_log_path).read_text().splitlines()]
        failed_deliveries = [a for a in live.network.delivery.log.attempts if a.status and a.status >= 500]
    rescued = next((line for line in lines if line.get("call_control_id") == call.call_control_id), {})
    assert new_worker != old_worker and health.json()["live_calls"] == 0
    assert reply_lost, "the reply died with the worker"
    assert stale_answers == [200] * 3 and quiet_after_stale
    assert transferred and call.transfers == [FRONT_DESK] and fallback_heard, call.timeline
    assert rescued.get("outcome") == "transferred", lines
    assert fresh_ok, fresh.timeline
    assert failed_deliveries == []
    # The known loss, measured: what was being computed when the worker died, and how much of it was spoken.
    record("worker SIGKILLed mid-turn: the reply being computed", computing, replies_spoken,
           f"lost with the in-memory call state; the caller heard {silent_s:.1f} s of silence until they spoke")
    held = {
        "worker replaced": new_worker != old_worker and health.ok,
        "late events 200 and ignored": stale_answers == [200] * 3 and quiet_after_stale,
        "caller who speaks is transferred": transferred and fallback_heard,
        "new calls work": fresh_ok,
        "no 5xx": failed_deliveries == [],
    }
    record("worker SIGKILLed mid-turn: what must still hold", len(held), sum(held.values()), "; ".join(held))
