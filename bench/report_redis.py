"""The parts of BENCHMARKS.md only Redis mode has: the mode comparison, memory in Redis, commands in Redis."""

from __future__ import annotations

from bench.tables import by_mode, ms, recorded, table

GOAL_TURN_AT = 50
BUSY_AT = 200  # the busier per-turn row, for CPU per turn


def _ack_limit_rate(ack: dict | None, limit_ms: float = 200.0) -> str:
    """The highest rate at which the service passed its checks with ack p99 under `limit_ms`."""
    if not ack:
        return "-"
    good = [row["rate"] for row in ack["service"]
            if row.get("passed", True) and row["ack_ms"]["p99"] is not None and row["ack_ms"]["p99"] < limit_ms]
    return f"{max(good):g} req/s" if good else "none"


def _run(results: dict, mode: str, concurrency: int) -> dict | None:
    return (results.get("runs") or {}).get(f"{mode}-{concurrency}")


def _turn_p99(run: dict | None) -> str:
    if not run:
        return "-"
    return f"{ms(run['report']['turn_latency_ms']['p99'])} ms" if recorded(run) else "not recorded"


def _cpu_per_turn(run: dict | None) -> str:
    if not run:
        return "-"
    redis = (run.get("redis") or {}).get("redis_cpu_ms_per_turn")
    return f"{run['cpu_ms_per_turn']} ms" + (f" + {redis} ms redis-server" if redis is not None else "")


def choosing(results: dict) -> str:
    """A side-by-side of the figures a user choosing a mode needs, and what they mean."""
    acks, caps, mems = (by_mode(results, step) for step in ("ack", "capacity", "memory"))
    if not (acks.get("redis") or caps.get("redis") or by_mode(results, "turns").get("redis")):
        return ""
    commands = by_mode(results, "commands").get("redis") or {}
    rows = [["highest webhook rate acknowledged with p99 < 200 ms, checks passed",
             _ack_limit_rate(acks.get("memory")), _ack_limit_rate(acks.get("redis"))]]
    for concurrency in (GOAL_TURN_AT, BUSY_AT):
        rows.append([f"per-turn overhead p99 at {concurrency} calls",
                     _turn_p99(_run(results, "memory", concurrency)), _turn_p99(_run(results, "redis", concurrency))])
    rows.append(["CPU per turn at 200 calls (workers + redis-server)",
                 _cpu_per_turn(_run(results, "memory", BUSY_AT)), _cpu_per_turn(_run(results, "redis", BUSY_AT))])
    rows.append(["concurrent calls held (capacity)", *(str(caps[m]["held"]) if caps.get(m) else "-"
                                                        for m in ("memory", "redis"))])
    redis_mem = (mems.get("redis") or {}).get("redis") or {}
    rows.append(["memory per live call", f"{(mems.get('memory') or {}).get('kib_per_call', '-')} KiB in the worker",
                 f"{_kib(redis_mem.get('bytes_per_live_call'))} KiB in Redis"])
    if commands:
        rows.append(["Redis round trips / commands per turn", "none",
                     f"{commands['round_trips_per_turn']} / {commands['commands_per_turn']}"])
        idle = commands["idle"]
        rows.append(["with no calls at all", "nothing", f"{idle['commands_per_s']} commands/s "
                     f"({idle['round_trips_per_s']} EVALSHA/s), {idle['worker_cores']} worker cores"])
    workers = (acks.get("redis") or {}).get("workers", 2)
    return "\n\n".join([
        "## Memory mode or Redis mode?",
        "Every step below ran in both modes in the same `make bench`, on this machine: memory mode is one gunicorn "
        f"worker holding the calls in its own memory; Redis mode is {workers} workers sharing the calls through a "
        "redis-server on loopback (its ordering protocol is in `stores/leases.py`). The machine has "
        f"{results['machine']['cores']} cores, and "
        "in Redis mode the two workers, redis-server, the simulator and the load generator all compete for them, so "
        "the second worker does not get a core of its own: these figures show what Redis mode costs on one small "
        "machine, not what spreading workers over more machines would add.",
        table(["figure", "memory mode", "redis mode"], rows),
        _meaning(results),
    ])


def _meaning(results: dict) -> str:
    """What the rows mean for someone choosing, with the figures that say so."""
    caps = by_mode(results, "capacity")
    text = ("What this means when choosing: memory mode is the cheaper one per call and per webhook (no Redis round "
            "trips, no serialising of the call's state), but everything lives in one Python process: the calls end "
            "with it, and one process's GIL bounds its throughput. Redis mode pays for every event with round trips "
            "and CPU and keeps Redis busy even when idle; in exchange any worker or instance can take any webhook, "
            "and a call survives the process that was serving it (RELIABILITY.md).")
    memory, redis = _run(results, "memory", BUSY_AT), _run(results, "redis", BUSY_AT)
    if memory and redis and redis.get("redis"):
        cost = (redis["cpu_ms_per_turn"] + redis["redis"]["redis_cpu_ms_per_turn"]) / memory["cpu_ms_per_turn"]
        text += (f" Here a turn at {BUSY_AT} calls cost {cost:.1f}x the CPU of memory mode's (workers and "
                 "redis-server together).")
    if caps.get("memory") and caps.get("redis"):
        m, r = caps["memory"]["held"], caps["redis"]["held"]
        text += (f" On this {results['machine']['cores']}-core machine Redis mode held {r} concurrent calls against "
                 f"memory mode's {m}; its second worker has no core of its own here (the simulator and the load "
                 "generator take their share), so this does not show how Redis mode scales with more cores or "
                 "machines.")
    return text


def _kib(value: float | None) -> str:
    return "-" if value is None else f"{value / 1024:.1f}"


def memory(results: dict) -> str:
    mem = by_mode(results, "memory").get("redis") or {}
    redis = mem.get("redis")
    if not redis:
        return ""
    live = redis["live_calls"] or 0
    rows = [["after the warm-up calls (0 live)", redis["used_memory_0_calls"]],
            [f"{live} calls answered and on hold", redis["used_memory_live"]],
            ["after they all hung up", redis["used_memory_after_hangup"]]]
    during, after = redis["keys"], redis.get("keys_after_hangup") or {}
    empty = {"keys": 0, "bytes": 0}
    keys = [[f"`{kind}`", during.get(kind, empty)["keys"], during.get(kind, empty)["bytes"],
             round(during.get(kind, empty)["bytes"] / live) if live else "-", after.get(kind, empty)["keys"],
             after.get(kind, empty)["bytes"]] for kind in [*during, *(k for k in after if k not in during)]]
    one = {k: v for k, v in redis.get("one_call", {}).items() if k != "call_control_id"}
    recorded_ = mem.get("passed", True)
    return "\n\n".join([
        "### Memory in Redis (Redis mode)",
        "INFO memory `used_memory` of the redis-server, read once all the calls are live and nothing is queued "
        "(every caller on hold), against its value after the warm-up calls. The key listing is every key under "
        "the service's prefix at that moment, with `MEMORY USAGE` (exact for sorted sets: `SAMPLES 0`). "
        "`seen` keys are the webhook ids kept for deduplication (15 minutes), `ended` the tombstones of ended "
        "calls (`calls.max_call_age_s`), `timers` and `live` sorted sets hold one member per call.",
        table(["state", "used_memory bytes"], rows),
        (f"**Per live call: {redis['bytes_per_live_call']} bytes** ({_kib(redis['bytes_per_live_call'])} KiB) of "
         f"Redis memory, over {live} calls. After they hung up, "
         f"{redis['bytes_left_per_ended_call']} bytes per call stay behind until the `seen` ids and tombstones "
         "expire." if recorded_ else "Not recorded: not every call was live at once or completed."),
        table(["key kind", "keys", "MEMORY USAGE bytes", f"bytes per live call ({live})", "keys after hangup",
               "bytes after hangup"], keys),
        "One call's own keys (`MEMORY USAGE` bytes): " + (", ".join(f"`{k}` {v}" for k, v in one.items()) or "-")
        + ". Its share of the sorted sets and its `seen` ids come on top (table above).",
    ])


def commands(results: dict) -> str:
    found = by_mode(results, "commands").get("redis")
    runs = [run for run in (results.get("runs") or {}).values() if run.get("redis")]
    if not (found or runs):
        return ""
    parts = ["## 7. Redis commands (Redis mode)",
             "INFO commandstats counts every command Redis runs, those a Lua script runs with `redis.call` included; "
             "only EVALSHA and the plain commands the service sends are round trips. `ping` and `zcard` answer the "
             "bench's own `GET /healthz` polling and are left out of every total; so are the bench's INFO, SCAN "
             "and MEMORY USAGE."]
    if found:
        parts += _idle(found["idle"]) + _by_origin(found)
    if runs:
        parts += _per_run(runs, found)
    return "\n\n".join(parts)


def _idle(idle: dict) -> list[str]:
    rows = [[f"`{name}`", per_s] for name, per_s in idle["per_s"].items()]
    return ["### With no traffic: the dispatchers' polling",
            f"A Redis-mode service ({idle['workers']} workers) with no calls, for {idle['seconds']:g} s: each worker's "
            "dispatcher runs the CLAIM script every 50 ms to find work it was not told about (another process's "
            f"call, a lapsed lease, a due timer). **{idle['commands_per_s']} commands/s, of which "
            f"{idle['round_trips_per_s']} EVALSHA round trips/s**; the workers used {idle['worker_cores']} cores and "
            f"redis-server {idle['redis_cores']} cores doing it.",
            table(["command", "per second"], rows)]


def _by_origin(found: dict) -> list[str]:
    turns = max(1, found["caller_turns"])
    names = sorted(set(found["by_origin"]["client"]) | set(found["by_origin"]["lua"]),
                   key=lambda n: -(found["by_origin"]["client"].get(n, 0) + found["by_origin"]["lua"].get(n, 0)))
    rows = [[f"`{name}`", round(found["by_origin"]["client"].get(name, 0) / turns, 2),
             round(found["by_origin"]["lua"].get(name, 0) / turns, 2)] for name in names]
    return ["### Per turn, by origin",
            f"{found['load']} ({found['caller_turns']} caller turns over {found['duration_s']} s), watched with "
            "MONITOR, which says whether a command came from a client (a round trip) or from inside a script. Per "
            "caller turn, a call's answer, greeting and hangup included: "
            f"**{found['round_trips_per_turn']} round trips** ({found['round_trips_per_turn_without_polling']} "
            f"without the idle polling over the run's length) **and {found['commands_per_turn']} commands**. "
            "MONITOR slows Redis down, so no latency is taken from this run.",
            table(["command", "round trips per turn", "inside scripts per turn"], rows)]


def _per_run(runs: list[dict], found: dict | None) -> list[str]:
    idle_per_s = sum(found["idle"]["per_s"].values()) if found else 0.0
    rows = []
    for run in sorted(runs, key=lambda r: r["load"]["concurrency"]):
        redis, turns = run["redis"], max(1, run["caller_turns"])
        top = ", ".join(f"`{name}` {n / turns:.1f}" for name, n in list(redis["commands"].items())[:6])
        net = (redis["commands_total"] - idle_per_s * redis["window_s"]) / turns
        rows.append([run["load"]["concurrency"], run["load"]["brain"], run["caller_turns"], redis["commands_per_turn"],
                     round(net, 1), redis["evalsha_per_turn"], redis["redis_cores"], top])
    return ["### Per turn in the measured runs",
            "INFO commandstats before and after each Redis-mode call run (sections 2 and 3), divided by caller turns. "
            "*Net of polling* takes away the idle rate above times the run's length.",
            table(["calls", "brain", "caller turns", "commands/turn", "net of polling", "EVALSHA/turn",
                   "redis-server cores", "top commands per turn"], rows)]
