"""The reliability suite: the Telnyx API, the model, the network and the process failing while calls go on.

Each test records what it tried and what held with `figures.record`, after its assertions; `make soak`
runs every one of them, the long ones marked `soak` included, and rewrites RELIABILITY.md from that run.
"""

from __future__ import annotations

import pytest

from simulator.fake_telnyx import FakeTelnyx

# Every conftest.py outside a package is imported as the module `conftest`, the last one loaded winning, and


@pytest.fixture
def fake_telnyx():
    """The simulator's Call Control API on loopback, without a carrier: every well-formed command for any call is
    accepted unless a fault is scripted (`plan`, `always`)."""
    with FakeTelnyx() as fake:
        yield fake
