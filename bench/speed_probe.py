"""How fast this machine's CPU ran while a row was measured: a fixed loop timed once a second in a process of its own.

The benchmark machine is a virtual one. Timed back to back at idle, the same pure-Python loop took between 337 and
490 ms of CPU time (12 samples, one a second): the host slows the virtual CPU from one second to the next, and
every latency the bench measures stretches with it. The probe makes that visible next to the figures. Each sample
is the loop's CPU time in ms (not wall time, so waiting for a core while the service is busy does not count): the
lower, the faster the CPU was running. The loop takes about 3 ms, once a second: 0.3% of a core.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from typing import Any

LOOP = 20_000
INTERVAL_S = 1.0


def loop_cpu_s() -> float:
    started = time.process_time()
    total = 0
    for i in range(LOOP):
        total += i * i
    return time.process_time() - started


def _probe(connection: Any) -> None:
    loop_cpu_s()  # the first run of the loop pays for warming up
    connection.send("ready")
    samples = []
    while not connection.poll(INTERVAL_S):
        samples.append(loop_cpu_s() * 1000)
    connection.send(samples)


class SpeedProbe:
    """`with SpeedProbe() as probe:` ... then `probe.figures`: the loop's median and worst CPU ms over the block."""

    def __init__(self) -> None:
        self.figures: dict[str, float | int | None] = {}

    def __enter__(self) -> SpeedProbe:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_probe, args=(child,), name="speed-probe", daemon=True)
        self._process.start()
        self._connection.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._connection.send("stop")
        samples = self._connection.recv() if self._connection.poll(10) else []
        self._process.join(timeout=5)
        self._connection.close()
        self.figures = {
            "samples": len(samples),
            "median_ms": round(statistics.median(samples), 2) if samples else None,
            "worst_ms": round(max(samples), 2) if samples else None,
        }
