"""The security suite: forged, replayed, oversize, malformed and fuzzed webhooks; leaked secrets; prompt injection.

Each test records what it tried and what held with `figures.record`, after its assertions; `make soak`
runs every one of them, the long ones marked `soak` included, and rewrites RELIABILITY.md from that run.
"""

from __future__ import annotations

import pytest

from background import watching_logs

# Every conftest.py outside a package is imported as the module `conftest`, the last one loaded winning, and


@pytest.fixture
def logs():
    """Every log record any thread emits during the test, at every level."""
    with watching_logs() as records:
        yield records
