"""Load runs: N scripted calls, C at a time, and the figures a benchmark wants back (`run_load`)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass

from simulator.delivery import DeliveryAttempt
from simulator.fake_telnyx import RequestRecord
from simulator.network import Network, NetworkOptions, webhook_urls
from simulator.runner import ScenarioResult, run_scenario
from simulator.scenario import Scenario, Step
from simulator.service import start_service

QUESTIONS = ("what are your opening hours", "where are you located", "are you open on saturday",
             "what is your address")


@dataclass(frozen=True)
class Percentiles:
    p50: float | None
    p95: float | None
    p99: float | None

    @classmethod
    def of(cls, values: list[float]) -> Percentiles:
        ordered = sorted(values)
        return cls(*(_nearest_rank(ordered, q) for q in (50, 95, 99)))

    def __str__(self) -> str:
        return "  ".join(f"{name} {'-' if v is None else f'{v:.1f}'}" for name, v in asdict(self).items())


@dataclass(frozen=True)
class LoadReport:
    """What a load run measured; times in milliseconds."""

    calls: int
    completed: int
    lost: int
    errors: int
    webhook_ack_ms: Percentiles
    turn_latency_ms: Percentiles
    commands_per_call: float
    duplicated_commands: int
    duplicate_effects: int
    duration_s: float

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return "\n".join([
            f"calls completed     {self.completed}/{self.calls}   lost {self.lost}   errors {self.errors}",
            f"webhook ack (ms)    {self.webhook_ack_ms}",
            f"turn latency (ms)   {self.turn_latency_ms}",
            f"commands per call   {self.commands_per_call:.1f}",
            f"duplicated commands {self.duplicated_commands} (same command_id twice; absorbed by dedup)",
            f"duplicated effects  {self.duplicate_effects}",
            f"duration            {self.duration_s:.1f} s",
        ])


def generated_scenario(turns: int) -> Scenario:
    """`turns` questions answered from the business facts, then goodbye."""
    steps = [Step("say", QUESTIONS[i % len(QUESTIONS)], confidence=0.95) for i in range(turns)]
    steps.append(Step("say", "that's all thanks goodbye", confidence=0.95))
    return Scenario("load", steps=tuple(steps), timeout_s=60.0,
                    expect={"outcome": "hung_up_by_assistant", "max_commands_after_hangup": 0})


def run_load(calls: int = 20, concurrency: int = 5, turns: int = 2, *,
             service_url: str | Sequence[str] | None = None, options: NetworkOptions | None = None,
             network: Network | None = None, max_duration_s: float = 300.0) -> LoadReport:
    """Place `calls` calls `concurrency` at a time on `service_url` (one or several), else on a gunicorn it starts."""
    options = options or NetworkOptions(speed=0.05)
    options.delivery.workers = max(options.delivery.workers, 4 * concurrency)
    with ExitStack() as stack:
        if network is None:
            network = stack.enter_context(Network(options))
        if service_url is None:
            service = stack.enter_context(start_service(network.service_env()))
            service_url = service.url
        network.webhook_urls = webhook_urls(service_url)
        return _place_calls(network, calls, concurrency, generated_scenario(turns), max_duration_s)


def _place_calls(network: Network, calls: int, concurrency: int, scenario: Scenario,
                 max_duration_s: float) -> LoadReport:
    started = time.monotonic()
    give_up = started + max_duration_s

    def one_call(_: int) -> ScenarioResult | None:
        return run_scenario(network, scenario) if time.monotonic() < give_up else None

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sim-load") as pool:
        results = [r for r in pool.map(one_call, range(calls)) if r is not None]
    network.delivery.wait_idle(timeout_s=10)
    return build_report(network, results, calls, time.monotonic() - started)


def build_report(network: Network, results: list[ScenarioResult], calls: int, duration_s: float) -> LoadReport:
    records = list(network.fake.records)
    attempts = list(network.delivery.log.attempts)
    ids = {r.call.call_control_id for r in results}
    turn_latencies = [ms for r in results for ms in _turn_latencies(r, records)]
    return LoadReport(
        calls=calls,
        completed=sum(r.call.ended for r in results),
        lost=calls - sum(r.passed for r in results),
        errors=_errors(attempts, records),
        webhook_ack_ms=Percentiles.of([a.latency_s * 1000 for a in attempts if a.ok]),
        turn_latency_ms=Percentiles.of(turn_latencies),
        commands_per_call=sum(r.call_control_id in ids for r in records) / max(1, len(results)),
        duplicated_commands=sum(r.deduplicated for r in records),
        duplicate_effects=sum(r.call.duplicate_effects for r in results),
        duration_s=duration_s,
    )


def _turn_latencies(result: ScenarioResult, records: list[RequestRecord]) -> list[float]:
    """From each caller transcript leaving the network to the first `speak` that arrives after it."""
    speaks = sorted(r.at for r in records if r.call_control_id == result.call.call_control_id and r.action == "speak")
    latencies = []
    for sent in result.call.transcripts_sent:
        later = [at for at in speaks if at > sent]
        if later:
            latencies.append((later[0] - sent) * 1000)
    return latencies


def _errors(attempts: list[DeliveryAttempt], records: list[RequestRecord]) -> int:
    """Webhooks the service refused or did not answer, plus commands refused for reasons other than
    injected faults or the benign call-ended race."""
    webhook_errors = sum(not a.ok for a in attempts)
    api_errors = sum(r.status >= 400 and r.fault is None and r.code != "90018" for r in records)
    return webhook_errors + api_errors


def _nearest_rank(ordered: list[float], percent: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]
