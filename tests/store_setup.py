"""Running the service on either store in tests: key prefixes that keep tests apart on one Redis."""

from __future__ import annotations

import uuid


def isolated_prefix() -> str:
    """A key prefix of its own for each service a test builds, so tests sharing the session's Redis never meet."""
    return f"test-{uuid.uuid4().hex[:12]}:"


def with_own_store(settings):
    """The same settings on a key prefix of their own: a second, independent deployment on the same Redis."""
    return settings.model_copy(update={"redis": settings.redis.model_copy(update={"key_prefix": isolated_prefix()})})


# A share can never exceed 1, so these thresholds never trip the rollback guard (ai_switch.py).
GUARD_OFF = {"max_brain_failure_share": 1.0, "max_escalation_share": 1.0}


def without_operator_state(raw: dict) -> dict:
    """For tests about something else that build services from a raw config outside the `raw_config` fixture:
    the rollback guard never trips however many calls fail or go to a person, and the operator's state (the AI
    switch, the guard's window) is kept in memory, not in a file that services built later would read."""
    raw["rollback"] = dict(GUARD_OFF)
    raw["admin"] = {"state_path": ""}
    return raw
