"""The simulator's own tests: the carrier, the fake Call Control API, webhook delivery, scenarios, end to end."""

from __future__ import annotations

import pytest

from simulator.carrier import Carrier

# Every conftest.py outside a package is imported as the module `conftest`, the last one loaded winning, and


@pytest.fixture
def carrier():
    """A carrier whose webhooks are kept in `carrier.events` instead of being delivered; speech runs 100x fast."""
    events: list = []
    carrier = Carrier(events.append, speed=0.01)
    carrier.events = events
    yield carrier
    carrier.scheduler.stop()
