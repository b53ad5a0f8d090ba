"""Start the receptionist exactly as deployed (gunicorn + gunicorn.conf.py) against a simulated network.

Several instances may run side by side (each its own port, config and log; REDIS_URL in the env makes them
share calls), and each can be stopped as a deploy does (`stop`, SIGTERM) or lost as a crash loses it
(`kill`: the master and every worker at once). Its workers are found through Linux /proc (`workers`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
# The clinic is open around the clock in the demo, so scenarios end the same way at any hour; the after-hours
# scenarios run on a service where it is closed (after_hours_overrides). Transfers use answering machine
# detection, and messages go by SMS to a staff phone, both through the fake Telnyx.
STAFF_PHONE = "+13125550199"
DEMO_OVERRIDES = {"dialog.silence_timeout_s": 1.5, "business.open": {}, "business.closed_on": [],
                  "transfer.machine_detection": True, "messages.sms_to": [STAFF_PHONE]}


def after_hours_overrides() -> dict[str, Any]:
    """The business closed all of yesterday, today and tomorrow (UTC dates: today wherever its time zone is)."""
    today = datetime.now(UTC).date()
    return {"business.closed_on": [today + timedelta(days=days) for days in (-1, 0, 1)]}


def scenario_overrides(service: str) -> dict[str, Any]:
    """The config a scenario's `service` names (simulator/scenario.py, SERVICES): none for the default one."""
    if service == "after_hours":
        return after_hours_overrides()
    return {"recording.enabled": True} if service == "recording" else {}
REMOVED_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL")


class ServiceError(RuntimeError):
    """The service did not come up; the message carries the tail of its output."""


@dataclass(frozen=True)
class Service:
    """A running service: where to send webhooks, where it logs finished calls, and its gunicorn processes."""

    url: str
    call_log_path: str
    process: subprocess.Popen
    log_path: str = ""  # gunicorn's and the app's output when started quiet, else ""

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhooks/telnyx"

    @property
    def master(self) -> int:
        return self.process.pid

    def workers(self) -> list[int]:
        """The worker processes the master runs now (Linux /proc)."""
        return children(self.master)

    def log(self) -> str:
        """Everything the service wrote so far (empty when its output went to the terminal)."""
        return Path(self.log_path).read_text(errors="replace") if self.log_path else ""

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, as a deploy stops it: the master waits for its workers' graceful exit. The exit code."""
        return stop_process(self.process, timeout_s)

    def kill(self) -> list[int]:
        """SIGKILL the master and every worker at once, as a lost machine: nothing drains, nothing is handed back.

        The master is stopped first so that it cannot fork a replacement for a worker that dies before it.
        Returns the workers killed, once they are gone.
        """
        if self.process.poll() is not None:
            return []
        _signal(self.master, signal.SIGSTOP)
        workers = self.workers()
        for pid in workers:
            _signal(pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait(timeout=5)
        _wait_gone(workers)
        return workers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(directory: Path, overrides: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """A copy of config.example.yml with the call log in `directory` (unless overridden) and dotted overrides."""
    raw = yaml.safe_load((ROOT / "config.example.yml").read_text(encoding="utf-8"))
    call_log = directory / "call_log.jsonl"
    raw.setdefault("call_log", {})["path"] = str(call_log)
    raw.setdefault("admin", {})["state_path"] = str(directory / "ops_state.json")
    for dotted, value in {**DEMO_OVERRIDES, **(overrides or {})}.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = directory / "config.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path, Path(raw["call_log"]["path"])  # an override may share one call log between instances


def gunicorn_command(port: int, extra: Sequence[str] = ()) -> list[str]:
    """gunicorn as the Procfile runs it; `extra` settings on the command line override gunicorn.conf.py's."""
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    return [gunicorn, "app:create_app()", "--config", "gunicorn.conf.py", *extra, "--bind", f"127.0.0.1:{port}"]


@contextmanager
def start_service(network_env: Mapping[str, str], *, overrides: Mapping[str, Any] | None = None,
                  startup_timeout_s: float = 20.0, quiet: bool = True, port: int | None = None,
                  gunicorn_args: Sequence[str] = ()) -> Iterator[Service]:
    """Run gunicorn with a temporary config and the simulated network's env; stop it (SIGTERM) on exit.

    `port` starts it where an instance that was stopped listened before (a restart behind a load balancer).
    On exit no worker outlives the service, even one a test left stopped (SIGSTOP) or a master that had to
    be killed.
    """
    with tempfile.TemporaryDirectory(prefix="receptionist-sim-") as tmp:
        config_path, call_log = write_config(Path(tmp), overrides)
        env = {k: v for k, v in os.environ.items() if k not in REMOVED_ENV}
        env.update(network_env, RECEPTIONIST_CONFIG=str(config_path))
        port = port or free_port()
        log_path = Path(tmp) / "service.log"
        output = open(log_path, "w+b") if quiet else None  # noqa: SIM115 - closed below
        command = gunicorn_command(port, gunicorn_args)
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
        service = Service(f"http://127.0.0.1:{port}", str(call_log), process, str(log_path) if quiet else "")
        try:
            _wait_healthy(service, startup_timeout_s, output)
            yield service
        finally:
            _stop_all(service)
            if output:
                output.close()


def _wait_healthy(service: Service, timeout_s: float, output: Any) -> None:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if service.process.poll() is not None:
            raise ServiceError(f"service exited with {service.process.returncode}:\n{_tail(output)}")
        try:
            if requests.get(f"{service.url}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise ServiceError(f"service not healthy after {timeout_s:.0f} s:\n{_tail(output)}")


def _tail(output: Any, lines: int = 30) -> str:
    if output is None:
        return "(output went to the terminal)"
    output.flush()
    output.seek(0)
    return "\n".join(output.read().decode(errors="replace").splitlines()[-lines:])


def stop_process(process: subprocess.Popen, timeout_s: float = 10.0) -> int | None:
    """SIGTERM, wait for a graceful exit, SIGKILL only if it will not stop; the exit code."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout=5)


def _stop_all(service: Service) -> None:
    """Stop the service, then SIGKILL any worker left behind (its master was killed before it could reap it)."""
    workers = {pid: _started_at(pid) for pid in service.workers()}
    for pid in workers:
        _signal(pid, signal.SIGCONT)  # a stopped worker could not take the SIGTERM its master passes on
    service.stop()
    left = [pid for pid, started in workers.items() if alive(pid) and _started_at(pid) == started]  # not a reused pid
    for pid in left:
        _signal(pid, signal.SIGKILL)
    _wait_gone(left)


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (Linux /proc; empty elsewhere or once it has exited)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped (Linux /proc)."""
    fields = _stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def _started_at(pid: int) -> str:
    """When the process started, in clock ticks since boot: with the pid, it names one process."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name (state first), or [] when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.kill(pid, signum)


def _wait_gone(pids: list[int], timeout_s: float = 5.0) -> None:
    give_up = time.monotonic() + timeout_s
    while any(alive(pid) for pid in pids) and time.monotonic() < give_up:
        time.sleep(0.01)
