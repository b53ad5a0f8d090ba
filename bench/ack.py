"""Goal 1: acknowledgement latency of POST /webhooks/telnyx at fixed request rates, next to the floor app.

Every request is a signed, realistic Telnyx v2 webhook that the service really processes: for each
fresh call, `call.initiated` (the service answers), `call.answered` 0.1 s later (it speaks the greeting
and starts transcription) and `call.hangup` 0.6 s later (it writes the call log line and forgets the
call). The carrier of a simulated network owns the legs, so every command the service sends is accepted
by the fake Telnyx. The floor gets the same bodies, under the same gunicorn settings and worker count, and so
does the least-work app (bench/least_app.py: the signature check and the three commands, nothing more), a
lower bound for any service on this machine.

A service step passes its checks when every webhook was acknowledged with a 2xx, every call whose
`call.initiated` was sent got its `answer`, no command was sent twice and the queue drained; only then
is its latency compared with the floor's. Each sweep opens with a second of unmeasured warm-up.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench import servers
from bench.modes import MEMORY, Mode
from bench.procstat import CpuMeter, MachineShare, taken_cores
from bench.rategen import Generator, Outcome, Shot
from bench.stats import percentiles
from simulator import events
from simulator.network import Network, NetworkOptions

RATES = (50, 100, 200, 400, 800, 1600)
STEP_S = 4.0
WARMUP_RATE, WARMUP_S = 50, 1.0
# The floor sustains a rate when it gets (nearly) all of it on time and answers within the capacity limit.
SUSTAINED_SHARE = 0.95
SUSTAINED_P99_MS = 200.0
EVENT_OFFSETS_S = {"call.initiated": 0.0, "call.answered": 0.1, "call.hangup": 0.6}
CONNECTIONS = 32
LEAST_SETTLE_S = 1.0


class _Capture:
    """Stands in for webhook delivery: keeps the events the carrier emits while the bench builds a call."""

    def __init__(self) -> None:
        self.events: list[events.WebhookEvent] = []
        self.recording = False

    def __call__(self, event: events.WebhookEvent) -> None:
        if self.recording:
            self.events.append(event)


@contextmanager
def ack_network() -> Iterator[tuple[Network, _Capture]]:
    """A simulated network whose webhooks the bench sends itself, on its own schedule."""
    with Network(NetworkOptions(speed=1.0)) as network:
        capture = _Capture()
        network.carrier.emit = capture
        yield network, capture


def call_shots(network: Network, capture: _Capture, url: str, rate: float,
               duration_s: float) -> tuple[list[Shot], list[str]]:
    """Signed webhooks for fresh calls, spaced so that all of them together arrive at `rate` per second.

    Also the ids of the calls whose `call.initiated` is among them: each of those must be answered.
    """
    spacing = len(EVENT_OFFSETS_S) / rate  # one new call every `spacing` seconds makes `rate` events per second
    lead = max(EVENT_OFFSETS_S.values())  # calls begun before the step, so it opens in steady state
    shots, answerable = [], []
    for k in range(-math.ceil(lead / spacing), math.ceil(duration_s / spacing)):
        for event in _one_call(network, capture):
            offset = k * spacing + EVENT_OFFSETS_S[event.event_type]
            if 0 <= offset < duration_s:
                body = json.dumps(event.envelope(1, url)).encode()
                shots.append(Shot(offset, body, network.signer.headers(body)))
                if event.event_type == "call.initiated":
                    answerable.append(event.call_control_id)
    return sorted(shots, key=lambda shot: shot.offset_s), answerable


def _one_call(network: Network, capture: _Capture) -> list[events.WebhookEvent]:
    """A call the carrier knows and has answered; its hangup is rendered but not yet applied."""
    capture.recording, capture.events = True, []
    call = network.carrier.place_call("+13125550111", "+13125550100")
    network.carrier.handle_command(call.call_control_id, "answer", {})
    capture.recording = False
    # Only this call's own events: the service's commands for earlier calls keep the carrier emitting too.
    mine = [e for e in capture.events if e.call_control_id == call.call_control_id and e.event_type in EVENT_OFFSETS_S]
    return [*mine, events.hangup(call.a, "normal_clearing", "caller")]


def measure_rate(generator: Generator, server: servers.Server, network: Network, shots: list[Shot],
                 answerable: list[str], rate: float) -> dict:
    """Fire one step and summarise it; latency counts from when each request was due."""
    with CpuMeter(*server.worker_pids) as cpu, CpuMeter(*server.redis_pids) as redis_cpu, \
            servers.LogWatch(server) as service_log, MachineShare(os.getpid()) as machine:
        fired = generator.fire(server.webhook_url, shots, CONNECTIONS)
        drained = server.wait_drained()
    outcomes: list[Outcome] = fired["outcomes"]
    ok = [o for o in outcomes if o.status is not None and 200 <= o.status < 300]
    span = max((o.sent for o in outcomes), default=0) - min((o.due for o in outcomes), default=0)
    result = {
        "rate": rate,
        "requests": len(shots),
        "achieved_rate": round(len(outcomes) / span, 1) if span > 0 else None,
        "ack_ms": percentiles([(o.done - o.due) * 1000 for o in ok]),
        "send_lag_ms": percentiles([(o.sent - o.due) * 1000 for o in outcomes]),
        "errors": len(shots) - len(ok),
        "statuses": _status_counts(outcomes, fired["unsent"]),
        "worker_cpu_s": round(cpu.cpu_s, 3),
        "worker_cpu_us_per_request": round(cpu.cpu_s / max(1, len(ok)) * 1e6),
        "redis_cpu_us_per_request": round(redis_cpu.cpu_s / max(1, len(ok)) * 1e6) if server.redis_pid else None,
        "generator_cpu_s": round(fired["cpu_s"], 3),
        "drained": drained,
        "service_log": service_log.counts,
        "machine_taken_cores": taken_cores(machine.figures),
    }
    if server.name == "least":
        time.sleep(LEAST_SETTLE_S)  # its last commands may still be on their way: it has no queue to drain
    if server.name in ("service", "least"):
        result.update(_checks(network, answerable, result))
    return result


def _checks(network: Network, answerable: list[str], result: dict) -> dict:
    """Nothing lost (every webhook acknowledged, every new call answered) and nothing done twice."""
    records = network.fake.requests_for(*answerable)
    answered = {r.call_control_id for r in records if r.action == "answer" and r.acted}
    unanswered_calls = len(set(answerable) - answered)
    duplicated = sum(r.deduplicated for r in records)
    problems = [f"{n} {what}" for n, what in ((result["errors"], "webhooks not acknowledged"),
                                              (unanswered_calls, "calls never answered"),
                                              (duplicated, "commands sent twice")) if n]
    if not result["drained"]:
        problems.append("still queued after 20 s")
    return {"calls": len(answerable), "unanswered_calls": unanswered_calls, "duplicated": duplicated,
            "passed": not problems, "problems": problems}


def _status_counts(outcomes: list[Outcome], unsent: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        key = str(outcome.status) if outcome.status is not None else "no answer"
        counts[key] = counts.get(key, 0) + 1
    if unsent:
        counts["not sent"] = unsent
    return counts


def run(mode: Mode = MEMORY, rates: tuple[float, ...] = RATES, step_s: float = STEP_S, log=print) -> dict:
    """Every rate against the floor, then against the service, both with the mode's worker count."""
    with ack_network() as (network, capture), Generator() as generator:
        steps = {}
        with servers.floor(mode) as floor:
            steps["floor"] = _sweep(generator, floor, network, capture, rates, step_s, log)
        with servers.floor(mode, servers.LEAST_APP, "least", network.service_env()) as least:
            steps["least"] = _sweep(generator, least, network, capture, rates, step_s, log)
        with servers.service(network.service_env(), mode=mode) as service:
            steps["service"] = _sweep(generator, service, network, capture, rates, step_s, log)
    for row in [*steps["floor"], *steps["least"]]:
        row["sustained"] = sustained(row)
    return {"mode": mode.name, "workers": mode.workers, "rates": list(rates), "step_s": step_s,
            "connections": CONNECTIONS, "floor": steps["floor"], "least": steps["least"],
            "service": steps["service"], "ratio": _ratios(steps["service"], steps["floor"]),
            "least_ratio": _ratios(steps["least"], steps["floor"], checked=False)}


def sustained(floor: dict) -> bool:
    """The floor keeps up with a rate: every request answered, sent on time, p99 under the capacity limit."""
    p99 = floor["ack_ms"]["p99"]
    return (floor["errors"] == 0 and (floor["achieved_rate"] or 0) >= SUSTAINED_SHARE * floor["rate"]
            and p99 is not None and p99 < SUSTAINED_P99_MS)


def _sweep(generator, server, network, capture, rates, step_s, log) -> list[dict]:
    warm, _ = call_shots(network, capture, server.webhook_url, WARMUP_RATE, WARMUP_S)
    generator.fire(server.webhook_url, warm, CONNECTIONS)  # connections, lazy imports, pools: not measured
    server.wait_drained()
    results = []
    for rate in rates:
        shots, answerable = call_shots(network, capture, server.webhook_url, rate, step_s)
        result = measure_rate(generator, server, network, shots, answerable, rate)
        failed = "" if result.get("passed", True) else "  FAILED: " + ", ".join(result["problems"])
        log(f"  ack {server.mode.name:6} {server.name:7} {rate:5.0f}/s  {_short(result['ack_ms'])}  "
            f"errors {result['errors']}{failed}")
        results.append(result)
        time.sleep(0.5)
    return results


def _ratios(service: list[dict], floor: list[dict], checked: bool = True) -> list[dict]:
    """service / floor at each rate; None where the service's checks failed (that figure is not recorded).

    `checked=False` for the least-work app, a bound: it answers calls only as well as it can.
    """
    ratios = []
    for mine, base in zip(service, floor, strict=True):
        ratio = {"rate": mine["rate"]}
        counts = mine.get("passed", True) or not checked
        for key in ("p50", "p95", "p99"):
            a, b = mine["ack_ms"][key], base["ack_ms"][key]
            ratio[key] = round(a / b, 2) if counts and a is not None and b else None
        ratios.append(ratio)
    return ratios


def _short(p: dict) -> str:
    return "  ".join(f"{k} {'-' if v is None else f'{v:.1f}'}" for k, v in p.items())
