"""gunicorn.conf.py as deployed: one worker process only, however more are asked for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def start(*args: str, **env: str) -> subprocess.CompletedProcess:
    command = [GUNICORN, "app:create_app()", "--config", "gunicorn.conf.py", "--bind", "127.0.0.1:0", *args]
    return subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("args, env", [(("-w", "2"), {}), (("--workers", "4"), {}), ((), {"WEB_CONCURRENCY": "2"})],
                         ids=["-w 2", "--workers 4", "WEB_CONCURRENCY=2"])
def test_more_than_one_worker_refuses_to_start(args, env):
    """Several workers would each hold some calls in memory and answer webhooks for calls they do not know."""
    finished = start(*args, **env)
    assert finished.returncode == 1
    assert "refusing to start with" in finished.stderr and "worker processes" in finished.stderr
    assert "Booting worker" not in finished.stderr
