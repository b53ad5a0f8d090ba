"""The rollback scenario: the model starts failing in the middle of traffic, and the guard switches the AI off.

Callers keep calling, `concurrency` at a time, each asking one question. After `healthy_calls` calls the model
breaks (503 on every request). Callers then hear the fallback line and are put through to a person; once
the guard's window of calls is over its brain-failure threshold it switches the AI off, and the next caller
goes straight to a person without talking to the assistant at all. Used by `make demo` and by
tests/reliability/test_rollback.py, against a service started with the stand-in model (simulator/model.py)
and ADMIN_TOKEN set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from simulator.model import StandInModel
from simulator.network import Network
from simulator.runner import run_scenario
from simulator.scenario import parse_scenario

# What the service needs for this scenario (on top of the network's env and ADMIN_TOKEN).
OVERRIDES = {"rollback.window_calls": 4, "rollback.max_brain_failure_share": 0.5, "ai.timeout_s": 2.0}
QUESTION = parse_scenario({
    "name": "rollback_question",
    "caller": [{"say": "do you do teeth whitening", "confidence": 0.95}, {"hangup": {}}],
    "transfer": {"answer": True, "ring_s": 0.5, "talk_s": 0.5},
    "timeout_s": 30,
})


@dataclass
class RollbackRun:
    calls_before_trip: int = 0
    tripped: bool = False
    reason: str | None = None
    next_call_actions: list[str] = field(default_factory=list)
    next_call_transcript: str = ""
    unfinished_calls: int = 0

    @property
    def next_call_went_to_a_person(self) -> bool:
        """No transcription (the assistant never listened) and a transfer."""
        return "transfer" in self.next_call_actions and "transcription_start" not in self.next_call_actions


def run_rollback(network: Network, service_url: str, admin_token: str, model: StandInModel, *,
                 healthy_calls: int = 4, concurrency: int = 2, max_calls: int = 24,
                 out: Callable[[str], None] = print) -> RollbackRun:
    """Drive traffic until the guard trips (or `max_calls`), then place one more call; what happened."""
    run, placed, lock, stop = RollbackRun(), [0], threading.Lock(), threading.Event()

    def caller() -> None:
        while not stop.is_set():
            with lock:
                if placed[0] >= max_calls:
                    return
                placed[0] += 1
                if placed[0] == healthy_calls + 1:
                    model.broken = True
                    out(f"call {placed[0]}: the model starts failing (503 on every request)")
            result = run_scenario(network, QUESTION)
            if not result.call.ended:
                run.unfinished_calls += 1
            setting = ai_setting(service_url, admin_token)
            if setting["tripped"] and not stop.is_set():
                stop.set()
                run.calls_before_trip, run.tripped, run.reason = placed[0], True, setting["reason"]
                out(f"after {placed[0]} calls the rollback guard switched the AI off: {setting['reason']}")

    with ThreadPoolExecutor(concurrency) as pool:
        for worker in [pool.submit(caller) for _ in range(concurrency)]:
            worker.result()
    if run.tripped:
        next_call = run_scenario(network, QUESTION)
        requests_ = network.fake.requests_for(next_call.call.call_control_id)
        run.next_call_actions = [record.action for record in requests_]
        run.next_call_transcript = next_call.transcript
        out("the next caller " + ("goes straight to a person" if run.next_call_went_to_a_person
                                  else f"was not sent to a person: {run.next_call_actions}"))
    return run


def ai_setting(service_url: str, admin_token: str) -> dict:
    answer = requests.get(f"{service_url}/admin/ai", headers={"Authorization": f"Bearer {admin_token}"}, timeout=5)
    answer.raise_for_status()
    return answer.json()

