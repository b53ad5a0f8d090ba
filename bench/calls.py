"""Whole calls through the simulated network against the service under gunicorn: the harness behind goals 2-6.

One run places `calls` scripted calls, `concurrency` at a time, their starts spread over `ramp_s` (a real
switchboard does not get every call in the same millisecond), and returns what the simulator's load report
says plus what only the bench sees: turn latency from the moment the transcript webhook was POSTed, the
service workers' CPU and resident memory, and how busy the simulator itself was. In Redis mode also the
commands the service ran in Redis (INFO commandstats before and after) and the redis-server's CPU.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass

from bench import redisinfo, servers
from bench.modes import MEMORY, Mode
from bench.procstat import CpuMeter, MachineShare, taken_cores
from bench.speed_probe import SpeedProbe
from bench.stats import percentiles
from simulator.delivery import DeliveryOptions
from simulator.load import QUESTIONS, build_report
from simulator.network import Network, NetworkOptions
from simulator.runner import ScenarioResult, run_scenario
from simulator.scenario import Scenario, Step

SLOW_BRAIN_DELAY_S = (1.0, 3.0)
# The shipped silence timeout (config.example.yml); the simulator's demo shortens it for sped-up speech.
SERVICE_OVERRIDES = {"dialog.silence_timeout_s": 10}
GOODBYE = "that's all thanks goodbye"


@dataclass(frozen=True)
class CallLoad:
    """One run's shape. `speed` scales speech durations (1.0 = real time); `turns` questions, then goodbye."""

    concurrency: int
    calls: int
    turns: int = 4
    speed: float = 1.0
    ramp_s: float = 10.0
    brain: str = "instant"  # or "slow": the LLM brain against a fake OpenAI server answering in 1-3 s
    hold_s: float = 0.0  # scenario seconds every caller waits, mid-call, after its questions
    max_duration_s: float = 150.0


def scenario(load: CallLoad) -> Scenario:
    """Questions answered from the business facts, an optional pause, goodbye, and the caller hangs up.

    The intent brain ends the call itself on goodbye; the LLM brain's scripted reply just carries on, so
    the caller hangs up once it has been answered. Either way every caller turn must get its reply.
    """
    steps = [Step("say", QUESTIONS[i % len(QUESTIONS)], confidence=0.95) for i in range(load.turns)]
    if load.hold_s:
        steps.append(Step("wait_s", pause_s=load.hold_s))
    steps += [Step("say", GOODBYE, confidence=0.95), Step("hangup")]
    return Scenario("bench", steps=tuple(steps), timeout_s=90.0, expect={"max_commands_after_hangup": 0})


class Sampler:
    """Polls the service every `interval_s`: live calls, queued events, the workers' RSS and threads, and in
    Redis mode the server's used_memory."""

    def __init__(self, server: servers.Server, interval_s: float = 0.5):
        self.server, self.interval_s = server, interval_s
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> dict:
        health = self.server.health_or_none() or {}
        sample = {"at": time.monotonic(), "live_calls": health.get("live_calls"), "queued": health.get("queued_events"),
                  "rss_mib": round(self.server.rss_mib(), 2), "threads": self.server.threads()}
        if self.server.mode.redis:
            sample["redis_used_memory"] = redisinfo.used_memory(self.server.mode.redis_url)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(self.sample())

    def peak(self) -> dict:
        """The sample with the most live calls (the latest such one: by then every one of them has spoken)."""
        live = [s for s in self.samples if s["live_calls"] is not None]
        return max(reversed(live), key=lambda s: s["live_calls"], default={})


def run(load: CallLoad, mode: Mode = MEMORY, *, during=None, env=None, overrides=None, filler=None) -> dict:
    """Place the calls and measure; `during(server)` may return a context manager held while calls run.

    `env` and `overrides` are added to the service's environment and config (bench/first_audio.py: its model).
    With `filler` (a line the service may say while a reply is slow), the run also says when the caller heard
    something and when they heard the reply itself (`heard_from_post_ms`, `answer_heard_from_post_ms`).
    """
    options = NetworkOptions(speed=load.speed,
                             delivery=DeliveryOptions(workers=min(256, max(32, load.concurrency))))
    with ExitStack() as stack:
        network = stack.enter_context(Network(options))
        service_env = {**_service_env(network, load, stack), **(env or {})}
        server = stack.enter_context(servers.service(service_env, {**SERVICE_OVERRIDES, **(overrides or {})}, mode))
        network.webhook_url = server.webhook_url
        idle_rss = server.rss_mib()
        commands_before = redisinfo.command_counts(mode.redis_url) if mode.redis else None
        with Sampler(server) as sampler, CpuMeter(*server.worker_pids) as service_cpu, \
                CpuMeter(*server.redis_pids) as redis_cpu, \
                CpuMeter(os.getpid()) as sim_cpu, servers.LogWatch(server) as service_log, \
                MachineShare(os.getpid()) as machine, (during(server) if during else ExitStack()), \
                SpeedProbe() as speed, collector_held():
            results, duration_s = place_calls(network, load)
            network.delivery.wait_idle(timeout_s=10)
            server.wait_drained(timeout_s=10)
        after = sampler.sample()
        run = summarise(load, network, results, duration_s, service_cpu, sim_cpu, idle_rss, sampler, after)
        run["mode"], run["workers"], run["service_log"] = mode.name, mode.workers, service_log.counts
        run["machine_taken_cores"] = taken_cores(machine.figures)
        run["cpu_probe"] = speed.figures
        if filler is not None:
            run["heard_from_post_ms"] = percentiles(_heard_from_post(results, network))
            run["answer_heard_from_post_ms"] = percentiles(_heard_from_post(results, network, skip=filler))
        if mode.redis:
            run["redis"] = redis_figures(run, redisinfo.command_counts(mode.redis_url) - commands_before, redis_cpu)
        return run


@contextmanager
def collector_held() -> Iterator[None]:
    """No garbage collection in the bench's own process while the calls run; a full one afterwards.

    The simulator and the fake Telnyx API live here, with every record of the run. A full collection of all
    that took 52 ms in the middle of a 50-call run: webhooks waited to leave and speaks to be stamped, and
    the wait was counted as the service's. Telnyx's side of a real call has no such pause in it.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()


def redis_figures(run: dict, delta: Counter, redis_cpu: CpuMeter) -> dict:
    """Commands the service ran in Redis over the run (INFO commandstats), per caller turn, and the server's CPU."""
    commands = redisinfo.service_commands(delta)
    turns = max(1, run["caller_turns"])
    return {
        "window_s": round(redis_cpu.wall_s, 2),
        "commands": commands,
        "commands_total": redisinfo.per_turn_total(commands),
        "commands_per_turn": round(redisinfo.per_turn_total(commands) / turns, 1),
        "evalsha_per_turn": round(commands.get("evalsha", 0) / turns, 1),
        "redis_cpu_s": round(redis_cpu.cpu_s, 3),
        "redis_cores": round(redis_cpu.cores_busy, 3),
        "redis_cpu_ms_per_turn": round(redis_cpu.cpu_s / turns * 1000, 2),
    }


def _service_env(network: Network, load: CallLoad, stack: ExitStack) -> dict[str, str]:
    env = network.service_env()
    if load.brain == "slow":
        sys.path.insert(0, str(servers.ROOT / "tests"))
        from fake_openai import FakeOpenAI  # the test suite's fake: real HTTP, real openai client

        fake = stack.enter_context(FakeOpenAI(default_delay_s=SLOW_BRAIN_DELAY_S))
        env["OPENAI_BASE_URL"] = fake.base_url
    return env


def place_calls(network: Network, load: CallLoad) -> tuple[list[ScenarioResult], float]:
    """The first wave's starts are spread over `ramp_s`; later calls start as earlier ones finish."""
    started = time.monotonic()
    give_up = started + load.max_duration_s
    script = scenario(load)

    def one_call(index: int) -> ScenarioResult | None:
        if index < load.concurrency:
            time.sleep(load.ramp_s * index / load.concurrency)
        return run_scenario(network, script) if time.monotonic() < give_up else None

    with ThreadPoolExecutor(max_workers=load.concurrency, thread_name_prefix="bench-call") as pool:
        results = [r for r in pool.map(one_call, range(load.calls)) if r is not None]
    return results, time.monotonic() - started


def summarise(load, network, results, duration_s, service_cpu, sim_cpu, idle_rss, sampler, after) -> dict:
    report = build_report(network, results, load.calls, duration_s)
    caller_turns = sum(len(r.call.transcripts_sent) for r in results)
    webhooks = sum(a.ok for a in network.delivery.log.attempts)
    unanswered = [r for r in results if r.notes or _unanswered_turns(r, network)]
    peak = sampler.peak()
    return {
        "load": asdict(load),
        "report": report.as_dict(),
        "lost": report.lost + len({id(r) for r in unanswered if r.passed}),
        "duplicated": report.duplicated_commands + report.duplicate_effects,
        "caller_turns": caller_turns,
        "webhooks": webhooks,
        "webhooks_per_s": round(webhooks / duration_s, 1),
        "turn_from_post_ms": percentiles(_turns_from_post(results, network)),
        "turn_from_post_ms_own_clocks": percentiles(_turns_from_post(results, network, wire=False)),
        "stamp_lag_ms": stamp_lags(network),
        "service_cpu_s": round(service_cpu.cpu_s, 3),
        "service_cores": round(service_cpu.cores_busy, 3),
        "cpu_ms_per_turn": round(service_cpu.cpu_s / max(1, caller_turns) * 1000, 2),
        "cpu_us_per_webhook": round(service_cpu.cpu_s / max(1, webhooks) * 1e6),
        "simulator_cores": round(sim_cpu.cores_busy, 3),
        "rss_idle_mib": round(idle_rss, 2),
        "rss_peak_live": peak,
        "rss_max_mib": max((s["rss_mib"] for s in sampler.samples), default=None),
        "rss_after": after,
        "notes": sorted({note for r in unanswered for note in r.notes})[:5],
    }


def _unanswered_turns(result: ScenarioResult, network: Network) -> int:
    """Caller turns with no `speak` after them (the caller gave up waiting, or the call ended first)."""
    speaks = [r.at for r in network.fake.requests_for(result.call.call_control_id, action="speak")]
    return sum(not any(at > sent for at in speaks) for sent in result.call.transcripts_sent)


def _heard_from_post(results: list[ScenarioResult], network: Network, skip: str | None = None) -> list[float]:
    """From the first POST of each transcript webhook to the first speech (other than `skip`) starting to play to
    the caller after it, in ms: the simulated line plays queued speeches one after another, each for as long
    as its text takes to say (simulator/carrier.py)."""
    posts = _transcript_posts(network)
    latencies = []
    for result in results:
        played = sorted(speech.started_at for speech in result.call.speeches
                        if speech.started_at is not None and speech.text != skip)
        for posted in sorted(posts.get(result.call.call_control_id, [])):
            later = [at for at in played if at > posted]
            if later:
                latencies.append((later[0] - posted) * 1000)
    return latencies


def _transcript_posts(network: Network, wire: bool = True) -> dict[str, list[float]]:
    """When each call's transcript webhooks first left the simulator (not their retries or duplicates): their
    last byte handed to the kernel (`wire`), or when the simulator's thread started them (its own clock)."""
    posts: dict[str, list[float]] = {}
    for attempt in network.delivery.log.attempts:
        if attempt.event_type == "call.transcription" and attempt.attempt == 1 and not attempt.duplicate:
            posts.setdefault(attempt.call_control_id, []).append(attempt.left_at if wire else attempt.started_at)
    return posts


def _turns_from_post(results: list[ScenarioResult], network: Network, wire: bool = True) -> list[float]:
    """From each transcript webhook leaving the simulator to the first `speak` reaching the fake Telnyx after
    it, in ms. `wire`: both ends by when the bytes went and came (simulator/departure.py, simulator/arrival.py);
    otherwise by when the bench's own threads got to them, which adds their waits for the GIL.

    The simulator's own turn latency starts when the transcript is queued for delivery, so it also
    counts time spent in the simulator's delivery pool; this one starts at the wire.
    """
    posts = _transcript_posts(network, wire)
    latencies = []
    for result in results:
        cid = result.call.call_control_id
        speaks = sorted(r.arrived_at if wire else r.at for r in network.fake.requests_for(cid, action="speak"))
        for posted in sorted(posts.get(cid, [])):
            later = [at for at in speaks if at > posted]
            if later:
                latencies.append((later[0] - posted) * 1000)
    return latencies


def stamp_lags(network: Network) -> dict[str, dict]:
    """How long the bench's own threads took to get to what they time, in ms: a transcript webhook from being
    started to having left, and a `speak` from reaching the machine to being taken by the fake Telnyx."""
    webhooks = [(a.left_at - a.started_at) * 1000 for a in network.delivery.log.attempts
                if a.event_type == "call.transcription" and a.sent_at is not None]
    speaks = [(r.at - r.arrived_at) * 1000 for r in network.fake.records if r.action == "speak"]
    return {"webhook_send": percentiles(webhooks), "speak_take": percentiles(speaks)}
