"""`python -m bench` (`make bench`): run every measurement, save bench/results.json, write BENCHMARKS.md.

Each step runs in memory mode (no REDIS_URL, 1 worker) and, where it compares, in Redis mode (REDIS_URL to
a redis-server the bench starts on loopback, 2 workers; bench/modes.py); turns and capacity alternate the
modes at each concurrency. Each step is bounded in time and count and on loopback only. A step that breaks
is recorded and the others still run; the benchmark never fails on a number. `--report-only` rewrites
BENCHMARKS.md from the saved JSON; `--quick` is a small smoke run (it overwrites both files too: restore
them with git before committing).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from bench import (
    ack,
    calls,
    capacity,
    commands,
    first_audio,
    memory,
    profile,
    redisinfo,
    slow_brain,
    slow_clients,
    turns,
)
from bench.modes import MEMORY, REDIS_WORKERS, Mode, redis_mode
from bench.procstat import MachineShare, machine, taken_cores, wait_quiet
from bench.reading import reading
from bench.report import render
from bench.report_run import BUSY_MACHINE_CORES
from simulator.redis_server import RedisServer, RedisServerError
from stores.leases import POLL_S

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
REPORT = ROOT / "BENCHMARKS.md"
# Before each step, wait (this long at most, and this long over the whole run) for other processes on the
# machine to go quiet: another job's CPU would be charged to the service. Each step records what it saw.
QUIET_WINDOW_S, QUIET_WAIT_S, QUIET_BUDGET_S = 3.0, 120.0, 300.0
QUIET_WAIT_QUICK_S, QUIET_BUDGET_QUICK_S = 10.0, 30.0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.report_only:
        write_report(json.loads(RESULTS.read_text()))
        return 0
    if args.only == ["first_audio"]:  # alone: its own file and section, nothing else rewritten
        first_audio.run(args.quick, log=log, levels=tuple(args.calls) if args.calls else None)
        log(f"wrote {first_audio.RESULTS.relative_to(ROOT)} and its section of {REPORT.name}")
        return 0
    quiet = (QUIET_WAIT_QUICK_S, QUIET_BUDGET_QUICK_S) if args.quick else (QUIET_WAIT_S, QUIET_BUDGET_S)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results = {"date": now, "machine": machine(),
               "settings": {**settings(), "quiet_wait_s": quiet[0], "quiet_budget_s": quiet[1], "nice": os.nice(0)},
               "quick": args.quick, "errors": {}, "runs": {}, "machine_load": {}}
    if args.only:
        results = rerun_base(results, args.only, now)
    saved_runs = results["runs"]  # --only measures its call runs afresh, and keeps the other steps' runs
    cache: dict[str, dict] = {} if args.only else saved_runs
    started = time.monotonic()
    with ExitStack() as stack:
        modes = available_modes(stack, results)
        for name, step_modes, step in steps(args.quick, cache, modes):
            if args.only and name not in args.only:
                continue
            label = f"{name} ({', '.join(mode.name for mode in step_modes)})"
            waited_s = sum(load.get("waited_s", 0) for load in results["machine_load"].values())
            waited = wait_quiet(os.getpid(), BUSY_MACHINE_CORES, QUIET_WINDOW_S, min(quiet[0], quiet[1] - waited_s))
            log(f"[{time.monotonic() - started:5.0f} s] {name} ({'; '.join(mode.label for mode in step_modes)})"
                + (f" after waiting {waited:g} s for a quiet machine" if waited > QUIET_WINDOW_S + 1 else ""))
            measure(results, name, label, partial(step, step_modes))
            results["machine_load"][label]["waited_s"] = waited
            results["runs"] = {**saved_runs, **cache}
            RESULTS.write_text(json.dumps(results, indent=1, default=str))
    write_report(results)
    log(f"[{time.monotonic() - started:5.0f} s] wrote {REPORT.name} and {RESULTS.relative_to(ROOT)}")
    return 0


def rerun_base(fresh: dict, only: list[str], now: str) -> dict:
    """--only: the saved results with the named steps taken out, to be measured again; the rest stays as it was."""
    if not RESULTS.exists():
        return fresh
    results = json.loads(RESULTS.read_text())
    for name in only:
        results.pop(name, None)
        for section in ("errors", "machine_load"):
            results[section] = {k: v for k, v in results.get(section, {}).items() if not k.startswith(f"{name} (")}
    # An earlier rerun of the same steps is superseded by this one.
    earlier = [rerun for rerun in results.get("reruns", []) if set(rerun["steps"]) - set(only)]
    results["reruns"] = [*earlier, {"date": now, "steps": only, "settings": fresh["settings"]}]
    return results


def measure(results: dict, name: str, label: str, step: Callable[[], dict[str, Any]]) -> None:
    """Run one step into results[name][mode], or its error into results["errors"]; note how busy the machine was."""
    with MachineShare(os.getpid()) as share:
        try:
            results.setdefault(name, {}).update(step())
        except Exception as exc:  # one broken measurement must not lose the others
            results["errors"][label] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
    results["machine_load"][label] = dict(share.figures)
    taken = taken_cores(share.figures)
    if taken >= BUSY_MACHINE_CORES:
        log(f"  note: other processes and steal took {taken:.2f} cores during this step")


def available_modes(stack: ExitStack, results: dict) -> dict[str, Mode]:
    """Memory mode always; Redis mode when a redis-server starts (one for the whole run, on loopback)."""
    modes = {"memory": MEMORY}
    try:
        server = stack.enter_context(RedisServer())
    except RedisServerError as exc:
        results["errors"]["redis"] = f"Redis mode not measured: {exc}"
        return modes
    results["settings"]["redis"] = redis_settings(server.url)
    modes["redis"] = redis_mode(server.url)
    return modes


Step = Callable[[tuple[Mode, ...]], dict[str, Any]]


def steps(quick: bool, cache: dict[str, dict], modes: dict[str, Mode]) -> list[tuple[str, tuple[Mode, ...], Step]]:
    """(step, its modes, thunk returning {mode: figures}) in running order; --quick shrinks every one of them.

    Turns and capacity run both modes back to back at each concurrency, so that a busy spell on a shared
    machine falls on both alike; the others run one mode at a time.
    """
    size = QUICK if quick else FULL
    memory_mode, redis = (modes["memory"],), ((modes["redis"],) if "redis" in modes else ())

    def each(measure_one: Callable[[Mode], Any]) -> Step:
        return lambda step_modes: {mode.name: measure_one(mode) for mode in step_modes}

    plan: list[tuple[str, tuple[Mode, ...], Step]] = [
        ("ack", memory_mode, each(lambda m: ack.run(m, **size["ack"], log=log))),
        ("ack", redis, each(lambda m: ack.run(m, **size["ack"], log=log))),
        ("profiles", memory_mode, each(lambda m: _profiles(m, size["profiles"]))),
        ("profiles", redis, each(lambda m: _profiles(m, size["profiles"]))),
        ("turns", memory_mode + redis, lambda ms: turns.run(cache, ms, size["turns"], log=log)),
        ("commands", redis, each(lambda m: commands.run(m, **size["commands"], log=log))),
        ("memory", memory_mode, each(lambda m: memory.run(m, **size["memory"], log=log))),
        ("memory", redis, each(lambda m: memory.run(m, **size["memory"], log=log))),
        ("capacity", memory_mode + redis, lambda ms: capacity.run(cache, ms, **size["capacity"], log=log)),
        ("slow_brain", memory_mode, each(lambda m: slow_brain.run(cache, m, **size["slow_brain"], log=log))),
        ("slow_clients", memory_mode, each(lambda m: slow_clients.run(**size["slow_clients"], log=log))),
        ("first_audio", memory_mode, lambda ms: {"memory": {"written_to": str(first_audio.RESULTS.name),
                                                            "rows": len(first_audio.run(quick, log=log)["rows"])}}),
    ]
    return [(name, step_modes, step) for name, step_modes, step in plan if step_modes]


# Step sizes: the full run, and --quick's smoke run. Redis mode's per-turn rows are the two concurrencies
# the goals name (memory mode also runs 1 and 10).
FULL: dict[str, Any] = {
    "ack": {}, "profiles": {"route": {}, "turns": {}}, "commands": {}, "memory": {}, "capacity": {},
    "slow_brain": {}, "slow_clients": {}, "turns": {"memory": turns.LEVELS, "redis": (50, 200)},
}
QUICK: dict[str, Any] = {
    "ack": {"rates": (50, 200), "step_s": 2.0}, "profiles": {"route": {"seconds": 3},
                                                             "turns": {"concurrency": 20, "seconds": 4}},
    "commands": {"idle_s": 3.0}, "memory": {"active": 20}, "capacity": {"steps": (10,)},
    "slow_brain": {"levels": (10,)}, "turns": {"memory": (1, 10), "redis": (10,)},
    "slow_clients": {"attack": {"slow_headers": 40, "slow_bodies": 40, "idle": 200}, "step_s": 3.0},
}


def _profiles(mode: Mode, size: dict[str, dict]) -> dict:
    return {"route": profile.route(mode, **size["route"]), "turns": profile.turns(mode, **size["turns"])}


def settings() -> dict:
    """The deployed gunicorn settings, read from gunicorn.conf.py itself."""
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    keys = ("workers", "worker_class", "worker_connections", "keepalive", "timeout")
    return {"gunicorn": ", ".join(f"{k} {conf[k]}" for k in keys if k in conf), "call_workers": 64,
            "silence_timeout_s": calls.SERVICE_OVERRIDES["dialog.silence_timeout_s"],
            "slow_brain_delay_s": "-".join(f"{v:g}" for v in calls.SLOW_BRAIN_DELAY_S)}


def redis_settings(url: str) -> dict:
    """The Redis behind Redis mode: its version, and the store settings the service runs with."""
    config = yaml.safe_load((ROOT / "config.example.yml").read_text(encoding="utf-8"))["redis"]
    with redisinfo.client(url) as client:
        version = client.info("server")["redis_version"]
    return {"server": f"redis-server {version} on 127.0.0.1, no persistence (simulator/redis_server.py)",
            "workers": REDIS_WORKERS, "lease_s": config["lease_s"], "timeout_s": config["timeout_s"],
            "poll_s": POLL_S}


def write_report(results: dict) -> None:
    results["reading"] = reading(results)
    RESULTS.write_text(json.dumps(results, indent=1, default=str))
    REPORT.write_text(render(results))
    if first_audio.RESULTS.exists():  # a section of its own, from its own file (bench/first_audio.py)
        first_audio.write_section(json.loads(first_audio.RESULTS.read_text()), REPORT)


def log(message: str) -> None:
    print(message, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small smoke run (about five minutes)")
    parser.add_argument("--report-only", action="store_true", help="rewrite BENCHMARKS.md from bench/results.json")
    parser.add_argument("--only", nargs="+", metavar="STEP",
                        help="measure only these steps again (e.g. slow_clients), keeping the other saved figures; "
                             "first_audio alone writes its own file (bench/first_audio.json) and section")
    parser.add_argument("--calls", nargs="+", type=int, metavar="N",
                        help="with --only first_audio: measure only these concurrencies again (e.g. 1 50), "
                             "keeping the saved rows of the others")
    return parser


if __name__ == "__main__":
    sys.exit(main())
