"""stores/leases.py against a real Redis: the ordering protocol's edges, with two stores standing in for two
processes (two workers, or two machines) on one key prefix."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import defaultdict

import pytest

from background import wait_until, watching_logs
from config import build_settings
from events import TimerFired
from store_setup import isolated_prefix
from stores.leases import MAX_CLAIMS
from stores.redis import RedisStore
from workers import Scheduler


class Process:
    """A RedisStore with a handler that records what ran, and checks that no call ever runs twice at once."""

    running: dict[str, str] = {}  # call -> the process running it now, shared by every Process of a test

    def __init__(self, name: str, settings, log: list, hold: threading.Event | None = None):
        self.name, self.log, self.hold = name, log, hold
        self.store = RedisStore(settings, Scheduler(), time.time)
        self.overlaps = self.runs = 0
        self.on_event = None  # an extra step inside the handler, set by a test
        self.store.start(self.handle)

    def handle(self, call_control_id: str, event: TimerFired) -> None:
        if Process.running.setdefault(call_control_id, self.name) != self.name:
            self.overlaps += 1
        try:
            self.runs += 1
            run = f"{self.name}{self.runs}"  # which process, and which of its runs
            state = self.store.calls.open(call_control_id)
            if self.hold is not None and event.token == 0 and self.runs == 1:
                self.hold.wait(10)
            state.messages.append(f"{run}:{event.token}")
            if self.on_event:
                self.on_event(call_control_id, event)
            self.log.append((run, call_control_id, event.token, time.monotonic()))
        finally:
            Process.running.pop(call_control_id, None)

    def accept(self, call_control_id: str, token: int) -> bool:
        return self.store.accept(f"{call_control_id}/{token}", call_control_id, TimerFired("step", token))


@pytest.fixture
def processes(redis_server, example_config):
    """`start(name, lease_s=1.0, hold=None)` makes another process on this test's prefix; all stopped after."""
    raw = copy.deepcopy(example_config)
    raw["redis"]["key_prefix"] = isolated_prefix()
    raw["webhook"]["verify_signatures"] = False
    made: list[Process] = []
    log: list = []
    Process.running = {}

    def start(name: str, lease_s: float = 1.0, hold: threading.Event | None = None) -> Process:
        raw["redis"]["lease_s"] = lease_s
        made.append(Process(name, build_settings(raw, {"REDIS_URL": redis_server.url}), log, hold))
        return made[-1]

    start.log = log
    yield start
    for process in made:
        process.store.shutdown()


def ran(log: list, call_control_id: str) -> list[int]:
    return [token for _, cid, token, _ in list(log) if cid == call_control_id]


def test_one_calls_events_run_in_arrival_order_one_at_a_time_whichever_process_took_them(processes):
    a, b = processes("a"), processes("b")
    calls = [f"v3:order-{n}" for n in range(3)]
    for token in range(40):
        for n, call in enumerate(calls):
            assert (a if (token + n) % 2 else b).accept(call, token)
    assert wait_until(lambda: len(processes.log) == 120, 20), len(processes.log)
    assert all(ran(processes.log, call) == list(range(40)) for call in calls)
    assert a.overlaps == b.overlaps == 0
    final = a.store.calls.get(calls[0])
    assert [m.split(":")[1] for m in final.messages] == [str(t) for t in range(40)]  # every commit kept


def test_a_redelivered_webhook_id_is_queued_once_across_processes(processes):
    a, b = processes("a"), processes("b")
    answers = [a.accept("v3:dup", 0), b.accept("v3:dup", 0), a.accept("v3:dup", 0)]
    assert answers == [True, False, False]
    assert wait_until(lambda: ran(processes.log, "v3:dup") == [0], 5)
    time.sleep(0.2)
    assert ran(processes.log, "v3:dup") == [0]


def test_different_calls_run_at_the_same_time(processes):
    a = processes("a")
    both_running = threading.Barrier(2, timeout=5)
    a.on_event = lambda call_control_id, event: both_running.wait()
    a.accept("v3:left", 1)
    a.accept("v3:right", 1)
    assert wait_until(lambda: len(processes.log) == 2, 10)  # each waited for the other: they overlapped
    assert not both_running.broken


def test_a_stalled_holders_call_is_taken_over_and_its_late_commit_is_refused(processes):
    """The holder stops renewing (a paused process, a partition) while it runs an event: after lease_s the call
    is claimed again, even by the same process, and the event runs again and is committed; the stalled run's
    result is dropped when it wakes."""
    hold = threading.Event()
    a = processes("a", hold=hold)
    a.store.queues._renew_leases = lambda: None  # a stalled process renews nothing
    a.accept("v3:stall", 0)
    assert wait_until(lambda: "v3:stall" in a.store.queues.held(), 5)
    b = processes("b")
    b.accept("v3:stall", 1)
    started = time.monotonic()
    with watching_logs(logging.WARNING) as records:
        assert wait_until(lambda: ran(processes.log, "v3:stall") == [0, 1], 10), processes.log
        taken_over_s = time.monotonic() - started
        hold.set()  # the stalled run wakes up and tries to commit event 0
        assert wait_until(lambda: len(processes.log) == 3, 5)
        assert wait_until(lambda: a.store.queues.idle() and b.store.queues.idle(), 5)
    assert processes.log[-1][0] == "a1" and processes.log[-1][2] == 0  # the stalled run finished last
    state = b.store.calls.get("v3:stall")
    assert [m.split(":")[1] for m in state.messages] == ["0", "1"]
    assert not any(m.startswith("a1:") for m in state.messages), state.messages  # it wrote nothing
    assert any("lease lost" in r.getMessage() for r in records.records)
    assert taken_over_s < 1.0 + 1.5  # lease_s, plus polling and a loaded machine's slack


def test_a_timer_armed_by_a_process_that_then_stops_fires_on_time_in_another(processes):
    a, b = processes("a"), processes("b")

    def arm(call_control_id, event):
        if event.token == 0:
            a.store.schedule(1.0, call_control_id, TimerFired("step", 99))

    a.on_event = arm
    b.store.queues.begin_shutdown()  # b claims nothing until a is gone, so the timer cannot be a's
    a.accept("v3:timer", 0)
    assert wait_until(lambda: ran(processes.log, "v3:timer") == [0], 5)
    armed_at = time.monotonic()
    a.store.shutdown()
    b2 = processes("b2")
    assert wait_until(lambda: ran(processes.log, "v3:timer") == [0, 99], 5)
    fired = next(entry for entry in processes.log if entry[2] == 99)
    assert fired[0].startswith("b2")
    late_s = fired[3] - (armed_at + 1.0)
    assert late_s < 2.0, late_s  # the bound: on time within 2 s
    assert b2.overlaps == 0


def test_a_process_shutting_down_hands_its_call_back_at_once(processes):
    hold = threading.Event()
    a = processes("a", lease_s=10.0, hold=hold)
    for token in range(4):
        a.accept("v3:handback", token)
    assert wait_until(lambda: "v3:handback" in a.store.queues.held(), 5)
    b = processes("b", lease_s=10.0)
    b.store.queues.begin_shutdown()
    b.store.queues.shutdown()  # only a is left running until it begins shutting down
    a.store.begin_shutdown()
    processes("c", lease_s=10.0)  # the process that takes the call over
    started = time.monotonic()
    hold.set()
    assert wait_until(lambda: ran(processes.log, "v3:handback") == [0, 1, 2, 3], 5), processes.log
    handed_over_s = time.monotonic() - started
    by = defaultdict(list)
    for run, _, token, _ in processes.log:
        by[run[0]].append(token)
    assert by == {"a": [0], "c": [1, 2, 3]}
    assert handed_over_s < 5.0  # far less than the 10 s lease a crash would cost


def test_an_event_that_stops_every_process_running_it_is_dropped_and_the_calls_next_event_runs(processes):
    """A poison event: each holder stalls on it for good (stands in for a crash: nothing committed, no renewal).
    After MAX_CLAIMS claims it is dropped with an error naming it, and the call's next event runs."""
    stalled = threading.Event()  # never set: every run of event 0 hangs until the test ends

    def stall_on_poison(process):
        process.store.queues._renew_leases = lambda: None
        original = process.handle

        def handle(call_control_id, event):
            if event.token == 0:
                stalled.wait(30)
                return
            original(call_control_id, event)
        process.store.queues._handle = handle
        return process

    workers = [stall_on_poison(processes(name)) for name in ("a", "b", "c", "d")]
    with watching_logs(logging.ERROR) as records:
        workers[0].accept("v3:poison", 0)
        workers[0].accept("v3:poison", 1)
        assert wait_until(lambda: ran(processes.log, "v3:poison") == [1], 15), processes.log
    errors = [r.getMessage() for r in records.records if "v3:poison" in r.getMessage()]
    assert errors == [f"call=v3:poison timer step dropped after {MAX_CLAIMS} claims: each process that ran it "
                      "stopped before finishing"], errors
    state = workers[0].store.calls.get("v3:poison")
    assert [m.split(":")[1] for m in state.messages] == ["1"]
    stalled.set()
