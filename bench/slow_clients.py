"""Slow and idle clients: signed webhooks at a steady rate while attackers hold connections open.

Each server design under test runs three phases of the same load (signed webhooks of fresh calls, as in
bench/ack.py): `before` (no attack), `during` (after the attack has ramped up to its full size and while
it is held) and `after` (the attack gone). A webhook counts as answered when a 2xx comes back within
Telnyx's 2 s; every call whose `call.initiated` was acknowledged must be answered.

The designs: gunicorn's gevent worker with request deadlines as deployed (deadline_worker.py), and
gunicorn's gthread worker with 32 threads (what the service ran before).
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from bench import ack, servers
from bench.rategen import Generator
from simulator.attackers import Attack

ATTACK = {"slow_headers": 250, "slow_bodies": 250, "idle": 2000}
RATE = 50.0
STEP_S = 10.0
RAMP_TIMEOUT_S = 20.0
DESIGNS = {"gevent_deadlines": (), "gthread": ("--worker-class", "gthread", "--threads", "32")}


def run(attack: dict[str, int] | None = None, rate: float = RATE, step_s: float = STEP_S,
        designs: tuple[str, ...] = tuple(DESIGNS), log=print) -> dict:
    attack = attack or ATTACK
    results = {"attack": attack, "rate": rate, "step_s": step_s, "designs": {}}
    with ack.ack_network() as (network, capture), Generator() as generator:
        for design in designs:
            with servers.service(network.service_env(), gunicorn_args=DESIGNS[design]) as server:
                results["designs"][design] = _phases(generator, server, network, capture, attack, rate, step_s,
                                                     design, log)
    return results


def _phases(generator, server, network, capture, attack, rate, step_s, design, log) -> dict:
    url = server.webhook_url
    warm, _ = ack.call_shots(network, capture, url, ack.WARMUP_RATE, ack.WARMUP_S)
    generator.fire(url, warm, ack.CONNECTIONS)
    server.wait_drained()
    phases = {"before": _measure(generator, server, network, capture, rate, step_s)}
    target = urlsplit(url)
    with Attack(target.hostname, target.port, attack) as attackers:
        ramped = _wait_ramped(attackers, attack)
        phases["during"] = _measure(generator, server, network, capture, rate, step_s)
        phases["during"]["attack_held"] = attackers.held()
        phases["during"]["ramp_s"] = ramped
    phases["during"]["attack"] = vars(attackers.tally)
    time.sleep(1.0)
    phases["after"] = _measure(generator, server, network, capture, rate, step_s)
    for name, phase in phases.items():
        failed = "" if phase["passed"] else "  FAILED: " + ", ".join(phase["problems"])
        log(f"  slow clients {design:17} {name:6}  p50 {phase['ack_ms']['p50']}  p99 {phase['ack_ms']['p99']}  "
            f"answered {phase['answered']}/{phase['requests']}{failed}")
    return phases


def _measure(generator, server, network, capture, rate, step_s) -> dict:
    shots, answerable = ack.call_shots(network, capture, server.webhook_url, rate, step_s)
    result = ack.measure_rate(generator, server, network, shots, answerable, rate)
    result["answered"] = result["requests"] - result["errors"]
    result.setdefault("passed", not result["errors"])
    result.setdefault("problems", [])
    return result


def _wait_ramped(attackers: Attack, attack: dict[str, int]) -> float | None:
    """Seconds until every attacker connection was open at once, or None if the attack never got there."""
    started = time.monotonic()
    while time.monotonic() - started < RAMP_TIMEOUT_S:
        if attackers.held() == attack:
            return round(time.monotonic() - started, 1)
        time.sleep(0.1)
    return None
