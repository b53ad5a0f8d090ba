"""Goal 1: acknowledgement latency of POST /webhooks/telnyx at fixed request rates, next to the floor app.

Every request is a signed, realistic Telnyx v2 webhook that the service really processes: for each
fresh call, `call.initiated` (the service answers), `call.answered` 0.1 s later (it speaks the greeting
and starts transcription) and `call.hangup` 0.6 s later (it writes the call log line and forgets the
call). The carrier of a simulated network owns the legs, so every command the service sends is accepted
by the fake Telnyx. The floor gets the same bodies.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench import servers
from bench.procstat import CpuMeter
from bench.rategen import Generator, Outcome, Shot
from bench.stats import percentiles
from simulator import events
from simulator.network import Network, NetworkOptions

RATES = (50, 100, 200, 400, 800)
STEP_S = 4.0
EVENT_OFFSETS_S = {"call.initiated": 0.0, "call.answered": 0.1, "call.hangup": 0.6}
CONNECTIONS = 32


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


def call_shots(network: Network, capture: _Capture, url: str, rate: float, duration_s: float) -> list[Shot]:
    """Signed webhooks for fresh calls, spaced so that all of them together arrive at `rate` per second."""
    spacing = len(EVENT_OFFSETS_S) / rate  # one new call every `spacing` seconds makes `rate` events per second
    lead = max(EVENT_OFFSETS_S.values())  # calls begun before the step, so it opens in steady state
    shots = []
    for k in range(-math.ceil(lead / spacing), math.ceil(duration_s / spacing)):
        for event in _one_call(network, capture):
            offset = k * spacing + EVENT_OFFSETS_S[event.event_type]
            if 0 <= offset < duration_s:
                body = json.dumps(event.envelope(1, url)).encode()
                shots.append(Shot(offset, body, network.signer.headers(body)))
    return sorted(shots, key=lambda shot: shot.offset_s)


def _one_call(network: Network, capture: _Capture) -> list[events.WebhookEvent]:
    """A call the carrier knows and has answered; its hangup is rendered but not yet applied."""
    capture.recording, capture.events = True, []
    call = network.carrier.place_call("+13125550111", "+13125550100")
    network.carrier.handle_command(call.call_control_id, "answer", {})
    capture.recording = False
    # Only this call's own events: the service's commands for earlier calls keep the carrier emitting too.
    mine = [e for e in capture.events if e.call_control_id == call.call_control_id and e.event_type in EVENT_OFFSETS_S]
    return [*mine, events.hangup(call.a, "normal_clearing", "caller")]


def measure_rate(generator: Generator, server: servers.Server, shots: list[Shot], rate: float) -> dict:
    """Fire one step and summarise it; latency counts from when each request was due."""
    with CpuMeter(server.worker_pid) as cpu:
        fired = generator.fire(server.webhook_url, shots, CONNECTIONS)
        drained = server.wait_drained()
    outcomes: list[Outcome] = fired["outcomes"]
    ok = [o for o in outcomes if o.status is not None and 200 <= o.status < 300]
    span = max((o.sent for o in outcomes), default=0) - min((o.due for o in outcomes), default=0)
    return {
        "rate": rate,
        "requests": len(shots),
        "achieved_rate": round(len(outcomes) / span, 1) if span > 0 else None,
        "ack_ms": percentiles([(o.done - o.due) * 1000 for o in ok]),
        "send_lag_ms": percentiles([(o.sent - o.due) * 1000 for o in outcomes]),
        "errors": len(shots) - len(ok),
        "statuses": _status_counts(outcomes, fired["unsent"]),
        "worker_cpu_s": round(cpu.cpu_s, 3),
        "worker_cpu_us_per_request": round(cpu.cpu_s / max(1, len(ok)) * 1e6),
        "generator_cpu_s": round(fired["cpu_s"], 3),
        "drained": drained,
    }


def _status_counts(outcomes: list[Outcome], unsent: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        key = str(outcome.status) if outcome.status is not None else "no answer"
        counts[key] = counts.get(key, 0) + 1
    if unsent:
        counts["not sent"] = unsent
    return counts


def run(rates: tuple[float, ...] = RATES, step_s: float = STEP_S, log=print) -> dict:
    """Every rate against the floor, then against the service; ratios at each rate."""
    with ack_network() as (network, capture), Generator() as generator:
        steps = {}
        with servers.floor() as floor:
            steps["floor"] = _sweep(generator, floor, network, capture, rates, step_s, log)
        with servers.service(network.service_env()) as service:
            steps["service"] = _sweep(generator, service, network, capture, rates, step_s, log)
    return {"rates": list(rates), "step_s": step_s, "connections": CONNECTIONS, "floor": steps["floor"],
            "service": steps["service"], "ratio": _ratios(steps["service"], steps["floor"])}


def _sweep(generator, server, network, capture, rates, step_s, log) -> list[dict]:
    results = []
    for rate in rates:
        shots = call_shots(network, capture, server.webhook_url, rate, step_s)
        result = measure_rate(generator, server, shots, rate)
        log(f"  ack {server.name:7} {rate:5.0f}/s  {_short(result['ack_ms'])}  errors {result['errors']}")
        results.append(result)
        time.sleep(0.5)
    return results


def _ratios(service: list[dict], floor: list[dict]) -> list[dict]:
    ratios = []
    for mine, base in zip(service, floor, strict=True):
        ratio = {"rate": mine["rate"]}
        for key in ("p50", "p95", "p99"):
            a, b = mine["ack_ms"][key], base["ack_ms"][key]
            ratio[key] = round(a / b, 2) if a is not None and b else None
        ratios.append(ratio)
    return ratios


def _short(p: dict) -> str:
    return "  ".join(f"{k} {'-' if v is None else f'{v:.1f}'}" for k, v in p.items())
