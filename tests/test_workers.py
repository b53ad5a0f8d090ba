"""workers.py: SerialQueues (one key's items in order, different keys in parallel) and the Scheduler's timers."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from workers import Scheduler, SerialQueues

WAIT_S = 5.0


class Recorder:
    """A SerialQueues handler that records (key, item), raises for "boom" and holds items while `hold` is clear."""

    def __init__(self):
        self.handled: list[tuple[str, object]] = []
        self.started = threading.Event()
        self.hold = threading.Event()
        self.hold.set()

    def __call__(self, key: str, item: object) -> None:
        self.started.set()
        assert self.hold.wait(WAIT_S)
        if item == "boom":
            raise RuntimeError("handler failed")
        self.handled.append((key, item))

    def items(self, key: str) -> list[object]:
        return [item for handled_key, item in self.handled if handled_key == key]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def queues(recorder):
    serial = SerialQueues(recorder, workers=4)
    yield serial
    recorder.hold.set()
    serial.shutdown()


@pytest.fixture
def scheduler():
    timers = Scheduler(name="test-scheduler")
    yield timers
    timers.stop()


# ---------------------------------------------------------------- SerialQueues


def test_one_key_s_items_run_in_arrival_order(queues, recorder):
    for item in range(50):
        queues.submit("a", item)
    assert queues.wait_idle(WAIT_S)
    assert recorder.items("a") == list(range(50))


def test_different_keys_run_in_parallel():
    gate, order = threading.Event(), []

    def handle(key: str, item: str) -> None:
        if key == "slow":
            assert gate.wait(WAIT_S)
        order.append(key)
        if key == "fast":
            gate.set()

    serial = SerialQueues(handle, workers=2)
    serial.submit("slow", 1)
    serial.submit("fast", 1)
    assert serial.wait_idle(WAIT_S)
    serial.shutdown()
    assert order == ["fast", "slow"]


def test_a_failing_item_is_logged_and_the_next_still_runs(queues, recorder, caplog):
    with caplog.at_level(logging.ERROR, logger="workers"):
        queues.submit("a", "boom")
        queues.submit("a", "next")
        assert queues.wait_idle(WAIT_S)
    assert recorder.items("a") == ["next"]
    assert "call=a background work failed" in caplog.text and caplog.records[0].exc_info is not None


def test_wait_idle_times_out_while_work_is_held(queues, recorder):
    assert queues.idle() and queues.wait_idle(0)
    recorder.hold.clear()
    queues.submit("a", 1)
    assert queues.wait_idle(0.05) is False and not queues.idle()
    recorder.hold.set()
    assert queues.wait_idle(WAIT_S) and queues.idle()


def test_discard_pending_drops_what_has_not_started(queues, recorder):
    recorder.hold.clear()
    queues.submit("a", "running")
    assert recorder.started.wait(WAIT_S)
    for item in ("q1", "q2", "q3"):
        queues.submit("a", item)
    assert queues.pending() == 3
    assert queues.discard_pending() == {"a": 3}
    recorder.hold.set()
    assert queues.wait_idle(WAIT_S)
    assert recorder.items("a") == ["running"] and queues.pending() == 0


def test_submit_after_shutdown_is_dropped_and_logged(queues, recorder, caplog):
    queues.shutdown()
    with caplog.at_level(logging.WARNING, logger="workers"):
        queues.submit("a", "late")
    assert "call=a str dropped: shutting down" in caplog.text
    assert recorder.handled == [] and queues.idle()


# ---------------------------------------------------------------- Scheduler


def test_timers_fire_in_order_of_their_deadlines(scheduler):
    fired, last = [], threading.Event()
    scheduler.call_later(0.06, lambda: (fired.append(3), last.set()))
    scheduler.call_later(0.02, lambda: fired.append(1))
    scheduler.call_later(0.04, lambda: fired.append(2))
    assert last.wait(WAIT_S)
    assert fired == [1, 2, 3]


def test_a_cancelled_timer_never_fires(scheduler):
    fired, last = [], threading.Event()
    scheduler.call_later(0.01, lambda: fired.append("cancelled")).cancel()
    scheduler.call_later(0.03, lambda: (fired.append("kept"), last.set()))
    assert last.wait(WAIT_S)
    assert fired == ["kept"]


def test_a_failing_callback_does_not_stop_later_ones(scheduler, caplog):
    later = threading.Event()
    with caplog.at_level(logging.ERROR, logger="workers"):
        scheduler.call_later(0.0, lambda: 1 / 0)
        scheduler.call_later(0.02, later.set)
        assert later.wait(WAIT_S)
    assert "scheduled callback failed" in caplog.text
    assert "ZeroDivisionError" in caplog.text


def test_a_stopped_scheduler_fires_nothing_more(scheduler):
    fired, stopped = [], threading.Event()
    scheduler.call_later(0.0, lambda: (scheduler.stop(), stopped.set()))  # stop() from its own thread
    scheduler.call_later(0.05, lambda: fired.append("after stop"))
    assert stopped.wait(WAIT_S)
    time.sleep(0.15)
    assert fired == []
