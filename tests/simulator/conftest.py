"""The simulator's own tests: the carrier, the fake Call Control API, webhook delivery, scenarios, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.carrier import Carrier

# Every conftest.py outside a package is imported as the module `conftest`, the last one loaded winning, and
# tests/test_docs.py does `from conftest import ROOT`: so each conftest's ROOT is the repository root.
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def carrier():
    """A carrier whose webhooks are kept in `carrier.events` instead of being delivered; speech runs 100x fast."""
    events: list = []
    carrier = Carrier(events.append, speed=0.01)
    carrier.events = events
    yield carrier
    carrier.scheduler.stop()
