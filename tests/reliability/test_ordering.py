"""RELIABILITY: webhooks duplicated, reordered and concurrent, as Telnyx is allowed to deliver them.

A hypothesis state machine plays the network for several calls at once. Webhooks the calls cause wait
in a pool; each step delivers any one of them (so any order the network's causality allows: a
`call.speak.ended` after `call.hangup`, a transcription after the hangup, a hangup before
`call.initiated`), one to three times, sometimes several at once from threads, and sometimes redelivers
an old one. Deliveries go through the real Flask app, signed. The fake Telnyx answers commands the way
the network would and records them. After every step: no command_id twice, no second answer, greeting,
transfer or hangup for a call, no command once the service has processed the call's hangup. At the end
of every run every call is over and forgotten, and nothing is queued.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from app import create_app
from background import settle
from config import build_settings
from fakes import ManualScheduler
from figures import record
from receptionist import Receptionist
from simulator import events
from simulator.events import Leg, WebhookEvent
from simulator.signing import WebhookSigner
from store_setup import isolated_prefix, without_operator_state
from telnyx_client import CallControl

pytestmark = pytest.mark.both_stores

SIGNER = WebhookSigner.generate()
ONE_SHOT = ("answer", "transfer", "hangup")
UTTERANCES = (
    ("what are your hours", 0.95),  # answered by the intent brain
    ("I want to speak to a real person", 0.95),  # transfer by policy
    ("I'd like to book an appointment", 0.95),  # transfer chosen by the brain
    ("thank you bye", 0.95),  # goodbye, then the assistant hangs up
    ("mmm hrm", 0.2),  # not understood
)


@dataclass
class Sent:
    """One command as it reached the network, and whether the service had already closed the call."""

    call_control_id: str
    action: str
    command_id: str
    body: dict[str, Any]
    after_hangup_processed: bool


@dataclass
class NetCall:
    """The network's view of one inbound call (leg A) and its transfer legs."""

    a: Leg
    number: int
    answered: bool = False
    ended: bool = False
    transcribing: bool = False
    ringing: list[Leg] = field(default_factory=list)
    connected: list[Leg] = field(default_factory=list)


class ReactiveTelnyx(CallControl):
    """A Call Control fake that acts like the network: records commands and queues the webhooks they cause."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent: list[Sent] = []
        self.calls: dict[str, NetCall] = {}
        self.rank: dict[str, tuple[int, int]] = {}  # event id -> (call number, when it happened)
        self._pending: list[WebhookEvent] = []
        self._order = itertools.count()
        self.has_ended = lambda call_control_id: False  # wired to the receptionist's registry once it exists

    # ----- the network's side

    def place_call(self) -> NetCall:
        leg = Leg("incoming", "+13125550111", "+13125550100", call_session_id=str(uuid.uuid4()))
        with self.lock:
            call = NetCall(leg, len(self.calls))
            self.calls[leg.call_control_id] = call
            self.emit(call, events.initiated(leg))
        return call

    def emit(self, call: NetCall, event: WebhookEvent) -> None:
        """Queue a webhook; the caller holds the lock."""
        self.rank[event.event_id] = (call.number, next(self._order))
        self._pending.append(event)

    @property
    def pending(self) -> list[WebhookEvent]:
        """Undelivered webhooks, by call and then by when they happened.

        Calls run on parallel workers, so the raw queue order differs between runs; hypothesis needs a
        replayable order to shrink, and within one call the order is already deterministic.
        """
        with self.lock:
            return sorted(self._pending, key=self.ranked)

    def ranked(self, event: WebhookEvent) -> tuple[int, int]:
        return self.rank[event.event_id]

    def take(self, pick: int) -> WebhookEvent:
        with self.lock:
            self._pending.sort(key=self.ranked)
            return self._pending.pop(pick % len(self._pending))

    def caller_hangs_up(self, call: NetCall) -> None:
        with self.lock:
            self._end(call, "caller")

    def _end(self, call: NetCall, source: str) -> None:
        if call.ended:
            return
        call.ended, call.transcribing = True, False
        call.a.state = "hangup"
        self.emit(call, events.hangup(call.a, "normal_clearing", source))
        for leg in call.ringing + call.connected:
            leg.state = "hangup"
            self.emit(call, events.hangup(leg, "normal_clearing", source))
        call.ringing, call.connected = [], []

    # ----- commands from the service; False means 422 90018 (the call has ended)

    def answer(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._command(call_control_id, "answer", command_id, body, self._on_answer)

    def speak(self, call_control_id: str, payload: str, voice: str, *, command_id: str, **body: Any) -> bool:
        body = {"payload": payload, "voice": voice, **body}
        return self._command(call_control_id, "speak", command_id, body, self._on_speak)

    def transcription_start(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._command(call_control_id, "transcription_start", command_id, body, self._on_transcription(True))

    def transcription_stop(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._command(call_control_id, "transcription_stop", command_id, body, self._on_transcription(False))

    def playback_stop(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._command(call_control_id, "playback_stop", command_id, body, lambda call, body: None)

    def transfer(self, call_control_id: str, to: str, *, command_id: str, **body: Any) -> bool:
        return self._command(call_control_id, "transfer", command_id, {"to": to, **body}, self._on_transfer)

    def hangup(self, call_control_id: str, *, command_id: str, **body: Any) -> bool:
        return self._command(call_control_id, "hangup", command_id, body, lambda call, body: self._end(call, "callee"))

    def reject(self, call_control_id: str, cause: str, *, command_id: str, **body: Any) -> bool:
        return self._command(call_control_id, "reject", command_id, body, lambda call, body: self._end(call, "callee"))

    def _command(self, call_control_id: str, action: str, command_id: str, body: dict, effect) -> bool:
        closed = self.has_ended(call_control_id)
        with self.lock:
            self.sent.append(Sent(call_control_id, action, command_id, body, closed))
            call = self.calls[call_control_id]
            if call.ended:
                return False
            effect(call, body)
            return True

    def _on_answer(self, call: NetCall, body: dict) -> None:
        if not call.answered:
            call.answered, call.a.state = True, "answered"
            self.emit(call, events.answered(call.a))

    def _on_speak(self, call: NetCall, body: dict) -> None:
        self.emit(call, events.speak_started(call.a))
        self.emit(call, events.speak_ended(call.a, "completed"))

    def _on_transcription(self, running: bool):
        def effect(call: NetCall, body: dict) -> None:
            call.transcribing = running

        return effect

    def _on_transfer(self, call: NetCall, body: dict) -> None:
        leg = Leg("outgoing", call.a.to_number, body["to"], call.a.call_session_id,
                  client_state=body.get("target_leg_client_state"), state="bridging")
        call.ringing.append(leg)
        self.emit(call, events.initiated(leg))

    # ----- what the state machine asks for

    def commands_for(self, call_control_id: str) -> list[Sent]:
        with self.lock:
            return [s for s in self.sent if s.call_control_id == call_control_id]


class DeliverySchedules(RuleBasedStateMachine):
    """Hypothesis chooses who calls, what callers do and in which order and multiplicity webhooks arrive."""

    config: dict = {}
    env: dict = {}  # the store's: REDIS_URL, or nothing for memory
    tally: Counter = Counter()

    def __init__(self):
        super().__init__()
        self.network = ReactiveTelnyx()
        self.scheduler = ManualScheduler()
        config = {**self.config, "redis": {"key_prefix": isolated_prefix()}}
        service_settings = build_settings(config, {"TELNYX_PUBLIC_KEY": SIGNER.public_key_b64, **self.env})
        self.receptionist = Receptionist(service_settings, self.network, _intent_brain(service_settings),
                                         scheduler=self.scheduler)
        self.network.has_ended = self.receptionist.calls.has_ended
        self.app = create_app(service_settings, receptionist=self.receptionist)
        self.greeting = service_settings.assistant.greeting
        self.delivered: list[WebhookEvent] = []
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="telnyx-delivery")

    # ----- calls and callers

    @precondition(lambda self: len(self.network.calls) < 4)
    @rule()
    def a_call_comes_in(self):
        self.network.place_call()

    @precondition(lambda self: self._listening_calls())
    @rule(pick=st.integers(0, 50), utterance=st.sampled_from(UTTERANCES))
    def caller_speaks(self, pick, utterance):
        call = _pick(self._listening_calls(), pick)
        with self.network.lock:
            self.network.emit(call, events.transcription(call.a, *utterance))

    @precondition(lambda self: self._answered_calls())
    @rule(pick=st.integers(0, 50))
    def caller_presses_zero(self, pick):
        call = _pick(self._answered_calls(), pick)
        with self.network.lock:
            self.network.emit(call, events.dtmf_received(call.a, "0"))

    @precondition(lambda self: self._up_calls())
    @rule(pick=st.integers(0, 50))
    def caller_hangs_up(self, pick):
        self.network.caller_hangs_up(_pick(self._up_calls(), pick))

    @precondition(lambda self: self._ringing_transfers())
    @rule(pick=st.integers(0, 50), answers=st.booleans())
    def transfer_target_responds(self, pick, answers):
        call = _pick(self._ringing_transfers(), pick)
        with self.network.lock:
            leg = call.ringing.pop(0)
            if answers:
                leg.state = "answered"
                call.connected.append(leg)
                for event in (events.answered(leg), events.bridged(call.a), events.bridged(leg)):
                    self.network.emit(call, event)
            else:
                leg.state = "hangup"
                self.network.emit(call, events.hangup(leg, "timeout", "callee"))

    # ----- delivery

    @precondition(lambda self: self.network.pending)
    @rule(pick=st.integers(0, 50), copies=st.integers(1, 3))
    def deliver_one(self, pick, copies):
        event = self._take(pick)
        for _ in range(copies):
            self._post(event)
        self._settle()

    @precondition(lambda self: self.network.pending)
    @rule(picks=st.lists(st.integers(0, 50), min_size=1, max_size=4), copies=st.integers(1, 3))
    def deliver_several_at_once(self, picks, copies):
        """Webhooks of different calls, and copies of each, at the same moment from several threads.

        Different events of one call racing each other make runs unreplayable for hypothesis; they are
        exercised by the seeded test below.
        """
        batch, owners = [], set()
        for pick in picks:
            pending = self.network.pending
            if not pending:
                break
            index = pick % len(pending)
            owner = self.network.ranked(pending[index])[0]
            if owner not in owners:
                owners.add(owner)
                batch.append(self._take(index))
        self.deliver_at_once(batch, copies)

    def deliver_at_once(self, batch: list[WebhookEvent], copies: int) -> None:
        posts = [self.pool.submit(self._post, event) for event in batch for _ in range(copies)]
        for post in posts:
            post.result(timeout=10)
        self.tally["concurrent batches"] += 1
        self._settle()

    @precondition(lambda self: self.delivered)
    @rule(pick=st.integers(0, 200))
    def telnyx_redelivers_an_old_webhook(self, pick):
        self._post(_pick(self.delivered, pick))
        self._settle()

    @rule()
    def time_passes(self):
        if self.scheduler.fire_all():
            self._settle()

    # ----- what must hold after every step

    @invariant()
    def one_effect_per_action_and_silence_after_hangup(self):
        for call_control_id in list(self.network.calls):
            problems = self._problems(call_control_id)
            assert not problems, f"call {call_control_id[-6:]}: {problems}"

    def teardown(self):
        try:
            self._everyone_hangs_up_and_every_webhook_arrives()
            stats = self.receptionist.stats()
            assert stats == {"live_calls": 0, "queued_events": 0}, stats
            for call_control_id in self.network.calls:
                problems = self._problems(call_control_id)
                if self.receptionist.calls.get(call_control_id) is not None:
                    problems.append("state still held")
                self.tally["calls"] += 1
                self.tally["calls handled"] += not problems
                assert not problems, f"call {call_control_id[-6:]}: {problems}"
        finally:
            self.pool.shutdown(wait=True)
            self.receptionist.shutdown()

    # ----- helpers

    def _everyone_hangs_up_and_every_webhook_arrives(self):
        for call in list(self.network.calls.values()):
            self.network.caller_hangs_up(call)
        for _ in range(50):  # each round delivers what the previous one caused; bounded all the same
            if not self.network.pending:
                break
            while self.network.pending:
                self._post(self._take(0))
            self._settle()
            self.scheduler.fire_all()
            self._settle()
        assert not self.network.pending, "webhooks kept coming after every call had hung up"

    def _problems(self, call_control_id: str) -> list[str]:
        sent = self.network.commands_for(call_control_id)
        problems = []
        ids = Counter(s.command_id for s in sent)
        problems += [f"command_id sent {n} times" for n in ids.values() if n > 1]
        actions = Counter(s.action for s in sent)
        problems += [f"{action} sent {actions[action]} times" for action in ONE_SHOT if actions[action] > 1]
        greetings = sum(s.action == "speak" and s.body["payload"] == self.greeting for s in sent)
        if greetings > 1:
            problems.append(f"greeting spoken {greetings} times")
        problems += [f"{s.action} after the hangup was processed" for s in sent if s.after_hangup_processed]
        return problems

    def _take(self, pick: int) -> WebhookEvent:
        return self.network.take(pick)

    def _post(self, event: WebhookEvent) -> None:
        client = getattr(self.local, "client", None) or self.app.test_client()
        self.local.client = client
        raw = json.dumps(event.envelope(1, "http://127.0.0.1/webhooks/telnyx")).encode()
        response = client.post("/webhooks/telnyx", data=raw, headers=SIGNER.headers(raw))
        assert response.status_code == 200, (event.event_type, response.status_code, response.json)
        with self.network.lock:
            if event not in self.delivered:
                self.delivered.append(event)
                self.delivered.sort(key=self.network.ranked)
        self.tally["deliveries"] += 1
        self.tally["after the call was closed"] += self.receptionist.calls.has_ended(event.call_control_id)

    def _settle(self):
        settle(self.receptionist, timeout_s=10)

    def _up_calls(self) -> list[NetCall]:
        return [c for c in self.network.calls.values() if not c.ended]

    def _answered_calls(self) -> list[NetCall]:
        return [c for c in self._up_calls() if c.answered]

    def _listening_calls(self) -> list[NetCall]:
        return [c for c in self._answered_calls() if c.transcribing]

    def _ringing_transfers(self) -> list[NetCall]:
        return [c for c in self._up_calls() if c.ringing]


def _pick(items: list, index: int):
    return items[index % len(items)]


def _intent_brain(service_settings):
    from brains.intent import IntentBrain

    return IntentBrain(service_settings)


def _config(example_config: dict) -> dict:
    raw = copy.deepcopy(example_config)
    raw["call_log"]["path"] = ""
    raw["logging"]["level"] = "WARNING"
    return without_operator_state(raw)


def _run_schedules(example_config: dict, store_env: dict, examples: int, steps: int) -> Counter:
    DeliverySchedules.config, DeliverySchedules.env = _config(example_config), store_env
    DeliverySchedules.tally = Counter()
    run_state_machine_as_test(
        DeliverySchedules,
        settings=settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
    )
    return DeliverySchedules.tally


def _report(tally: Counter, threat: str) -> None:
    note = (f"{tally['deliveries']} signed deliveries, {tally['concurrent batches']} concurrent batches, "
            f"{tally['after the call was closed']} after their call was closed; "
            "no duplicate command, nothing after hangup, no state left")
    assert tally["concurrent batches"] > 0 and tally["after the call was closed"] > 0, "the schedules were too tame"
    assert tally["calls handled"] == tally["calls"]
    record(threat, tally["calls"], tally["calls handled"], note)


def test_any_delivery_order_gives_one_effect_per_action_and_forgets_every_call(example_config, store_env):
    tally = _run_schedules(example_config, store_env, examples=25, steps=30)
    _report(tally, "webhooks duplicated (1-3x), reordered, concurrent")


def test_different_webhooks_of_one_call_racing_from_many_threads(example_config, store_env):
    """Every pending webhook of every call at once, in random order, 1-3 copies each, from four threads."""
    tally = _race(example_config, store_env, random.Random(20251125), runs=12, rounds=12)
    _report(tally, "simultaneous webhooks of one call, racing")


def _race(example_config: dict, store_env: dict, rng: random.Random, runs: int, rounds: int) -> Counter:
    DeliverySchedules.config, DeliverySchedules.env = _config(example_config), store_env
    DeliverySchedules.tally = Counter()
    for _ in range(runs):
        machine = DeliverySchedules()
        try:
            for _ in range(rng.randint(1, 3)):
                machine.a_call_comes_in()
            for _ in range(rounds):
                _callers_act(machine, rng)
                batch = machine.network.pending
                rng.shuffle(batch)
                machine.deliver_at_once([machine.network.take(machine.network.pending.index(e)) for e in batch],
                                        copies=rng.randint(1, 3))
                if rng.random() < 0.3:
                    machine.time_passes()
                machine.one_effect_per_action_and_silence_after_hangup()
        finally:
            machine.teardown()
    return DeliverySchedules.tally


def _callers_act(machine: DeliverySchedules, rng: random.Random) -> None:
    """Each call's caller (and transfer target) may do one thing this round."""
    pick = rng.randint(0, 50)
    if machine._listening_calls() and rng.random() < 0.6:
        machine.caller_speaks(pick, rng.choice(UTTERANCES))
    if machine._answered_calls() and rng.random() < 0.1:
        machine.caller_presses_zero(pick)
    if machine._ringing_transfers() and rng.random() < 0.5:
        machine.transfer_target_responds(pick, rng.random() < 0.5)
    if machine._up_calls() and rng.random() < 0.1:
        machine.caller_hangs_up(pick)


@pytest.mark.soak
def test_many_delivery_schedules_soak(example_config, store_env):
    tally = _run_schedules(example_config, store_env, examples=300, steps=60)
    _report(tally, "webhooks duplicated, reordered, concurrent (soak)")


@pytest.mark.soak
def test_racing_webhooks_soak(example_config, store_env):
    tally = _race(example_config, store_env, random.Random(7), runs=100, rounds=20)
    _report(tally, "simultaneous webhooks of one call, racing (soak)")
