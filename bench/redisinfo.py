"""What the redis-server behind Redis mode says about itself: memory, commands run, keys by kind, its pid.

INFO commandstats counts every command, including the ones a Lua script runs with `redis.call`: one
EVALSHA of the CLAIM script shows up as `evalsha` 1, `time` 1, `zrangebyscore` 2 and so on. Only EVALSHA
and the commands the service sends outside scripts are round trips (bench/commands.py tells them apart).
"""

from __future__ import annotations

from collections import Counter

import redis

# Commands the bench sends itself (never the service): left out of every per-turn figure.
BENCH_COMMANDS = frozenset({"info", "scan", "memory|usage", "config|resetstat", "monitor", "zrange"})
# What the bench's own GET /healthz polling costs the service in Redis: PING (store.health) and ZCARD
# twice (live calls, queued calls). Shown in the tables, left out of the per-turn totals.
HEALTHZ_COMMANDS = frozenset({"ping", "zcard"})


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def server_pid(url: str) -> int:
    with client(url) as r:
        return int(r.info("server")["process_id"])


def used_memory(url: str) -> int:
    """INFO memory used_memory: bytes the server has allocated (data, client buffers, scripts)."""
    with client(url) as r:
        return int(r.info("memory")["used_memory"])


def command_counts(url: str) -> Counter:
    """INFO commandstats as {command: calls}, script-internal calls included (`script|load` style names)."""
    with client(url) as r:
        stats = r.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()})


def service_commands(delta: Counter) -> dict[str, int]:
    """The commands run between two command_counts() (after - before), busiest first, without the bench's own."""
    return {name: n for name, n in delta.most_common() if name not in BENCH_COMMANDS}


def per_turn_total(commands: dict[str, int]) -> int:
    """All commands the service ran, its /healthz answers to the bench left out."""
    return sum(n for name, n in commands.items() if name not in HEALTHZ_COMMANDS)


def key_census(url: str, prefix: str) -> dict[str, dict[str, int]]:
    """Every key under `prefix`, by kind (`call`, `seen`, `ready`, ...): how many and MEMORY USAGE in bytes."""
    census: dict[str, dict[str, int]] = {}
    with client(url) as r:
        keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
        pipe = r.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key, samples=0)  # samples 0: every element of a zset counted, not estimated
        sizes = pipe.execute()
    for key, size in zip(keys, sizes, strict=True):
        kind = key.decode()[len(prefix):].split(":", 1)[0]
        row = census.setdefault(kind, {"keys": 0, "bytes": 0})
        row["keys"] += 1
        row["bytes"] += size or 0  # None: the key expired between SCAN and MEMORY USAGE
    return dict(sorted(census.items(), key=lambda item: -item[1]["bytes"]))


def one_call(url: str, prefix: str) -> dict[str, int | str]:
    """MEMORY USAGE of the keys named after one live call (its state, and its inbox if any is queued)."""
    with client(url) as r:
        first = r.zrange(f"{prefix}live", 0, 0)
        if not first:
            return {}
        call_control_id = first[0].decode()
        keys = [f"{prefix}{kind}:{call_control_id}" for kind in ("call", "inbox", "lease", "ended")]
        sizes = {key.removeprefix(prefix).split(":", 1)[0]: r.memory_usage(key, samples=0) for key in keys}
    return {"call_control_id": call_control_id, **{kind: size for kind, size in sizes.items() if size}}
