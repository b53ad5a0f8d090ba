"""Goal 4: acknowledgements with a slow brain (the LLM brain, real openai client, a fake server answering in
1-3 s) against the instant brain at the same concurrency: replies in flight must not slow the 200s.
"""

from __future__ import annotations

from dataclasses import replace

from bench import calls, turns
from bench.modes import MEMORY, Mode

LEVELS = (50, 200)


def run(cache: dict[str, dict], mode: Mode = MEMORY, levels: tuple[int, ...] = LEVELS, log=print) -> list[dict]:
    rows = []
    for level in levels:
        instant = turns.cached(cache, mode, level, log)
        slow = calls.run(replace(turns.load_for(level), brain="slow"), mode)
        cache[turns.run_key(mode, level, "slow")] = slow
        log("  slow brain " + turns.one_line(slow))
        rows.append({"concurrency": level, "instant": instant, "slow": slow})
    return rows
