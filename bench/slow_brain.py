"""Goal 4: acknowledgements with a slow brain (the LLM brain, real openai client, a fake server answering in
1-3 s) against the instant brain at the same concurrency: replies in flight must not slow the 200s.
"""

from __future__ import annotations

from dataclasses import replace

from bench import calls, turns

LEVELS = (50, 200)


def run(cache: dict[int, dict], levels: tuple[int, ...] = LEVELS, log=print) -> list[dict]:
    rows = []
    for level in levels:
        instant = cache.get(level) or calls.run(turns.load_for(level))
        cache[level] = instant
        slow = calls.run(replace(turns.load_for(level), brain="slow"))
        log("  slow brain " + turns.one_line(slow))
        rows.append({"concurrency": level, "instant": instant, "slow": slow})
    return rows
