"""Goal 5: resident memory (VmRSS) of the gunicorn worker with 0 and with N calls answered and mid-call.

The service is warmed up first (a few complete calls: lazy imports, thread pools, connection pools), so
the per-call figure is what a live call costs, not what the first call brings in. The N calls then ask
their questions and wait, still connected, while the bench reads VmRSS; then they say goodbye.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

from bench import calls, servers
from bench.procstat import rss_mib
from simulator.delivery import DeliveryOptions
from simulator.network import Network, NetworkOptions

SPEED = 0.2  # speech 5x faster than real: memory does not depend on pace, and it keeps the run short
HOLD_OVERRIDES = {"dialog.silence_timeout_s": 60}  # a caller on hold is not a silent caller to reprompt
WARMUP = calls.CallLoad(concurrency=10, calls=10, turns=2, speed=SPEED, ramp_s=0.5)


def held(active: int) -> calls.CallLoad:
    return calls.CallLoad(concurrency=active, calls=active, turns=2, speed=SPEED, ramp_s=3.0, hold_s=40.0)


def run(active: int = 200, log=print) -> dict:
    options = NetworkOptions(speed=SPEED, delivery=DeliveryOptions(workers=min(256, max(32, active))))
    with ExitStack() as stack:
        network = stack.enter_context(Network(options))
        server = stack.enter_context(servers.service(network.service_env(), HOLD_OVERRIDES))
        network.webhook_url = server.webhook_url
        fresh = rss_mib(server.worker_pid)
        calls.place_calls(network, WARMUP)
        server.wait_drained()
        time.sleep(1.0)
        warm = rss_mib(server.worker_pid)
        with calls.Sampler(server, interval_s=0.25) as sampler:
            results, _ = calls.place_calls(network, held(active))
            server.wait_drained()
        after = sampler.sample()
    peak = sampler.peak()
    live = peak.get("live_calls") or 0
    result = {
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
    log(f"  memory: {warm:.1f} MiB at 0 calls, {result['rss_live_mib']} MiB at {live} live calls, "
        f"{result['kib_per_call']} KiB per call")
    return result
