"""calls.py: one call's state, the registry of live calls and their tombstones, and remembering webhook ids."""

from __future__ import annotations

import threading

import pytest

from calls import CallRegistry, CallState, Phase, SeenEvents
from fakes import ManualClock

MAX_AGE_S = 600


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def registry(clock) -> CallRegistry:
    return CallRegistry(max_call_age_s=MAX_AGE_S, clock=clock)


# ---------------------------------------------------------------- one call


def test_a_new_call_rings_and_counts_as_the_caller_hanging_up():
    state = CallState("v3:a")
    assert (state.phase, state.outcome, state.ai) == (Phase.RINGING, "caller_hung_up", True)
    assert state.turns == [] and state.history == [] and state.after_speech is None


# ---------------------------------------------------------------- the registry


def test_open_creates_the_call_once_stamped_with_the_clock(registry, clock):
    state = registry.open("v3:a")
    clock.advance(5)
    assert registry.open("v3:a") is state and registry.get("v3:a") is state
    assert state.call_control_id == "v3:a" and state.started_at == clock.now - 5
    assert len(registry) == 1


def test_get_does_not_create(registry):
    assert registry.get("v3:unknown") is None
    assert len(registry) == 0


def test_a_closed_call_leaves_a_tombstone_and_cannot_reopen(registry):
    registry.open("v3:a")
    registry.close("v3:a")
    assert registry.get("v3:a") is None and registry.has_ended("v3:a")
    assert registry.open("v3:a") is None
    assert len(registry) == 0


def test_closing_a_call_never_opened_still_leaves_a_tombstone(registry):
    registry.close("v3:hung-up-early")
    assert registry.has_ended("v3:hung-up-early")
    assert registry.open("v3:hung-up-early") is None


def test_tombstones_are_forgotten_after_the_max_call_age(registry, clock):
    registry.close("v3:old")
    clock.advance(MAX_AGE_S + 1)
    registry.close("v3:new")  # closing is when old tombstones are swept
    assert not registry.has_ended("v3:old") and registry.has_ended("v3:new")


def test_expired_lists_only_calls_older_than_the_limit(registry, clock):
    registry.open("v3:old")
    clock.advance(MAX_AGE_S - 10)
    registry.open("v3:young")
    assert registry.expired() == []
    clock.advance(11)
    assert registry.expired() == ["v3:old"]


# ---------------------------------------------------------------- webhook ids


def test_first_time_is_true_exactly_once_per_id():
    seen = SeenEvents(clock=ManualClock())
    assert [seen.first_time(event_id) for event_id in ["a", "b", "a", "b", "c"]] == [True, True, False, False, True]


def test_ids_are_forgotten_after_the_ttl(clock):
    seen = SeenEvents(ttl_s=60, clock=clock)
    seen.first_time("a")
    clock.advance(59)
    assert seen.first_time("a") is False
    clock.advance(1)
    assert seen.first_time("a") is True


def test_the_oldest_ids_make_room_at_the_bound(clock):
    seen = SeenEvents(ttl_s=60, max_entries=3, clock=clock)
    for event_id in ["a", "b", "c", "d"]:
        seen.first_time(event_id)
    assert seen.first_time("a") is True  # evicted when "d" arrived
    assert seen.first_time("d") is False


def test_concurrent_duplicates_are_let_through_once():
    seen, results = SeenEvents(), []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        barrier.wait()
        results.append(seen.first_time("same-id"))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert sorted(results) == [False] * 7 + [True]
