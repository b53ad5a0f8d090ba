"""Goal 5: memory with 0 and with N calls answered and mid-call: the workers' VmRSS, and in Redis mode Redis's.

The service is warmed up first (a few complete calls: lazy imports, thread pools, connection pools), so
the per-call figure is what a live call costs, not what the first call brings in. The N calls then ask
their questions and wait, still connected, while the bench reads VmRSS; then they say goodbye.

In Redis mode the bench also waits for the moment every one of the N calls is live, gives their last
events up to SETTLE_S to be run (all of them on hold, nothing queued), and reads INFO memory `used_memory`
there, against its value after the warm-up; then it lists every key under the service's prefix by kind
with MEMORY USAGE, and the keys of one call. After the hang-ups, what stays behind (webhook ids kept for
deduplication, tombstones) until it expires.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack

from bench import calls, redisinfo, servers
from bench.modes import MEMORY, Mode
from simulator.delivery import DeliveryOptions
from simulator.network import Network, NetworkOptions

SPEED = 0.2  # speech 5x faster than real: memory does not depend on pace, and it keeps the run short
HOLD_OVERRIDES = {"dialog.silence_timeout_s": 60}  # a caller on hold is not a silent caller to reprompt
WARMUP = calls.CallLoad(concurrency=10, calls=10, turns=2, speed=SPEED, ramp_s=0.5)
HOLDING_TIMEOUT_S = 30.0
SETTLE_S = 2.0  # once all calls are live, how long to wait for their last events to be run before reading


def held(active: int) -> calls.CallLoad:
    return calls.CallLoad(concurrency=active, calls=active, turns=2, speed=SPEED, ramp_s=3.0, hold_s=60.0)


def run(mode: Mode = MEMORY, active: int = 200, log=print) -> dict:
    options = NetworkOptions(speed=SPEED, delivery=DeliveryOptions(workers=min(256, max(32, active))))
    with ExitStack() as stack:
        network = stack.enter_context(Network(options))
        server = stack.enter_context(servers.service(network.service_env(), HOLD_OVERRIDES, mode))
        network.webhook_url = server.webhook_url
        fresh = server.rss_mib()
        calls.place_calls(network, WARMUP)
        server.wait_drained()
        time.sleep(1.0)
        warm = server.rss_mib()
        redis_warm = redisinfo.used_memory(mode.redis_url) if mode.redis else None
        with calls.Sampler(server, interval_s=0.25) as sampler, ThreadPoolExecutor(1) as pool:
            placing = pool.submit(calls.place_calls, network, held(active))
            holding = _when_all_holding(server, active, placing) if mode.redis else None
            results, _ = placing.result()
            server.wait_drained()
        after = sampler.sample()
        if mode.redis:
            after["keys"] = redisinfo.key_census(mode.redis_url, server.key_prefix)
    peak = sampler.peak()
    live = peak.get("live_calls") or 0
    result = {
        "mode": mode.name,
        "workers": mode.workers,
        "active_target": active,
        "rss_fresh_mib": round(fresh, 2),
        "rss_0_calls_mib": round(warm, 2),
        "live_calls": live,
        "rss_live_mib": peak.get("rss_mib"),
        "kib_per_call": round((peak["rss_mib"] - warm) * 1024 / live, 1) if live else None,
        "rss_after_hangup_mib": after["rss_mib"],
        "threads_live": peak.get("threads"),
        "calls_completed": sum(r.call.ended for r in results),
    }
    result["passed"] = live == active and result["calls_completed"] == active
    if mode.redis:
        result["redis"] = _redis_figures(redis_warm, holding, after, active)
    log(f"  memory {mode.name}: {warm:.1f} MiB at 0 calls, {result['rss_live_mib']} MiB at {live} live calls, "
        f"{result['kib_per_call']} KiB per call" + (f"; redis {result['redis']['bytes_per_live_call']} B per live "
                                                     "call" if mode.redis else ""))
    return result


def _when_all_holding(server: servers.Server, active: int, placing: Future) -> dict:
    """Once all `active` calls are live (and, within SETTLE_S, nothing queued): used_memory and the keys."""
    give_up = time.monotonic() + HOLDING_TIMEOUT_S
    while time.monotonic() < give_up and not placing.done():
        health = server.health_or_none() or {}
        if health.get("live_calls", 0) >= active:
            settled = time.monotonic() + SETTLE_S
            while health.get("queued_events") != 0 and time.monotonic() < settled:
                time.sleep(0.05)
                health = server.health_or_none() or {}
            url, prefix = server.mode.redis_url, server.key_prefix
            return {"live_calls": health.get("live_calls"), "queued_at_sample": health.get("queued_events"),
                    "used_memory": redisinfo.used_memory(url), "keys": redisinfo.key_census(url, prefix),
                    "one_call": redisinfo.one_call(url, prefix)}
        time.sleep(0.1)
    return {}


def _redis_figures(warm: int, holding: dict | None, after: dict, active: int) -> dict:
    live = (holding or {}).get("live_calls") or 0
    used = (holding or {}).get("used_memory")
    return {
        "used_memory_0_calls": warm,
        "live_calls": live,
        "queued_at_sample": (holding or {}).get("queued_at_sample"),
        "used_memory_live": used,
        "bytes_per_live_call": round((used - warm) / live) if live and used else None,
        "used_memory_after_hangup": after.get("redis_used_memory"),
        "bytes_left_per_ended_call": round((after["redis_used_memory"] - warm) / active)
        if after.get("redis_used_memory") else None,
        "keys": (holding or {}).get("keys", {}),
        "keys_after_hangup": after.get("keys", {}),
        "one_call": (holding or {}).get("one_call", {}),
    }
