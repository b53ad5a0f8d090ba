"""BENCHMARKS.md from the raw figures in bench/results.json; nothing here measures anything."""

from __future__ import annotations

from typing import Any

GOAL_ACK_RATIO = 2.0
GOAL_TURN_P99_MS = 20.0
GOAL_TURN_AT = 50
GOAL_CALLS = 200


def render(results: dict[str, Any]) -> str:
    sections = [_header(results), _goals(results), _ack(results.get("ack")), _turns(results.get("turns")),
                _capacity(results.get("capacity"), results.get("runs", {})), _slow(results.get("slow_brain")),
                _memory(results.get("memory")), _cpu(results.get("runs", {})), _profiles(results.get("profiles")),
                _reading(results), _errors(results)]
    return "\n\n".join(s for s in sections if s) + "\n"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _p(p: dict | None) -> str:
    p = p or {}
    return " / ".join(_ms(p.get(k)) for k in ("p50", "p95", "p99"))


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _header(results: dict) -> str:
    m, s = results.get("machine", {}), results.get("settings", {})
    return "\n".join([
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python -m bench`) on {results.get('date', '?')}; do not edit by hand. "
        "The raw figures are in `bench/results.json`; `python -m bench --report-only` rewrites this file from them. "
        "The benchmark never fails on a number.",
        "",
        f"**Machine:** {m.get('cores')} cores, {m.get('cpu_model')}, {m.get('memory_gib')} GiB, "
        f"Python {m.get('python')}, Linux {m.get('kernel')}. Everything runs on this machine over 127.0.0.1: "
        "the service, the simulator (fake Telnyx API, carrier, signed webhook delivery, scripted callers) and the "
        "load generators share the two cores.",
        "",
        f"**Service as deployed:** `gunicorn 'app:create_app()' --config gunicorn.conf.py`: {s.get('gunicorn')}; "
        f"`calls.workers` {s.get('call_workers')}; logging at INFO to a file; signatures verified; "
        f"`dialog.silence_timeout_s` {s.get('silence_timeout_s')} (the shipped default). "
        "The floor is `bench/floor_app.py` (a Flask route that returns 200 at once) under the same gunicorn command.",
        "",
        f"**Brains:** instant = the offline intent matcher; slow = the LLM brain through the real `openai` client "
        f"against `tests/fake_openai.py` answering in {s.get('slow_brain_delay_s')} s (uniform).",
        "",
        "Latencies in milliseconds as p50 / p95 / p99 (nearest rank).",
    ])


def _goals(results: dict) -> str:
    rows = []
    ack = results.get("ack")
    if ack:
        worst = max((r["p99"] for r in ack["ratio"] if r["p99"] is not None), default=None)
        within = [r["rate"] for r in ack["ratio"] if r["p99"] is not None and r["p99"] <= GOAL_ACK_RATIO]
        rows.append([f"ack p99 within {GOAL_ACK_RATIO:.0f}x the floor", f"worst ratio {_ms(worst)}x; within 2x at "
                     f"{', '.join(f'{r:g}' for r in within) or 'no'} req/s{_busiest_calls(results)}",
                     _yes(worst is not None and worst <= GOAL_ACK_RATIO)])
    turn = next((r for r in results.get("turns") or [] if r["load"]["concurrency"] == GOAL_TURN_AT), None)
    if turn:
        p99 = turn["report"]["turn_latency_ms"]["p99"]
        rows.append([f"per-turn overhead p99 < {GOAL_TURN_P99_MS:.0f} ms at {GOAL_TURN_AT} calls", f"{_ms(p99)} ms",
                     _yes(p99 is not None and p99 < GOAL_TURN_P99_MS)])
    cap = results.get("capacity")
    if cap:
        rows.append([f"{GOAL_CALLS}+ concurrent calls held", f"{cap['held']} held (steps tried up to "
                     f"{cap['steps'][-1]['concurrency']}, cap {cap['cap']})", _yes(cap["held"] >= GOAL_CALLS)])
    return "## Goals\n\n" + _table(["goal", "measured", "met"], rows) if rows else ""


def busiest_call_load(results: dict) -> tuple[str, float] | None:
    """(label, webhooks/s) of the call run that sent the most webhooks per second, or None."""
    rates = [(name, run.get("webhooks_per_s") or 0) for name, run in (results.get("runs") or {}).items()]
    return max(rates, key=lambda item: item[1], default=None)


def _busiest_calls(results: dict) -> str:
    busiest = busiest_call_load(results)
    if not busiest:
        return ""
    name, rate = busiest
    return f" (the busiest call run, {name} calls, sent {rate:g} webhooks/s)"


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _ack(ack: dict | None) -> str:
    if not ack:
        return ""
    rows = []
    for floor, mine, ratio in zip(ack["floor"], ack["service"], ack["ratio"], strict=True):
        rows.append([f"{mine['rate']:g}", f"{_ms(floor['achieved_rate'])} / {_ms(mine['achieved_rate'])}",
                     _p(floor["ack_ms"]), _p(mine["ack_ms"]), _p(ratio), f"{floor['errors']} / {mine['errors']}",
                     f"{floor['worker_cpu_us_per_request']} / {mine['worker_cpu_us_per_request']}",
                     _ms(mine["send_lag_ms"]["p99"])])
    return "\n\n".join([
        "## 1. Acknowledgement latency of `POST /webhooks/telnyx`, next to the floor",
        f"Open-loop: each rate runs {ack['step_s']:g} s from a separate process over {ack['connections']} keep-alive "
        "connections; a request is sent when due whatever happened to earlier ones, and its latency counts from "
        "when it was due. Bodies are signed v2 webhooks for fresh calls: `call.initiated`, `call.answered` 0.1 s "
        "later, `call.hangup` 0.6 s later, so the service answers, speaks the greeting, starts transcription and "
        "closes the call (three Call Control commands per call) while it acknowledges. The floor gets the same bodies. "
        "Worker CPU per request counts everything the worker did in the step, background commands included.",
        _table(["req/s", "achieved floor / service", "floor ack", "service ack", "ratio service/floor",
                "errors floor / service", "worker CPU µs/req floor / service", "generator lag p99"], rows),
    ])


def _turns(rows: list[dict] | None) -> str:
    if not rows:
        return ""
    table = []
    for run in rows:
        load, report = run["load"], run["report"]
        table.append([load["concurrency"], _pace(load["speed"]), run["caller_turns"], _p(report["turn_latency_ms"]),
                      _p(run["turn_from_post_ms"]), _ms(report["webhook_ack_ms"]["p99"]), run["lost"],
                      run["duplicated"], run["simulator_cores"]])
    return "\n\n".join([
        "## 2. Per-turn overhead (instant brain)",
        "From the caller's final transcript leaving the simulator (queued for delivery) to the `speak` command "
        "arriving at the fake Telnyx (the simulator's own measure), and the same from the moment the transcript "
        "webhook's POST started (without the simulator's delivery queue). Each call asks "
        f"{rows[-1]['load']['turns']} questions and says goodbye; starts are spread over a short ramp.",
        _table(["concurrent calls", "speech pace", "turns", "turn (simulator)", "turn (from POST)", "ack p99",
                "lost", "duplicated", "simulator cores"], table),
    ])


def _pace(speed: float) -> str:
    return "real time" if speed == 1 else f"{1 / speed:g}x real"


def _capacity(cap: dict | None, runs: dict) -> str:
    if not cap:
        return ""
    table = []
    for step in cap["steps"]:
        run = runs[str(step["concurrency"])]
        report = run["report"]
        peak = run["rss_peak_live"].get("live_calls")
        table.append([step["concurrency"], peak, _p(report["webhook_ack_ms"]), _ms(report["turn_latency_ms"]["p99"]),
                      run["lost"], run["duplicated"], report["errors"], run["webhooks_per_s"], run["service_cores"],
                      f"{run['simulator_cores']}{' (saturated)' if step['simulator_saturated'] else ''}",
                      "pass" if step["passed"] else "**fail**: " + ", ".join(step["reasons"])])
    return "\n\n".join([
        "## 3. Capacity",
        f"Real-time speech pace, the standard call (questions, goodbye), one wave of N calls. A step passes with "
        f"ack p99 under {cap['limit_ms']:.0f} ms, no call lost (every caller turn answered, every expectation met) and "
        "no command duplicated (no command_id sent twice, no effect twice). The sweep stops at the first failure "
        f"or at {cap['cap']}. **Held: {cap['held']} concurrent calls.**",
        _table(["calls", "peak live", "ack", "turn p99", "lost", "duplicated", "errors", "webhooks/s",
                "service cores", "simulator cores", "verdict"], table),
    ])


def _slow(rows: list[dict] | None) -> str:
    if not rows:
        return ""
    table = []
    for row in rows:
        for brain in ("instant", "slow"):
            run = row[brain]
            report = run["report"]
            table.append([row["concurrency"], brain, _p(report["webhook_ack_ms"]), _p(report["turn_latency_ms"]),
                          run["lost"], run["duplicated"], report["errors"], run["service_cores"]])
    return "\n\n".join([
        "## 4. Slow brain: acknowledgements while replies are in flight",
        "Same calls, same concurrency; the slow brain's turn latency includes its 1-3 s answer.",
        _table(["calls", "brain", "ack", "turn", "lost", "duplicated", "errors", "service cores"], table),
    ])


def _memory(mem: dict | None) -> str:
    if not mem:
        return ""
    rows = [["fresh, no call yet", mem["rss_fresh_mib"]], ["0 calls (after warm-up calls)", mem["rss_0_calls_mib"]],
            [f"{mem['live_calls']} calls answered and mid-conversation", mem["rss_live_mib"]],
            ["after they all hung up", mem["rss_after_hangup_mib"]]]
    return "\n\n".join([
        "## 5. Memory",
        "VmRSS of the gunicorn worker (`/proc/<worker>/status`).",
        _table(["state", "VmRSS MiB"], rows),
        f"**Per active call: {mem['kib_per_call']} KiB** (live minus 0-calls, over {mem['live_calls']} calls; "
        f"{mem['threads_live']} threads in the worker at that point).",
    ])


def _cpu(runs: dict) -> str:
    if not runs:
        return ""
    table = []
    for key in sorted(runs, key=lambda k: (runs[k]["load"]["brain"], runs[k]["load"]["concurrency"])):
        run = runs[key]
        load = run["load"]
        table.append([load["concurrency"], load["brain"], _pace(load["speed"]), run["caller_turns"], run["webhooks"],
                      run["service_cpu_s"], run["cpu_ms_per_turn"], run["cpu_us_per_webhook"], run["service_cores"]])
    best = _per_turn_estimate(runs)
    text = ["## 6. CPU cost per turn",
            "CPU seconds of the service worker (`utime + stime` from `/proc/<worker>/stat`) over the whole run, "
            "divided by caller turns; a call's answer, greeting and hangup are spread over its turns.",
            _table(["calls", "brain", "pace", "caller turns", "webhooks", "worker CPU s", "CPU ms/turn",
                    "CPU µs/webhook", "worker cores"], table)]
    if best:
        text.append(best)
    return "\n\n".join(text)


def _per_turn_estimate(runs: dict) -> str:
    real = [r for r in runs.values() if r["load"]["speed"] == 1 and r["load"]["brain"] == "instant"]
    if not real:
        return ""
    run = max(real, key=lambda r: r["load"]["concurrency"])
    turns_per_call_s = run["caller_turns"] / run["load"]["calls"] / run["report"]["duration_s"]
    calls_per_core = 1 / (run["cpu_ms_per_turn"] / 1000 * turns_per_call_s)
    return (f"At real-time pace a call makes about {turns_per_call_s:.2f} turns per second here, so at "
            f"{run['cpu_ms_per_turn']} ms of CPU per turn one fully used core would carry about {calls_per_core:.0f} "
            "such calls. The worker is one Python process, so the GIL caps it near one core whatever the machine has.")


def _profiles(profiles: dict | None) -> str:
    if not profiles:
        return ""
    parts = ["## Where the time goes (py-spy)",
             "py-spy samples the worker 250 times a second and keeps the stacks that hold the GIL (`--gil`); shares "
             "are of those samples. *GIL busy* is the share of sampling ticks in which some thread held it."]
    for name, title in (("route", "Webhook route"), ("turns", "Whole calls (webhooks + turns)")):
        prof = profiles.get(name)
        if not prof:
            continue
        if "error" in prof:
            parts.append(f"### {title}\n\nnot profiled: {prof['error']}")
            continue
        areas = [[area, f"{share}%", ", ".join(f"{k} {v}%" for k, v in prof["parts"].get(area, {}).items())]
                 for area, share in prof["areas"].items()]
        http = [[k, f"{v}%"] for k, v in prof.get("call_control_http", {}).items()]
        hot = [[f"`{k}`", f"{v}%"] for k, v in prof["hottest_functions"].items()]
        parts += [f"### {title}: {prof['load']}",
                  f"{prof['samples']} samples; GIL busy {100 * prof['gil_busy']:.0f}% of the time.",
                  _table(["area", "share", "inside it"], areas),
                  "Inside the outgoing Call Control requests (shares of all samples):",
                  _table(["part", "share"], http), "Hottest functions (self time):", _table(["function", "share"], hot)]
    return "\n\n".join(parts)


def _reading(results: dict) -> str:
    lines = results.get("reading") or []
    return "## Reading\n\n" + "\n".join(f"- {line}" for line in lines) if lines else ""


def _errors(results: dict) -> str:
    errors = results.get("errors") or {}
    if not errors:
        return ""
    return "## Steps that did not complete\n\n" + "\n".join(f"- {k}: {v}" for k, v in errors.items())
