"""The "Slow and idle clients" section of BENCHMARKS.md, from results["slow_clients"]; measures nothing."""

from __future__ import annotations

from bench.tables import p, table
from deadline_worker import SPREAD

DESIGN_LABELS = {
    "gevent_deadlines": "gevent worker with request deadlines (as deployed, `deadline_worker.py`)",
    "gthread": "gthread worker, 32 threads (before)",
}
PHASES = ("before", "during", "after")


def render(results: dict) -> str:
    slow = (results.get("slow_clients") or {}).get("memory")
    if not slow:
        return ""
    attack = slow["attack"]
    rows = []
    for design, phases in slow["designs"].items():
        for phase in PHASES:
            figures = phases[phase]
            ack = p(figures["ack_ms"]) if figures["passed"] else "not recorded: " + ", ".join(figures["problems"])
            rows.append([DESIGN_LABELS.get(design, design), phase, f"{figures['answered']} / {figures['requests']}",
                         ack, _attack_note(figures)])
    return "\n\n".join([
        "## Slow and idle clients",
        f"Signed webhooks of fresh calls at {slow['rate']:g}/s for {slow['step_s']:g} s in each phase (as in "
        f"section 1), while {attack['slow_headers']} connections trickle a request head and {attack['slow_bodies']} a "
        f"body, one byte a second, and {attack['idle']} sit idle; the attacker reopens at once every connection the "
        "server closes, so all of them are held throughout `during` (`simulator/attackers.py`, "
        "`bench/slow_clients.py`). *Answered* counts 2xx within Telnyx's 2 s; latency figures are recorded only when "
        "every webhook was answered and every call answered. Memory mode, 1 worker. The gevent worker draws each "
        f"connection's deadlines between {SPREAD:.0%} and 100% of their bound (`deadline_worker.SPREAD`), so that "
        "connections opened together are not closed and reopened together.",
        table(["server", "phase", "answered", "ack p50 / p95 / p99", "attack"], rows),
    ])


def _attack_note(figures: dict) -> str:
    attack = figures.get("attack")
    if not attack:
        return ""
    closed = sum(attack["closed_by_server"].values())
    timeouts = sum(attack["answered_408"].values())
    ramp = figures.get("ramp_s")
    held = "all held" + (f" after {ramp:g} s" if ramp is not None else "") if ramp is not None else "never all held"
    return f"{held}; {closed} closed by the server ({timeouts} with 408), reopened"
