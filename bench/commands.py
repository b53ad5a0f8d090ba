"""Redis mode's traffic to Redis: the dispatchers' idle polling, and the commands of a turn by where they come from.

Idle: a Redis-mode service with no calls, INFO commandstats before and after `IDLE_S` seconds. Each
worker's dispatcher runs the CLAIM script every 50 ms (stores/leases.py, POLL_S) whether or not there is
work, so this is what Redis mode costs a Redis and the workers while nothing happens.

By origin: a few calls at 5x speech pace while a MONITOR connection watches. MONITOR tells the commands
the service sends (round trips: EVALSHA and the plain reads) from the ones its Lua scripts run inside
Redis. MONITOR slows the server down, so nothing else is measured in this run.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import ExitStack

import redis

from bench import calls, redisinfo, servers
from bench.modes import Mode
from bench.procstat import CpuMeter
from simulator.delivery import DeliveryOptions
from simulator.network import Network, NetworkOptions

IDLE_S = 10.0
SETTLE_S = 2.0
MONITORED = calls.CallLoad(concurrency=20, calls=20, turns=4, speed=0.2, ramp_s=1.0)


class CommandWatch:
    """Counts every command Redis runs, by origin (`client` for a round trip, `lua` inside a script)."""

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url, socket_timeout=0.2, socket_connect_timeout=5)
        self.counts: dict[str, Counter] = {"client": Counter(), "lua": Counter()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-monitor", daemon=True)
        self._ready = threading.Event()

    def __enter__(self) -> CommandWatch:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # the last commands are still on their way to this connection
        self._stop.set()
        self._thread.join(timeout=5)
        self.client.close()

    def _run(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            while not self._stop.is_set():
                try:
                    seen = monitor.next_command()
                except redis.TimeoutError:
                    continue
                name = seen["command"].split(" ", 1)[0].lower()
                self.counts["lua" if seen["client_type"] == "lua" else "client"][name] += 1


def run(mode: Mode, idle_s: float = IDLE_S, load: calls.CallLoad = MONITORED, log=print) -> dict:
    options = NetworkOptions(speed=load.speed, delivery=DeliveryOptions(workers=max(32, load.concurrency)))
    with ExitStack() as stack:
        network = stack.enter_context(Network(options))
        server = stack.enter_context(servers.service(network.service_env(), calls.SERVICE_OVERRIDES, mode))
        network.webhook_url = server.webhook_url
        time.sleep(SETTLE_S)
        idle = _idle(server, idle_s)
        with CommandWatch(mode.redis_url) as watch:
            results, duration_s = calls.place_calls(network, load)
            network.delivery.wait_idle(timeout_s=10)
            server.wait_drained(timeout_s=10)
    turns = sum(len(r.call.transcripts_sent) for r in results)
    by_origin = {origin: {name: n for name, n in counter.most_common()
                          if name not in redisinfo.BENCH_COMMANDS | redisinfo.HEALTHZ_COMMANDS}
                 for origin, counter in watch.counts.items()}
    round_trips = sum(by_origin["client"].values())
    polling = idle["round_trips_per_s"] * duration_s
    result = {"idle": idle, "load": f"{load.calls} calls, {load.turns} questions and goodbye each, speech at "
              f"{1 / load.speed:g}x real pace", "caller_turns": turns, "duration_s": round(duration_s, 1),
              "completed": sum(r.call.ended for r in results), "by_origin": by_origin,
              "round_trips_per_turn": round(round_trips / max(1, turns), 1),
              "round_trips_per_turn_without_polling": round((round_trips - polling) / max(1, turns), 1),
              "commands_per_turn": round((round_trips + sum(by_origin["lua"].values())) / max(1, turns), 1)}
    result["passed"] = result["completed"] == load.calls
    log(f"  redis idle: {idle['commands_per_s']} commands/s ({idle['round_trips_per_s']} EVALSHA/s); "
        f"{result['round_trips_per_turn']} round trips and {result['commands_per_turn']} commands per turn")
    return result


def _idle(server: servers.Server, seconds: float) -> dict:
    """Commands per second with no traffic at all, and the CPU it costs the workers and redis-server."""
    url = server.mode.redis_url
    before = redisinfo.command_counts(url)
    with CpuMeter(*server.worker_pids) as workers, CpuMeter(*server.redis_pids) as redis_cpu:
        time.sleep(seconds)
    commands = redisinfo.service_commands(redisinfo.command_counts(url) - before)
    return {
        "seconds": seconds,
        "workers": server.mode.workers,
        "per_s": {name: round(n / workers.wall_s, 1) for name, n in commands.items()},
        "commands_per_s": round(sum(commands.values()) / workers.wall_s, 1),
        "round_trips_per_s": round(commands.get("evalsha", 0) / workers.wall_s, 1),
        "worker_cores": round(workers.cores_busy, 4),
        "redis_cores": round(redis_cpu.cores_busy, 4),
    }
