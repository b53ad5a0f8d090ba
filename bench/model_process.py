"""The fake model (tests/fake_openai.py) in a process of its own, for bench/first_audio.py.

Streaming at 40 tokens a second to 50 calls is 2,000 writes a second. In the bench's own process those
threads took the GIL from the fake Telnyx API and the simulator, whose timestamps the step reads, so the
bench's own waiting was counted as the service's. Here the model has a GIL of its own; its timelines
(time.monotonic, one clock for every process on the machine) come back when the run is over.
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent / "tests"
START_TIMEOUT_S = 20.0


def _serve(connection: Any, options: dict[str, Any]) -> None:
    sys.path.insert(0, str(TESTS))
    from fake_openai import FakeOpenAI

    with FakeOpenAI(**options) as model:
        connection.send(model.base_url)
        connection.recv()  # asked for the timelines: the run is over
        connection.send([model.timeline(index) for index in range(len(model.requests))])


class ModelProcess:
    """FakeOpenAI(**options) served from a child process; `base_url` while in the `with` block."""

    def __init__(self, **options: Any):
        self.options = options
        self.base_url = ""

    def __enter__(self) -> ModelProcess:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, self.options), name="fake-model", daemon=True)
        self._process.start()
        if not self._connection.poll(START_TIMEOUT_S):
            self._process.kill()
            raise RuntimeError(f"the fake model did not start within {START_TIMEOUT_S:g} s")
        self.base_url = self._connection.recv()
        return self

    @property
    def pid(self) -> int:
        return self._process.pid

    def timelines(self) -> list[list[float]]:
        """For each request, oldest first: when it arrived, then when each token (or the whole answer) was sent."""
        self._connection.send("timelines")
        return self._connection.recv()

    def __exit__(self, *exc: object) -> None:
        self._process.kill()
        self._process.join(timeout=5)
        self._connection.close()
