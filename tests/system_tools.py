"""Debian binaries some tests need beside redis-server: skip with one line on a machine without them, fail in CI.

.ci/run installs them and sets each tool's RECEPTIONIST_REQUIRE_* variable, so a missing binary there can never
pass as a skip (tests/redis_available.py does the same for redis-server).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Tool:
    binaries: tuple[str, ...]
    require_env: str
    install: str

    def paths_or_skip(self) -> list[str]:
        """The binaries' paths; without one, skip the test, or fail it when the require variable is 1."""
        found = [shutil.which(name) or (name if os.access(name, os.X_OK) else None) for name in self.binaries]
        if all(found):
            return found
        missing = ", ".join(name for name, path in zip(self.binaries, found, strict=True) if path is None)
        message = f"{missing} not found: install with `{self.install}`"
        if os.environ.get(self.require_env) == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


PROMTOOL = Tool(("promtool",), "RECEPTIONIST_REQUIRE_PROMTOOL",
                "apt-get install -y prometheus (Debian/Ubuntu; promtool comes with it) or brew install prometheus")
CHROMIUM = Tool(("/usr/bin/chromium", "/usr/bin/chromedriver"), "RECEPTIONIST_REQUIRE_CHROMIUM",
                "apt-get install -y chromium chromium-driver (Debian)")
