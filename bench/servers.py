"""The two servers under test, both under gunicorn with the deployed settings: the floor app and the service."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from bench.procstat import worker_pid
from simulator.service import ROOT, free_port, gunicorn_command, start_service, stop_process

FLOOR_APP = "bench.floor_app:create_app()"


@dataclass(frozen=True)
class Server:
    """A running gunicorn: its URL, the master process and the one worker that does the work."""

    name: str
    url: str
    master_pid: int
    worker_pid: int

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhooks/telnyx"

    def health(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/healthz", timeout=2).json()

    def wait_drained(self, timeout_s: float = 20.0) -> bool:
        """Until the service has no queued events left (the floor never has any)."""
        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up:
            if self.health().get("queued_events", 0) == 0:
                return True
            time.sleep(0.1)
        return False


@contextmanager
def service(env: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> Iterator[Server]:
    """The receptionist exactly as the simulator starts it (gunicorn.conf.py, 1 worker, gthread)."""
    with start_service(env, overrides=overrides) as running:
        yield Server("service", running.url, running.process.pid, _worker_of(running.process.pid))


@contextmanager
def floor() -> Iterator[Server]:
    """The bare Flask floor app under the same gunicorn command line as the service."""
    command = gunicorn_command(free_port())
    command[1] = FLOOR_APP
    url = f"http://{command[-1]}"
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=output)
        try:
            _wait_up(url, process)
            yield Server("floor", url, process.pid, _worker_of(process.pid))
        finally:
            stop_process(process)


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


def _worker_of(master_pid: int, timeout_s: float = 5.0) -> int:
    """gunicorn forks its worker just after binding; wait for it to show up."""
    give_up = time.monotonic() + timeout_s
    while True:
        try:
            return worker_pid(master_pid)
        except RuntimeError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.05)

