"""The two ways the service runs, so that every step can measure both: memory mode and Redis mode.

Memory mode is the default deployment: no REDIS_URL, one gunicorn worker (it cannot run more, the calls
live in that process). Redis mode sets REDIS_URL and WEB_CONCURRENCY=2, one worker per core of the bench
machine, and gives every service it starts a fresh `redis.key_prefix`, so one redis-server serves the
whole run without one step seeing another's calls.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

REDIS_WORKERS = 2


@dataclass(frozen=True)
class Mode:
    """How to start a service (and its floor) in one mode: environment and config overrides."""

    name: str
    workers: int
    redis_url: str = ""

    @property
    def redis(self) -> bool:
        return bool(self.redis_url)

    @property
    def label(self) -> str:
        return f"{self.name}, {self.workers} worker{'s' if self.workers > 1 else ''}"

    def env(self) -> dict[str, str]:
        """WEB_CONCURRENCY always; REDIS_URL in Redis mode (gunicorn.conf.py refuses 2 workers without it)."""
        env = {"WEB_CONCURRENCY": str(self.workers)}
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env

    def overrides(self) -> dict[str, Any]:
        """A key prefix no earlier service used: each run starts from an empty store."""
        return {"redis.key_prefix": f"bench-{secrets.token_hex(4)}:"} if self.redis_url else {}


MEMORY = Mode("memory", 1)


def redis_mode(url: str) -> Mode:
    return Mode("redis", REDIS_WORKERS, url)
