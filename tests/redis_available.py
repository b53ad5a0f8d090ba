"""Whether the Redis tests can run here: skip them with one line on a laptop without redis-server, fail in CI."""

from __future__ import annotations

import os

import pytest

from simulator.redis_server import missing_redis_message, redis_server_binary

# .ci/run sets it, so a missing server can never pass as a skip.
REQUIRE_ENV = "RECEPTIONIST_REQUIRE_REDIS"


def require_redis_or_skip() -> str:
    """The redis-server path; without one, skip the test, or fail it when RECEPTIONIST_REQUIRE_REDIS=1."""
    binary = redis_server_binary()
    if binary is None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(missing_redis_message(), pytrace=False)
        pytest.skip(missing_redis_message())
    return binary
