"""Start the receptionist exactly as deployed (gunicorn + gunicorn.conf.py) against a simulated network."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEMO_OVERRIDES = {"dialog.silence_timeout_s": 1.5}
REMOVED_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL")


class ServiceError(RuntimeError):
    """The service did not come up; the message carries the tail of its output."""


@dataclass(frozen=True)
class Service:
    """A running service: where to send webhooks and where it logs finished calls."""

    url: str
    call_log_path: str
    process: subprocess.Popen

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhooks/telnyx"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(directory: Path, overrides: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """A copy of config.example.yml with the call log in `directory` (unless overridden) and dotted overrides."""
    raw = yaml.safe_load((ROOT / "config.example.yml").read_text(encoding="utf-8"))
    call_log = directory / "call_log.jsonl"
    raw.setdefault("call_log", {})["path"] = str(call_log)
    for dotted, value in {**DEMO_OVERRIDES, **(overrides or {})}.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = directory / "config.yml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path, Path(raw["call_log"]["path"])  # an override may share one call log between instances


def gunicorn_command(port: int) -> list[str]:
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    if (ROOT / "gunicorn.conf.py").exists():
        settings = ["--config", "gunicorn.conf.py"]
    else:
        settings = ["--workers", "1", "--threads", "16", "--worker-class", "gthread"]
    return [gunicorn, "app:create_app()", *settings, "--bind", f"127.0.0.1:{port}"]


@contextmanager
def start_service(network_env: Mapping[str, str], *, overrides: Mapping[str, Any] | None = None,
                  startup_timeout_s: float = 20.0, quiet: bool = True) -> Iterator[Service]:
    """Run gunicorn with a temporary config and the simulated network's env; stop it (SIGTERM) on exit."""
    with tempfile.TemporaryDirectory(prefix="receptionist-sim-") as tmp:
        config_path, call_log = write_config(Path(tmp), overrides)
        env = {k: v for k, v in os.environ.items() if k not in REMOVED_ENV}
        env.update(network_env, RECEPTIONIST_CONFIG=str(config_path))
        port = free_port()
        output = open(Path(tmp) / "service.log", "w+b") if quiet else None  # noqa: SIM115 - closed below
        process = subprocess.Popen(gunicorn_command(port), cwd=ROOT, env=env, stdout=output, stderr=output)
        service = Service(f"http://127.0.0.1:{port}", str(call_log), process)
        try:
            _wait_healthy(service, startup_timeout_s, output)
            yield service
        finally:
            stop_process(process)
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


def stop_process(process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM, wait for a graceful exit, SIGKILL only if it will not stop."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
