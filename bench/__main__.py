"""`python -m bench` (`make bench`): run every measurement, save bench/results.json, write BENCHMARKS.md.

Each step is bounded in time and count and on loopback only. A step that breaks is recorded and the
others still run; the benchmark never fails on a number. `--report-only` rewrites BENCHMARKS.md from
the saved JSON; `--quick` is a small smoke run.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import ack, calls, capacity, memory, profile, slow_brain, turns
from bench.procstat import machine
from bench.reading import reading
from bench.report import render

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
REPORT = ROOT / "BENCHMARKS.md"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.report_only:
        write_report(json.loads(RESULTS.read_text()))
        return 0
    results = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
               "settings": settings(), "errors": {}, "runs": {}}
    cache: dict[int, dict] = {}
    started = time.monotonic()
    for name, step in steps(args.quick, cache):
        log(f"[{time.monotonic() - started:5.0f} s] {name}")
        try:
            results[name] = step()
        except Exception as exc:  # one broken measurement must not lose the others
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        results["runs"] = {str(k): v for k, v in cache.items()}
        RESULTS.write_text(json.dumps(results, indent=1, default=str))
    results["runs"].update(_slow_runs(results))
    write_report(results)
    log(f"[{time.monotonic() - started:5.0f} s] wrote {REPORT.name} and {RESULTS.relative_to(ROOT)}")
    return 0


def steps(quick: bool, cache: dict[int, dict]):
    """(name, thunk) in running order; --quick shrinks every one of them."""
    if quick:
        return [
            ("ack", lambda: ack.run(rates=(50, 200), step_s=2.0, log=log)),
            ("turns", lambda: turns.run(cache, levels=(1, 10), log=log)),
            ("capacity", lambda: capacity.run(cache, steps=(10, 20), log=log)),
            ("slow_brain", lambda: slow_brain.run(cache, levels=(10,), log=log)),
            ("memory", lambda: memory.run(active=20, log=log)),
            ("profiles", lambda: {"route": profile.route(seconds=3), "turns": profile.turns(20, seconds=4)}),
        ]
    return [
        ("ack", lambda: ack.run(log=log)),
        ("profiles", lambda: {"route": profile.route(), "turns": profile.turns()}),
        ("turns", lambda: turns.run(cache, log=log)),
        ("memory", lambda: memory.run(log=log)),
        ("capacity", lambda: capacity.run(cache, log=log)),
        ("slow_brain", lambda: slow_brain.run(cache, log=log)),
    ]


def _slow_runs(results: dict) -> dict:
    return {f"slow-{row['concurrency']}": row["slow"] for row in results.get("slow_brain") or []}


def settings() -> dict:
    """The deployed gunicorn settings, read from gunicorn.conf.py itself."""
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    keys = ("workers", "worker_class", "threads", "keepalive", "timeout")
    return {"gunicorn": ", ".join(f"{k} {conf[k]}" for k in keys if k in conf), "call_workers": 64,
            "silence_timeout_s": calls.SERVICE_OVERRIDES["dialog.silence_timeout_s"],
            "slow_brain_delay_s": "-".join(f"{v:g}" for v in calls.SLOW_BRAIN_DELAY_S)}


def write_report(results: dict) -> None:
    results["reading"] = reading(results)
    RESULTS.write_text(json.dumps(results, indent=1, default=str))
    REPORT.write_text(render(results))


def log(message: str) -> None:
    print(message, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small smoke run (about two minutes)")
    parser.add_argument("--report-only", action="store_true", help="rewrite BENCHMARKS.md from bench/results.json")
    return parser


if __name__ == "__main__":
    sys.exit(main())
