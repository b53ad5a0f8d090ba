"""The short reading at the end of BENCHMARKS.md, derived from the figures so that it cannot go stale."""

from __future__ import annotations

from bench.calls import SLOW_BRAIN_DELAY_S
from bench.report import busiest_call_load

SLOW_BRAIN_MAX_S = SLOW_BRAIN_DELAY_S[1]


def reading(results: dict) -> list[str]:
    lines: list[str] = []
    for part in (_ack, _route_profile, _turn_profile, _turns, _capacity, _slow, _memory):
        try:
            line = part(results)
        except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
            line = None
        if line:
            lines.append(line)
    return lines


def _ack(results: dict) -> str | None:
    ack = results["ack"]
    ok = [_rate(r) for r in ack["ratio"] if r["p99"] is not None and r["p99"] <= 2]
    over = [f"{_rate(r)} ({r['p99']}x)" for r in ack["ratio"] if r["p99"] is None or r["p99"] > 2]
    service, floor = ack["service"][-1], ack["floor"][-1]
    text = f"Acknowledgements: the service's p99 is within 2x the floor at {', '.join(ok) or 'no'} req/s"
    if over:
        text += f" and above it at {', '.join(over)} req/s"
    text += (
        f". Per request the worker spends {service['worker_cpu_us_per_request']} µs of CPU against the floor's "
        f"{floor['worker_cpu_us_per_request']} µs at {_rate(service)} req/s: the difference is the signature check, "
        "parsing and queueing, and above all the Call Control commands each call's events trigger, which run in "
        "the same process and compete for the same GIL as the request threads.")
    if over:
        first = next(r for r in ack["service"] if r["rate"] == ack["ratio"][len(ok)]["rate"])
        busy = first["worker_cpu_us_per_request"] * first["achieved_rate"] / 1e6
        text += (f" At {_rate(first)} req/s that is {busy:.2f} s of CPU per second in one process whose Python runs "
                 "on one core at a time, so acknowledgements queue behind the commands.")
    busiest = busiest_call_load(results)
    if busiest:
        text += (f" For scale, the busiest call run ({busiest[0]} calls) sent {busiest[1]:g} webhooks/s; going beyond "
                 "one worker's core needs more processes, which needs call state outside the process "
                 "(RELIABILITY.md).")
    return text


def _rate(row: dict) -> str:
    return f"{row['rate']:g}"


def _dominant(prof: dict) -> tuple[str, float, str, float]:
    area, share = next(iter(prof["areas"].items()))
    part, part_share = next(((k, v) for k, v in prof["parts"][area].items() if k != "rest"), ("-", 0.0))
    return area, share, part, part_share


def _route_profile(results: dict) -> str | None:
    prof = results["profiles"]["route"]
    area, share, part, part_share = _dominant(prof)
    route = prof["areas"].get("webhook route: telnyx_webhook", 0)
    around = prof["areas"].get("webhook request: gunicorn + Flask around the route", 0)
    http_top = next(iter(prof.get("call_control_http", {}).items()), ("-", 0))
    signature = prof["parts"].get("webhook route: telnyx_webhook", {}).get("Ed25519 signature check", 0)
    return (f"Profile of the webhook path ({prof['load']}): {area} dominates with {share}% of GIL samples "
            f"(largest named part: {part}, {part_share}%). The request itself is {around + route:.1f}%: "
            f"{around}% is gunicorn's HTTP parsing and Flask/werkzeug around the route, {route}% the route "
            f"(signature check {signature}%). "
            f"Inside the outgoing commands the biggest piece is {http_top[0]} ({http_top[1]}%).")


def _turn_profile(results: dict) -> str | None:
    prof = results["profiles"]["turns"]
    area, share, part, part_share = _dominant(prof)
    http = sum(prof.get("call_control_http", {}).values())
    workers = prof["parts"].get("call workers: turns (dialog, brain, Call Control)", {})
    thinking = workers.get("dialog.decide", 0) + workers.get("brain (intent matcher)", 0)
    return (f"Profile of whole calls ({prof['load']}): {area} leads with {share}% (largest part: {part}, "
            f"{part_share}%); all outgoing Call Control HTTP together is {http:.1f}% of GIL samples, against "
            f"{thinking:.1f}% for the dialog and the intent brain together.")


def _turns(results: dict) -> str | None:
    rows = {r["load"]["concurrency"]: r for r in results["turns"]}
    at50 = rows.get(50)
    if not at50:
        return None
    sim, post = at50["report"]["turn_latency_ms"]["p99"], at50["turn_from_post_ms"]["p99"]
    return (f"Turns: at 50 concurrent calls the per-turn overhead p99 is {sim:.1f} ms by the simulator's measure and "
            f"{post:.1f} ms from the webhook POST; at 200 calls {rows[200]['report']['turn_latency_ms']['p99']:.1f} ms "
            f"(simulator using {rows[200]['simulator_cores']} cores)." if 200 in rows else
            f"Turns: at 50 concurrent calls the per-turn overhead p99 is {sim:.1f} ms ({post:.1f} ms from the POST).")


def _capacity(results: dict) -> str | None:
    cap = results["capacity"]
    last = cap["steps"][-1]
    if last["passed"]:
        return (f"Capacity: every step up to the cap of {cap['cap']} concurrent calls passed; the service was not "
                "pushed to failure, so 'held' is a lower bound.")
    blame = (" The simulator itself was using a whole core at that step, so the load generator shares the blame."
             if last["simulator_saturated"] else "")
    return (f"Capacity: {cap['held']} concurrent calls held; {last['concurrency']} failed on "
            f"{', '.join(last['reasons'])}.{blame}")


def _slow(results: dict) -> str | None:
    parts = []
    for row in results["slow_brain"]:
        fast, slow = row["instant"]["report"], row["slow"]["report"]
        parts.append(f"{row['concurrency']} calls: ack p99 {slow['webhook_ack_ms']['p99']:.1f} ms with the slow "
                     f"brain vs {fast['webhook_ack_ms']['p99']:.1f} ms instant, turn p50 "
                     f"{slow['turn_latency_ms']['p50']:.0f} ms, lost {row['slow']['lost']}")
    text = "Slow brain: " + "; ".join(parts) + "."
    slowest = results["slow_brain"][-1]["slow"]
    if slowest["report"]["turn_latency_ms"]["p99"] > 1000 * SLOW_BRAIN_MAX_S + 500:
        text += (f" At {slowest['load']['concurrency']} calls the turn p99 exceeds the brain's own "
                 f"{SLOW_BRAIN_MAX_S:g} s "
                 f"(up to {slowest['rss_peak_live'].get('queued')} events queued in the service): a reply in flight "
                 "holds one of the `calls.workers` threads for its whole wait, so turns queue once more replies are in "
                 "flight than there are workers. Acknowledgements are unaffected.")
    return text


def _memory(results: dict) -> str | None:
    mem = results["memory"]
    return (f"Memory: {mem['rss_0_calls_mib']} MiB with no calls, {mem['rss_live_mib']} MiB with {mem['live_calls']} "
            f"live calls: {mem['kib_per_call']} KiB per call, so memory is not what limits capacity.")
