"""Goal 2: per-turn overhead with the instant (offline intent) brain at 1, 10, 50 and 200 concurrent calls.

A turn runs from the caller's final transcript webhook leaving the simulator to the `speak` command
arriving at the fake Telnyx. Calls talk at real-time speech pace (speed 1.0); the single-call row plays
speech 20x faster so that a handful of sequential calls give enough turns. In Redis mode every turn
includes its Redis round trips (intake, claim, state read, commit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bench import calls
from bench.modes import MEMORY, Mode

LEVELS = (1, 10, 50, 200)
TURNS = 4


def load_for(concurrency: int) -> calls.CallLoad:
    """The standard call-load shape at one concurrency, shared with the capacity sweep and the slow brain."""
    if concurrency == 1:
        return calls.CallLoad(concurrency=1, calls=6, turns=6, speed=0.05, ramp_s=0.0)
    return calls.CallLoad(concurrency=concurrency, calls=concurrency, turns=TURNS, speed=1.0,
                          ramp_s=min(10.0, concurrency / 20))


def run_key(mode: Mode, concurrency: int, brain: str = "instant") -> str:
    """The run's name in the shared cache and in results.json's `runs`: `memory-50`, `redis-200`, `memory-slow-50`."""
    return "-".join([mode.name, *([brain] if brain != "instant" else []), str(concurrency)])


def cached(cache: dict[str, dict], mode: Mode, concurrency: int, log=print) -> dict:
    """The standard run at one concurrency in one mode, measured once and shared by every step that needs it."""
    key = run_key(mode, concurrency)
    if key not in cache:
        cache[key] = calls.run(load_for(concurrency), mode)
        log("  " + one_line(cache[key]))
    return cache[key]


def run(cache: dict[str, dict], modes: Sequence[Mode] = (MEMORY,), levels: Mapping[str, tuple[int, ...]] | None = None,
        log=print) -> dict[str, list[dict]]:
    """{mode: one run per level}, reusing any already in `cache`; each row is the full run record.

    At each level every mode that asks for it runs, back to back: a busy spell on a shared machine then
    falls on both modes alike instead of on whichever ran last.
    """
    levels = levels or {mode.name: LEVELS for mode in modes}
    for level in sorted({level for wanted in levels.values() for level in wanted}):
        for mode in modes:
            if level in levels.get(mode.name, ()):
                cached(cache, mode, level, log)
    return {mode.name: [cache[run_key(mode, level)] for level in levels.get(mode.name, ())] for mode in modes}


def one_line(run: dict) -> str:
    r = run["report"]
    redis = f"  redis {run['redis']['commands_per_turn']} cmd/turn" if "redis" in run else ""
    return (f"{run.get('mode', 'memory'):6} calls {run['load']['concurrency']:4}: "
            f"turn p99 {r['turn_latency_ms']['p99']:.1f} ms  "
            f"ack p99 {r['webhook_ack_ms']['p99']:.1f} ms  lost {run['lost']}  dup {run['duplicated']}  "
            f"cpu {run['cpu_ms_per_turn']} ms/turn  sim {run['simulator_cores']} cores{redis}")
