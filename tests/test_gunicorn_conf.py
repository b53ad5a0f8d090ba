"""gunicorn.conf.py as deployed: one worker process without Redis, however more are asked for; with REDIS_URL,
one per core by default, or what WEB_CONCURRENCY or -w says."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from background import wait_until

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def start(*args: str, **env: str) -> subprocess.CompletedProcess:
    command = [GUNICORN, "app:create_app()", "--config", "gunicorn.conf.py", "--bind", "127.0.0.1:0", *args]
    environment = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    return subprocess.run(command, cwd=ROOT, env={**environment, **env}, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("args, env", [(("-w", "2"), {}), (("--workers", "4"), {}), ((), {"WEB_CONCURRENCY": "2"})],
                         ids=["-w 2", "--workers 4", "WEB_CONCURRENCY=2"])
def test_more_than_one_worker_refuses_to_start(args, env):
    """Several workers would each hold some calls in memory and answer webhooks for calls they do not know."""
    finished = start(*args, **env)
    assert finished.returncode == 1
    assert "refusing to start with" in finished.stderr and "worker processes" in finished.stderr
    assert "Booting worker" not in finished.stderr
    assert "without REDIS_URL" in finished.stderr and "Scaling out" in finished.stderr


@pytest.mark.parametrize("args, env, expected", [(("-w", "2"), {}, 2), ((), {}, os.cpu_count() or 1),
                                                 ((), {"WEB_CONCURRENCY": "3"}, 3)],
                         ids=["-w 2", "default: one per core", "WEB_CONCURRENCY=3"])
def test_with_redis_several_workers_start_and_serve(redis_server, args, env, expected):
    port = free_port()
    command = [GUNICORN, "app:create_app()", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", *args]
    inherited = {key: value for key, value in os.environ.items() if key != "WEB_CONCURRENCY"}
    environment = {**inherited, "REDIS_URL": redis_server.url, "TELNYX_PUBLIC_KEY": "A" * 43 + "=", **env}
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=output, stderr=output)
        try:
            booted = wait_until(lambda: _read(output).count("Booting worker") == expected, 20)
            healthy = wait_until(lambda: _health(port) == "ok", 10)
        finally:
            process.terminate()
            process.wait(timeout=30)
        log = _read(output)
    assert booted and healthy, log
    assert "refusing to start" not in log and log.count("Booting worker") == expected


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read(output) -> str:
    output.seek(0)
    return output.read().decode(errors="replace")


def _health(port: int) -> str | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json().get("status")
    except (requests.RequestException, ValueError):
        return None


def load_conf():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gunicorn_conf_under_test", ROOT / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_metrics_directory_is_emptied_of_a_previous_run(tmp_path, monkeypatch):
    """A counter file left by the last run would add its counts to this run's /metrics."""
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    load_conf().metrics_directory()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep.txt"]


def test_without_a_metrics_directory_each_run_gets_its_own(monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # recorded, so the variable the hook sets is undone too
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    conf = load_conf()
    conf.metrics_directory()
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert Path(directory).is_dir() and "receptionist-metrics-" in directory
    conf.on_exit(None)
    assert not Path(directory).exists()


def test_what_the_loaded_app_holds_is_kept_out_of_full_garbage_collections():
    """A full collection walks every tracked object: the app's modules and SDKs made it a 79 ms pause mid-call."""
    import gc

    loaded = {"a": ["object", "made", "while", "the", "app", "loads"]}
    before = gc.get_freeze_count()
    try:
        load_conf().post_worker_init(None)
        assert gc.get_freeze_count() > before
        assert not any(obj is loaded for obj in gc.get_objects())  # frozen objects are not in any generation
    finally:
        gc.unfreeze()
