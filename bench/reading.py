"""The short reading at the end of BENCHMARKS.md, derived from the figures so that it cannot go stale."""

from __future__ import annotations

from bench.calls import SLOW_BRAIN_DELAY_S
from bench.report import GOAL_ACK_RATIO, ack_verdict, by_mode, least_misses
from bench.tables import mode_label, recorded

SLOW_BRAIN_MAX_S = SLOW_BRAIN_DELAY_S[1]
FULL_SHARE = 0.8  # of a core per worker: busy enough that requests queue for CPU


def reading(results: dict) -> list[str]:
    lines: list[str] = []
    parts = [_ack, _route_profile, _turn_profile, _turns, _capacity, _slow, _memory, _redis_memory, _commands]
    for part in parts:
        for mode in ("memory", "redis"):
            try:
                line = part(results, mode)
            except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError, StopIteration):
                line = None
            if line:
                lines.append(line)
    return lines


def _ack(results: dict, mode: str) -> str | None:
    ack = by_mode(results, "ack")[mode]
    sustained, failures, met = ack_verdict(ack)
    text = (f"Acknowledgements, {mode_label(mode, ack)} (against a floor with as many workers): the floor "
            f"sustains {', '.join(f'{r:g}' for r in sustained) or 'no'} req/s; the service's p99 is "
            + (f"within {GOAL_ACK_RATIO:g}x of it at every one of them" if met
               else f"not within {GOAL_ACK_RATIO:g}x of it at {', '.join(failures)} req/s"))
    bad = _first_failing(ack)
    row = bad or ack["service"][-1]
    floor = next(f for f in ack["floor"] if f["rate"] == row["rate"])
    redis = (f" plus {row['redis_cpu_us_per_request']} µs in redis-server" if row.get("redis_cpu_us_per_request")
             is not None else "")
    text += (f". At {row['rate']:g} req/s the workers spend {row['worker_cpu_us_per_request']} µs of CPU per request"
             f"{redis}, against the floor's {floor['worker_cpu_us_per_request']} µs: the signature check, parsing, "
             "queueing and above all the Call Control commands each call's events trigger, which run in the same "
             "processes and compete for the same GILs and cores as the request threads")
    if bad:
        busy = (row["worker_cpu_us_per_request"] + (row.get("redis_cpu_us_per_request") or 0)) * row["rate"] / 1e6
        text += f"; that is {busy:.2f} s of CPU per second on a machine with {results['machine']['cores']} cores"
        text += (" shared with the load generator, so acknowledgements queue" if busy >= FULL_SHARE * ack["workers"]
                 else ": the workers are not full, and the excess is the tail of acknowledgements waiting behind "
                      "that work in the same process")
    return text + "." + _least(ack)


def _least(ack: dict) -> str:
    """What the least-work app says about the rates the service misses (old results have no least-work sweep)."""
    if "least" not in ack:
        return ""
    out_of_reach = least_misses(ack)
    least = next((r for r in ack["least"] if f"{r['rate']:g}" in out_of_reach), ack["least"][-1])
    return (f" The least-work app (the signature check and the call's commands, nothing else) costs "
            f"{least['worker_cpu_us_per_request']} µs per request at {least['rate']:g} req/s and "
            + (f"itself misses {GOAL_ACK_RATIO:g}x at {', '.join(out_of_reach)} req/s: no implementation could meet "
               "the goal at those rates on this machine." if out_of_reach
               else f"is within {GOAL_ACK_RATIO:g}x wherever the floor keeps up."))


def _first_failing(ack: dict) -> dict | None:
    """The service's row at the lowest rate the floor sustains where the goal is missed."""
    for floor, mine, ratio in zip(ack["floor"], ack["service"], ack["ratio"], strict=True):
        if floor.get("sustained") and (not mine.get("passed", True) or ratio["p99"] is None
                                       or ratio["p99"] > GOAL_ACK_RATIO):
            return mine
    return None


def _dominant(prof: dict) -> tuple[str, float, str, float]:
    area, share = next(iter(prof["areas"].items()))
    part, part_share = next(((k, v) for k, v in prof["parts"][area].items() if k != "rest"), ("-", 0.0))
    return area, share, part, part_share


def _redis_share(prof: dict) -> float:
    return round(sum(parts.get("Redis client (redis-py: commands, scripts, connections)", 0)
                     for parts in prof["parts"].values()), 1)


def _route_profile(results: dict, mode: str) -> str | None:
    prof = results["profiles"][mode]["route"]
    area, share, part, part_share = _dominant(prof)
    route = prof["areas"].get("webhook route: telnyx_webhook", 0)
    around = prof["areas"].get("webhook request: gunicorn + Flask around the route", 0)
    http_top = next(iter(prof.get("call_control_http", {}).items()), ("-", 0))
    signature = prof["parts"].get("webhook route: telnyx_webhook", {}).get("Ed25519 signature check", 0)
    redis = f" The Redis client accounts for {_redis_share(prof)}% in all." if mode == "redis" else ""
    return (f"Profile of the webhook path, {mode} mode ({prof['load']}): {area} dominates with {share}% of GIL "
            f"samples (largest named part: {part}, {part_share}%). The request itself is {around + route:.1f}%: "
            f"{around}% is gunicorn's HTTP parsing and Flask/werkzeug around the route, {route}% the route "
            f"(signature check {signature}%). "
            f"Inside the outgoing commands the biggest piece is {http_top[0]} ({http_top[1]}%).{redis}")


def _turn_profile(results: dict, mode: str) -> str | None:
    prof = results["profiles"][mode]["turns"]
    area, share, part, part_share = _dominant(prof)
    http = sum(prof.get("call_control_http", {}).values())
    workers = prof["parts"].get("call workers: turns (dialog, brain, Call Control)", {})
    thinking = workers.get("dialog.decide", 0) + workers.get("brain (intent matcher)", 0)
    redis = (f"; the Redis client is {_redis_share(prof)}% and the lease dispatcher "
             f"{prof['areas'].get('lease dispatcher: claims, renewals, timers (Redis mode)', 0)}%"
             if mode == "redis" else "")
    return (f"Profile of whole calls, {mode} mode ({prof['load']}): {area} leads with {share}% (largest part: "
            f"{part}, {part_share}%); all outgoing Call Control HTTP together is {http:.1f}% of GIL samples, against "
            f"{thinking:.1f}% for the dialog and the intent brain together{redis}.")


def _turns(results: dict, mode: str) -> str | None:
    rows = {r["load"]["concurrency"]: r for r in by_mode(results, "turns")[mode]}
    parts = []
    for level in (50, 200):
        run = rows.get(level)
        if run is None:
            continue
        if not recorded(run):
            parts.append(f"at {level} calls not recorded ({run['lost']} lost, {run['duplicated']} duplicated)")
            continue
        parts.append(f"at {level} concurrent calls the per-turn overhead p99 is "
                     f"{run['report']['turn_latency_ms']['p99']:.1f} ms by the simulator's measure and "
                     f"{run['turn_from_post_ms']['p99']:.1f} ms from the webhook POST (simulator using "
                     f"{run['simulator_cores']} cores)")
    return f"Turns, {mode} mode: " + "; ".join(parts) + "." if parts else None


def _capacity(results: dict, mode: str) -> str | None:
    cap = by_mode(results, "capacity")[mode]
    last = cap["steps"][-1]
    if last["passed"]:
        return (f"Capacity, {mode} mode: every step up to the cap of {cap['cap']} concurrent calls passed; the service "
                "was not pushed to failure, so 'held' is a lower bound.")
    blame = (" The simulator itself was using most of a core at that step, so the load generator shares the blame."
             if last["simulator_saturated"] else "")
    return (f"Capacity, {mode} mode: {cap['held']} concurrent calls held; {last['concurrency']} failed on "
            f"{', '.join(last['reasons'])}.{blame}")


def _slow(results: dict, mode: str) -> str | None:
    parts = []
    rows = by_mode(results, "slow_brain")[mode]
    for row in rows:
        fast, slow = row["instant"]["report"], row["slow"]["report"]
        parts.append(f"{row['concurrency']} calls: ack p99 {slow['webhook_ack_ms']['p99']:.1f} ms with the slow "
                     f"brain vs {fast['webhook_ack_ms']['p99']:.1f} ms instant, turn p50 "
                     f"{slow['turn_latency_ms']['p50']:.0f} ms, lost {row['slow']['lost']}")
    text = f"Slow brain, {mode} mode: " + "; ".join(parts) + "."
    slowest = rows[-1]["slow"]
    if slowest["report"]["turn_latency_ms"]["p99"] > 1000 * SLOW_BRAIN_MAX_S + 500:
        text += (f" At {slowest['load']['concurrency']} calls the turn p99 exceeds the brain's own "
                 f"{SLOW_BRAIN_MAX_S:g} s "
                 f"(up to {slowest['rss_peak_live'].get('queued')} events queued in the service): a reply in flight "
                 "holds one of the `calls.workers` threads for its whole wait, so turns queue once more replies are in "
                 "flight than there are workers. Acknowledgements are unaffected.")
    return text


def _memory(results: dict, mode: str) -> str | None:
    mem = by_mode(results, "memory")[mode]
    where = "" if mode == "memory" else " (the workers' RSS; the calls themselves are in Redis)"
    return (f"Memory, {mode} mode: {mem['rss_0_calls_mib']} MiB with no calls, {mem['rss_live_mib']} MiB with "
            f"{mem['live_calls']} live calls{where}: {mem['kib_per_call']} KiB per call, so memory is not what limits "
            "capacity.")


def _redis_memory(results: dict, mode: str) -> str | None:
    if mode != "redis":
        return None
    redis = by_mode(results, "memory")[mode]["redis"]
    per_call = redis["bytes_per_live_call"]
    left = redis["bytes_left_per_ended_call"]
    return (f"Redis memory: {per_call} bytes per live call ({per_call / 1024:.1f} KiB), so 1 GiB of Redis holds "
            f"about {2**30 // per_call:,} live calls; an ended call leaves {left} bytes for up to 15 minutes "
            "(the webhook ids kept for deduplication) and a small tombstone for `calls.max_call_age_s`.")


def _commands(results: dict, mode: str) -> str | None:
    if mode != "redis":
        return None
    found = results["commands"]["redis"]
    idle = found["idle"]
    return (f"Redis commands: a turn costs {found['round_trips_per_turn']} round trips and "
            f"{found['commands_per_turn']} commands in all (scripts included). With nothing to do, the "
            f"{idle['workers']} dispatchers still run {idle['round_trips_per_s']} EVALSHA/s "
            f"({idle['commands_per_s']} commands/s), {idle['worker_cores']} worker cores and "
            f"{idle['redis_cores']} redis-server cores: small, but per worker and around the clock.")
