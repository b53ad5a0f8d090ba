"""BENCHMARKS.md from the raw figures in bench/results.json; nothing here measures anything.

Every step's figures sit under its mode (`results["ack"]["memory"]`, `results["ack"]["redis"]`); the Redis
mode's own figures (memory in Redis, commands) are drawn by bench/report_redis.py.
"""

from __future__ import annotations

from typing import Any

from bench import report_profiles, report_redis, report_run, report_slow
from bench.report_run import BUSY_MACHINE_CORES, busy_steps
from bench.tables import MODES, TURNS_RECORDED, by_mode, mode_label, ms, p, pace, recorded, table

GOAL_ACK_RATIO = 2.0
GOAL_TURN_P99_MS = 20.0
GOAL_TURN_AT = 50
GOAL_CALLS = 200


def render(results: dict[str, Any]) -> str:
    sections = [_header(results), _goals(results), report_redis.choosing(results), _ack(results),
                _turns(results), _capacity(results), _slow(results), report_slow.render(results), _memory(results),
                report_redis.memory(results), _cpu(results.get("runs", {})), report_redis.commands(results),
                report_profiles.render(results.get("profiles"), MODES), _reading(results),
                report_run.service_log(results), report_run.machine_load(results), report_run.errors(results)]
    return "\n\n".join(s for s in sections if s) + "\n"


def _header(results: dict) -> str:
    m, s = results.get("machine", {}), results.get("settings", {})
    redis = s.get("redis") or {}
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python -m bench`) on {results.get('date', '?')}; do not edit by hand. "
        "The raw figures are in `bench/results.json`; `python -m bench --report-only` rewrites this file from them. "
        "The benchmark never fails on a number."
        + (" **This is a `--quick` smoke run: small steps, not figures to quote.**" if results.get("quick") else ""),
        "",
        f"**Machine:** {m.get('cores')} cores, {m.get('cpu_model')}, {m.get('memory_gib')} GiB, "
        f"Python {m.get('python')}, Linux {m.get('kernel')}. Everything runs on this machine over 127.0.0.1: "
        "the service, the simulator (fake Telnyx API, carrier, signed webhook delivery, scripted callers), the "
        f"load generators and, in Redis mode, redis-server share the {m.get('cores')} cores. While calls run, the "
        "bench's own process (the simulator) does no garbage collection (`bench/calls.collector_held`): a full "
        "collection there paused webhooks and speak timestamps for up to 52 ms, counted as the service's.",
        "",
        f"**Memory mode (as deployed by default):** `gunicorn 'app:create_app()' --config gunicorn.conf.py`: "
        f"{s.get('gunicorn')}; `calls.workers` {s.get('call_workers')}; logging at INFO to a file; signatures "
        f"verified; `dialog.silence_timeout_s` {s.get('silence_timeout_s')} (the shipped default). "
        "The floor is `bench/floor_app.py` (a Flask route that returns 200 at once) under the same gunicorn command.",
    ]
    if redis:
        lines += ["", f"**Redis mode:** the same command with `REDIS_URL` set and `WEB_CONCURRENCY={redis['workers']}` "
                  f"(one worker per core), against {redis['server']}; `redis.lease_s` {redis['lease_s']}, "
                  f"`redis.timeout_s` {redis['timeout_s']}, dispatcher poll every {1000 * redis['poll_s']:g} ms "
                  "(stores/leases.py); every service gets a fresh `redis.key_prefix`. Its floor runs with the same "
                  f"{redis['workers']} workers. Worker figures (CPU, RSS) are the sum over the workers."]
    for rerun in results.get("reruns", []):
        lines += ["", f"**Measured again on {rerun['date']}** (`python -m bench --only {' '.join(rerun['steps'])}`): "
                  f"{', '.join(rerun['steps'])}, with gunicorn settings {rerun['settings'].get('gunicorn')}."]
    if s.get("nice"):
        lines += ["", f"**Priority:** the bench ran at nice {s['nice']} (`nice -n {s['nice']} python -m bench`): its "
                  "processes, the service's included, were favoured by the scheduler over other jobs on the machine."]
    busy = busy_steps(results)
    if busy:
        worst = max(busy, key=busy.get)
        lines += ["", "**The machine was not always quiet:** other processes (other jobs on this machine) and the "
                  f"hypervisor (steal time) together took {BUSY_MACHINE_CORES:g} cores or more during "
                  f"{', '.join(busy)}; at worst {busy[worst]:g} of the {m.get('cores')} cores, during {worst} (last "
                  "section). Those steps' figures are pessimistic, and two steps are only as comparable as their "
                  "machine load."]
    lines += ["", f"**Brains:** instant = the offline intent matcher; slow = the LLM brain through the real `openai` "
              f"client against `tests/fake_openai.py` answering in {s.get('slow_brain_delay_s')} s (uniform).",
              "", "Latencies in milliseconds as p50 / p95 / p99 (nearest rank). A figure counts only when its step's "
              "own checks passed (nothing lost, nothing duplicated); otherwise the table says what failed. "
              "*Taken by other jobs* is how many cores other processes on the machine and the hypervisor (steal "
              "time) took while that row was measured: the bench's figures assume a quiet machine, so a row with "
              "more than a few tenths of a core taken is pessimistic."]
    return "\n".join(lines)


# ------------------------------------------------------------------ goals


def _goals(results: dict) -> str:
    rows = []
    for mode, ack in by_mode(results, "ack").items():
        rows.append(_ack_goal(mode, ack))
    for mode, runs in by_mode(results, "turns").items():
        run = next((r for r in runs if r["load"]["concurrency"] == GOAL_TURN_AT), None)
        if run:
            rows.append(_turn_goal(mode, run))
    rows += _capacity_goals(by_mode(results, "capacity"))
    return "## Goals\n\n" + table(["goal", "mode", "measured", "met"], rows) if rows else ""


def ack_verdict(ack: dict) -> tuple[list, list[str], bool]:
    """(rates the floor sustains, what failed at those rates, met) for one mode's ack sweep."""
    sustained = [f["rate"] for f in ack["floor"] if f.get("sustained")]
    failures = []
    for floor, mine, ratio in zip(ack["floor"], ack["service"], ack["ratio"], strict=True):
        if not floor.get("sustained"):
            continue
        if not mine.get("passed", True):
            failures.append(f"{floor['rate']:g} (checks failed: {', '.join(mine['problems'])})")
        elif ratio["p99"] is None or ratio["p99"] > GOAL_ACK_RATIO:
            failures.append(f"{floor['rate']:g} ({_x(ratio['p99'])})")
    return sustained, failures, bool(sustained) and not failures


def _ack_goal(mode: str, ack: dict) -> list:
    sustained, failures, met = ack_verdict(ack)
    within = [f"{r['rate']:g}" for r, f in zip(ack["ratio"], ack["floor"], strict=True)
              if f.get("sustained") and r["p99"] is not None and r["p99"] <= GOAL_ACK_RATIO]
    text = (f"floor ({ack['workers']} worker{'s' if ack['workers'] > 1 else ''}) sustains "
            f"{_rates(sustained)} req/s; within 2x at {', '.join(within) or 'none'}")
    if failures:
        text += f"; not at {', '.join(failures)}"
    out_of_reach = least_misses(ack)
    if out_of_reach:
        text += (f"; even the least-work app misses 2x at {', '.join(out_of_reach)} req/s, out of reach for any "
                 "service on this machine")
    return [f"ack p99 within {GOAL_ACK_RATIO:.0f}x the floor at every rate the floor sustains", mode_label(mode, ack),
            text, _yes(met)]


def least_misses(ack: dict) -> list[str]:
    """The rates the floor sustains at which even the least-work app is not within 2x of it (old runs: none)."""
    if "least" not in ack:
        return []
    return [f"{floor['rate']:g}" for floor, least, ratio in zip(ack["floor"], ack["least"], ack["least_ratio"],
                                                                   strict=True)
            if floor.get("sustained") and (least["errors"] or ratio["p99"] is None or ratio["p99"] > GOAL_ACK_RATIO)]


def _turn_goal(mode: str, run: dict) -> list:
    goal = f"per-turn overhead p99 < {GOAL_TURN_P99_MS:.0f} ms at {GOAL_TURN_AT} calls"
    if not recorded(run):
        return [goal, mode_label(mode, run), f"not recorded: {run['lost']} lost, {run['duplicated']} duplicated",
                _yes(False)]
    p99 = run["report"]["turn_latency_ms"]["p99"]
    return [goal, mode_label(mode, run), f"{ms(p99)} ms (from the webhook POST: "
            f"{ms(run['turn_from_post_ms']['p99'])} ms)", _yes(p99 is not None and p99 < GOAL_TURN_P99_MS)]


def _capacity_goals(caps: dict) -> list[list]:
    rows = []
    memory, redis = caps.get("memory"), caps.get("redis")
    if memory:
        rows.append([f"{GOAL_CALLS}+ concurrent calls held", "memory", _held(memory),
                     _yes(memory["held"] >= GOAL_CALLS)])
    if redis:
        versus = f" against memory mode's {memory['held']}" if memory else ""
        rows.append(["capacity at least memory mode's", "redis", _held(redis) + versus,
                     _yes(memory is not None and redis["held"] >= memory["held"])])
    return rows


def _held(cap: dict) -> str:
    last = cap["steps"][-1]
    tail = (f"{last['concurrency']} failed: {', '.join(last['reasons'])}" if not last["passed"]
            else f"every step up to the cap of {cap['cap']} passed: a lower bound")
    return f"{cap['held']} held ({tail})"


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:g}x"


def _rates(rates: list) -> str:
    return ", ".join(f"{r:g}" for r in rates) or "no rate"


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


# ------------------------------------------------------------------ 1. acknowledgements


def _ack(results: dict) -> str:
    acks = by_mode(results, "ack")
    if not acks:
        return ""
    first = next(iter(acks.values()))
    parts = [
        "## 1. Acknowledgement latency of `POST /webhooks/telnyx`, next to the floor",
        f"Open-loop: each rate runs {first['step_s']:g} s from a separate process over {first['connections']} "
        "keep-alive connections; a request is sent when due whatever happened to earlier ones, and its latency counts "
        "from when it was due. Bodies are signed v2 webhooks for fresh calls: `call.initiated`, `call.answered` 0.1 s "
        "later, `call.hangup` 0.6 s later, so the service answers, speaks the greeting, starts transcription and "
        "closes the call (three Call Control commands per call) while it acknowledges. The floor gets the same bodies "
        "with the same number of workers. Worker CPU per request counts everything the workers did in the step, "
        "background commands included. The service's checks: every webhook acknowledged, every call answered, no "
        "command sent twice, the queue drained within 20 s. The floor *sustains* a rate when it got at least 95% of "
        "it on time, answered all of it and kept p99 under 200 ms.",
        "The *least-work app* (`bench/least_app.py`) gets the same bodies with the same workers too. It does only "
        "what any receptionist must for them: it checks the signature, parses the event and sends the call's Call "
        "Control commands at once on a greenlet after acknowledging (`answer`; `speak` and `transcription_start`), "
        "with no duplicate check, call state, ordering, store, retries or log. It is a lower bound, not a service: "
        "where its own acknowledgements miss 2x the floor, no implementation of the service could meet the goal on "
        "this machine.",
    ]
    for mode, ack in acks.items():
        parts += [f"### {mode_label(mode, ack).capitalize()}", _ack_table(ack)]
        if "least" in ack:
            parts += [f"The least-work app, {ack['workers']} worker{'s' if ack['workers'] > 1 else ''}:",
                      _least_table(ack)]
    if len(acks) == 2:
        parts += ["### Side by side (p99)", _ack_side_by_side(acks["memory"], acks["redis"])]
    return "\n\n".join(parts)


def _ack_table(ack: dict) -> str:
    rows = []
    for floor, mine, ratio in zip(ack["floor"], ack["service"], ack["ratio"], strict=True):
        cpu = f"{floor['worker_cpu_us_per_request']} / {mine['worker_cpu_us_per_request']}"
        if mine.get("redis_cpu_us_per_request") is not None:
            cpu += f" + {mine['redis_cpu_us_per_request']} redis"
        rows.append([f"{mine['rate']:g}", f"{ms(floor['achieved_rate'])} / {ms(mine['achieved_rate'])}",
                     p(floor["ack_ms"]) + ("" if floor.get("sustained") else " (not sustained)"),
                     p(mine["ack_ms"]) if mine.get("passed", True) else "not recorded",
                     p(ratio), f"{floor['errors']} / {mine['errors']}", cpu, ms(mine["send_lag_ms"]["p99"]),
                     f"{busy(floor)} / {busy(mine)}",
                     "pass" if mine.get("passed", True) else "**fail**: " + ", ".join(mine["problems"])])
    return table(["req/s", "achieved floor / service", "floor ack", "service ack", "ratio service/floor",
                  "errors floor / service", "worker CPU µs/req floor / service", "generator lag p99",
                  "taken by other jobs floor / service", "checks"], rows)


def _least_table(ack: dict) -> str:
    rows = []
    for floor, least, ratio in zip(ack["floor"], ack["least"], ack["least_ratio"], strict=True):
        within = ratio["p99"] is not None and ratio["p99"] <= GOAL_ACK_RATIO and not least["errors"]
        rows.append([f"{least['rate']:g}", ms(least["achieved_rate"]),
                     p(least["ack_ms"]) + ("" if least.get("sustained") else " (not sustained)"),
                     p(ratio), least["errors"], least.get("unanswered_calls", "-"),
                     least["worker_cpu_us_per_request"], busy(least),
                     "-" if not floor.get("sustained") else "yes" if within else "**no**"])
    return table(["req/s", "achieved", "least-work ack", "ratio least-work/floor", "errors", "calls not answered",
                  "worker CPU µs/req", "taken by other jobs", "within 2x the floor"], rows)


def _ack_side_by_side(memory: dict, redis: dict) -> str:
    rows = []
    for f1, m, f2, r in zip(memory["floor"], memory["service"], redis["floor"], redis["service"], strict=True):
        rows.append([f"{m['rate']:g}", ms(f1["ack_ms"]["p99"]), _p99(m), ms(f2["ack_ms"]["p99"]), _p99(r)])
    return table(["req/s", f"floor, {memory['workers']} worker", "memory mode", f"floor, {redis['workers']} workers",
                  "redis mode"], rows)


def _p99(row: dict) -> str:
    return ms(row["ack_ms"]["p99"]) if row.get("passed", True) else "fail"


# ------------------------------------------------------------------ 2. turns


def _turns(results: dict) -> str:
    rows = [run for runs in by_mode(results, "turns").values() for run in runs]
    if not rows:
        return ""
    table_rows = []
    for run in rows:
        load, report = run["load"], run["report"]
        figures = ([p(report["turn_latency_ms"]), p(run["turn_from_post_ms"]), ms(report["webhook_ack_ms"]["p99"])]
                   if recorded(run) else ["not recorded", "not recorded", "-"])
        table_rows.append([mode_label(run.get("mode", "memory"), run), load["concurrency"], pace(load["speed"]),
                           run["caller_turns"], *figures, run["lost"], run["duplicated"],
                           (run.get("redis") or {}).get("commands_per_turn", "-"), run["simulator_cores"], busy(run)])
    return "\n\n".join([
        "## 2. Per-turn overhead (instant brain)",
        "From the caller's final transcript leaving the simulator (queued for delivery) to the `speak` command "
        "arriving at the fake Telnyx (the simulator's own measure), and the same from the moment the transcript "
        "webhook's POST started (without the simulator's delivery queue). In Redis mode a turn includes its Redis "
        "round trips (section 7). Each call asks "
        f"{rows[-1]['load']['turns']} questions and says goodbye; starts are spread over a short ramp. "
        f"{TURNS_RECORDED}",
        table(["mode", "concurrent calls", "speech pace", "turns", "turn (simulator)", "turn (from POST)", "ack p99",
               "lost", "duplicated", "Redis commands/turn", "simulator cores", "taken by other jobs"], table_rows),
    ])


# ------------------------------------------------------------------ 3. capacity


def _capacity(results: dict) -> str:
    caps = by_mode(results, "capacity")
    if not caps:
        return ""
    runs = results.get("runs", {})
    first = next(iter(caps.values()))
    parts = ["## 3. Capacity",
             "Real-time speech pace, the standard call (questions, goodbye), one wave of N calls. A step passes with "
             f"ack p99 under {first['limit_ms']:.0f} ms, no call lost (every caller turn answered, every expectation "
             "met) and no command duplicated (no command_id sent twice, no effect twice). The sweep stops at the "
             f"first failure or at {first['cap']}. Service cores is the workers' CPU over the run's wall time; in "
             "Redis mode redis-server's is shown next to it."]
    for mode, cap in caps.items():
        parts += [f"### {mode_label(mode, cap).capitalize()}: **held {cap['held']} concurrent calls**",
                  _capacity_table(cap, runs)]
    return "\n\n".join(parts)


def _capacity_table(cap: dict, runs: dict) -> str:
    rows = []
    for step, key in zip(cap["steps"], cap["runs"], strict=True):
        run = runs[key]
        report = run["report"]
        redis_cores = (run.get("redis") or {}).get("redis_cores")
        rows.append([step["concurrency"], run["rss_peak_live"].get("live_calls"), p(report["webhook_ack_ms"]),
                     ms(report["turn_latency_ms"]["p99"]), run["lost"], run["duplicated"], report["errors"],
                     run["webhooks_per_s"], run["service_cores"] if redis_cores is None
                     else f"{run['service_cores']} + {redis_cores}",
                     f"{run['simulator_cores']}{' (saturated)' if step['simulator_saturated'] else ''}",
                     busy(run), _verdict(step)])
    return table(["calls", "peak live", "ack", "turn p99", "lost", "duplicated", "errors", "webhooks/s",
                  "service cores", "simulator cores", "taken by other jobs", "verdict"], rows)


def _verdict(step: dict) -> str:
    text = "pass" if step["passed"] else "**fail**: " + ", ".join(step["reasons"])
    first = step.get("first_attempt")
    if first:
        text += (f" (second attempt: the first failed on {', '.join(first['reasons'])} while other jobs took "
                 f"{first['taken_cores']:g} cores)")
    return text


def busy(figures: dict) -> str:
    """Cores other processes and steal took during a run or a rate step, when recorded."""
    taken = figures.get("machine_taken_cores")
    return "-" if taken is None else f"{taken:g}"


# ------------------------------------------------------------------ 4. slow brain, 5. memory, 6. CPU


def _slow(results: dict) -> str:
    slow = by_mode(results, "slow_brain")
    if not slow:
        return ""
    rows = []
    for mode, levels in slow.items():
        for row in levels:
            for brain in ("instant", "slow"):
                run = row[brain]
                report = run["report"]
                rows.append([mode, row["concurrency"], brain, p(report["webhook_ack_ms"]),
                             p(report["turn_latency_ms"]) if recorded(run) else "not recorded",
                             run["lost"], run["duplicated"], report["errors"], run["service_cores"]])
    return "\n\n".join([
        "## 4. Slow brain: acknowledgements while replies are in flight",
        "Same calls, same concurrency; the slow brain's turn latency includes its 1-3 s answer. Memory mode only.",
        table(["mode", "calls", "brain", "ack", "turn", "lost", "duplicated", "errors", "service cores"], rows),
    ])


def _memory(results: dict) -> str:
    mems = by_mode(results, "memory")
    if not mems:
        return ""
    rows = []
    for key, label in (("rss_fresh_mib", "fresh, no call yet"), ("rss_0_calls_mib", "0 calls (after warm-up calls)"),
                       ("rss_live_mib", "N calls answered and mid-conversation"),
                       ("rss_after_hangup_mib", "after they all hung up")):
        rows.append([label, *(mem[key] for mem in mems.values())])
    rows.append(["N (live calls at the peak)", *(mem["live_calls"] for mem in mems.values())])
    rows.append(["**per active call, KiB**", *(f"**{mem['kib_per_call']}**" if mem.get("passed", True)
                                               else "not recorded" for mem in mems.values())])
    rows.append(["threads in the workers at the peak", *(mem["threads_live"] for mem in mems.values())])
    return "\n\n".join([
        "## 5. Memory",
        "VmRSS of the gunicorn workers (`/proc/<worker>/status`, summed over the workers). Per active call is live "
        "minus 0-calls, over the live calls. In Redis mode the calls live in Redis (below), so the workers' figure "
        "is mostly threads and buffers.",
        table(["state", *(f"VmRSS MiB, {mode_label(mode, mem)}" for mode, mem in mems.items())], rows),
    ])


def _cpu(runs: dict) -> str:
    if not runs:
        return ""
    rows = []
    for key, run in sorted(runs.items(), key=lambda item: (item[1].get("mode", "memory"), item[1]["load"]["brain"],
                                                            item[1]["load"]["concurrency"], item[0])):
        load, redis = run["load"], run.get("redis") or {}
        again = " (second attempt)" if key.endswith("-retry") else ""
        rows.append([run.get("mode", "memory"), f"{load['concurrency']}{again}", load["brain"], pace(load["speed"]),
                     run["caller_turns"], run["webhooks"], run["service_cpu_s"], run["cpu_ms_per_turn"],
                     redis.get("redis_cpu_ms_per_turn", "-"), run["cpu_us_per_webhook"], run["service_cores"]])
    text = ["## 6. CPU cost per turn",
            "CPU seconds of the service workers (`utime + stime` from `/proc/<worker>/stat`, summed) over the whole "
            "run, divided by caller turns; a call's answer, greeting and hangup are spread over its turns. In Redis "
            "mode redis-server's own CPU per turn is the next column.",
            table(["mode", "calls", "brain", "pace", "caller turns", "webhooks", "worker CPU s", "worker CPU ms/turn",
                   "redis-server CPU ms/turn", "worker CPU µs/webhook", "worker cores"], rows)]
    best = _per_turn_estimate(runs)
    if best:
        text.append(best)
    return "\n\n".join(text)


def _per_turn_estimate(runs: dict) -> str:
    real = [r for r in runs.values() if r["load"]["speed"] == 1 and r["load"]["brain"] == "instant"
            and r.get("mode", "memory") == "memory"]
    if not real:
        return ""
    run = max(real, key=lambda r: r["load"]["concurrency"])
    turns_per_call_s = run["caller_turns"] / run["load"]["calls"] / run["report"]["duration_s"]
    calls_per_core = 1 / (run["cpu_ms_per_turn"] / 1000 * turns_per_call_s)
    return (f"At real-time pace a call makes about {turns_per_call_s:.2f} turns per second here, so at "
            f"{run['cpu_ms_per_turn']} ms of CPU per turn (memory mode) one fully used core would carry about "
            f"{calls_per_core:.0f} such calls. A memory-mode worker is one Python process, so the GIL caps it near "
            "one core whatever the machine has; Redis mode adds processes, and its CPU per turn is above.")


# ------------------------------------------------------------------ reading


def _reading(results: dict) -> str:
    lines = results.get("reading") or []
    return "## Reading\n\n" + "\n".join(f"- {line}" for line in lines) if lines else ""
