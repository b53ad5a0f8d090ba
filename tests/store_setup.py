"""Running the service on either store in tests: key prefixes that keep tests apart on one Redis."""

from __future__ import annotations

import uuid


def isolated_prefix() -> str:
    """A key prefix of its own for each service a test builds, so tests sharing the session's Redis never meet."""
    return f"test-{uuid.uuid4().hex[:12]}:"


def with_own_store(settings):
    """The same settings on a key prefix of their own: a second, independent deployment on the same Redis."""
    return settings.model_copy(update={"redis": settings.redis.model_copy(update={"key_prefix": isolated_prefix()})})
