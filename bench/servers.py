"""The servers under test, all under gunicorn with the deployed settings: the floor app, the least-work app
(bench/least_app.py) and the service."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from bench import redisinfo
from bench.modes import MEMORY, Mode
from bench.procstat import rss_mib, thread_count, worker_pids
from simulator.service import ROOT, free_port, gunicorn_command, start_service, stop_process

FLOOR_APP = "bench.floor_app:create_app()"
LEAST_APP = "bench.least_app:create_app()"
CALL_ID = re.compile(r"call=\S+")
MESSAGE_CHARS = 140
# Each gunicorn worker imports the app after it is forked; the first one may answer /healthz while the
# others still load. Multi-worker servers get this long before a step starts.
WORKERS_SETTLE_S = 1.5


@dataclass(frozen=True)
class Server:
    """A running gunicorn: its URL, the master process, the workers that do the work, and its mode.

    In Redis mode `key_prefix` is the service's fresh prefix and `redis_pid` the redis-server's process,
    whose CPU counts as the service's too.
    """

    name: str
    url: str
    master_pid: int
    worker_pids: tuple[int, ...]
    mode: Mode = MEMORY
    key_prefix: str = ""
    redis_pid: int | None = None
    log_path: str = ""  # where the service's stdout goes (simulator/service.py writes it to a temp file)

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhooks/telnyx"

    @property
    def redis_pids(self) -> tuple[int, ...]:
        """The redis-server behind a Redis-mode service (for CpuMeter), else nothing."""
        return (self.redis_pid,) if self.redis_pid else ()

    def rss_mib(self) -> float:
        """VmRSS of all workers together."""
        return sum(rss_mib(pid) for pid in self.worker_pids)

    def threads(self) -> int:
        return sum(thread_count(pid) for pid in self.worker_pids)

    def health(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/healthz", timeout=2).json()

    def health_or_none(self) -> dict[str, Any] | None:
        """health(), or None when an overloaded service does not answer it in time."""
        try:
            return self.health()
        except (requests.RequestException, ValueError):
            return None

    def wait_drained(self, timeout_s: float = 20.0) -> bool:
        """Until the service has no queued events left (the floor never has any)."""
        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up:
            if (self.health_or_none() or {}).get("queued_events") == 0:
                return True
            time.sleep(0.1)
        return False


@contextmanager
def service(env: Mapping[str, str], overrides: Mapping[str, Any] | None = None,
            mode: Mode = MEMORY, gunicorn_args: tuple[str, ...] = ()) -> Iterator[Server]:
    """The receptionist exactly as the simulator starts it (gunicorn.conf.py), in `mode`.

    `gunicorn_args` override the deployed settings (bench/slow_clients.py compares worker classes).
    """
    mode_overrides = mode.overrides()
    with start_service({**env, **mode.env()}, overrides={**(overrides or {}), **mode_overrides},
                       gunicorn_args=gunicorn_args) as running:
        _settle(mode)
        yield Server("service", running.url, running.process.pid, _workers_of(running.process.pid, mode.workers),
                     mode, mode_overrides.get("redis.key_prefix", ""),
                     redisinfo.server_pid(mode.redis_url) if mode.redis else None,
                     os.readlink(f"/proc/{running.process.pid}/fd/1"))


class LogWatch:
    """The service's WARNING and ERROR lines written inside the `with` block, counted by message.

    Call ids are masked so that one kind of trouble counts as one line: `stores.leases WARNING call=… lease
    lapsed ...`: 116. A step that failed its checks carries these, so the report can say what went wrong.
    """

    def __init__(self, server: Server):
        self.path = server.log_path
        self.counts: dict[str, int] = {}

    def __enter__(self) -> LogWatch:
        self._offset = os.path.getsize(self.path) if self.path else 0
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.path:
            return
        with open(self.path, "rb") as log:
            log.seek(self._offset)
            lines = log.read().decode(errors="replace").splitlines()
        counts: dict[str, int] = {}
        for line in lines:
            words = line.split(" ", 4)  # date, time, level, logger, message
            if len(words) == 5 and words[2] in ("WARNING", "ERROR", "CRITICAL"):
                key = f"{words[3]} {words[2]} {CALL_ID.sub('call=…', words[4])[:MESSAGE_CHARS]}"
                counts[key] = counts.get(key, 0) + 1
        self.counts = dict(sorted(counts.items(), key=lambda item: -item[1]))


@contextmanager
def floor(mode: Mode = MEMORY, app: str = FLOOR_APP, name: str = "floor",
          env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """The bare Flask floor app (or another `app`) under the same gunicorn command line and worker count as the
    service.

    It gets the mode's environment as it is: REDIS_URL included, which the floor never uses but without
    which gunicorn.conf.py refuses a second worker; `env` adds to it (the least-work app's Telnyx settings).
    """
    command = gunicorn_command(free_port())
    command[1] = app
    url = f"http://{command[-1]}"
    environment = {**os.environ, **mode.env(), **(env or {})}
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=output, stderr=output)
        try:
            _wait_up(url, process)
            _settle(mode)
            yield Server(name, url, process.pid, _workers_of(process.pid, mode.workers), mode)
        finally:
            stop_process(process)


def _settle(mode: Mode) -> None:
    if mode.workers > 1:
        time.sleep(WORKERS_SETTLE_S)


def _wait_up(url: str, process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise RuntimeError(f"floor app exited with {process.returncode}")
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"floor app not up after {timeout_s:.0f} s")


def _workers_of(master_pid: int, count: int, timeout_s: float = 10.0) -> tuple[int, ...]:
    """gunicorn forks its workers just after binding; wait for all of them to show up."""
    give_up = time.monotonic() + timeout_s
    while True:
        try:
            return worker_pids(master_pid, count)
        except RuntimeError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.05)
