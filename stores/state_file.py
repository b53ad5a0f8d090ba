"""The memory store's shared values, kept in a small JSON file so that they survive a restart.

One process only, like the rest of the memory store. Every change rewrites the whole file (it holds a few
kilobytes: the AI switch, the rollback guard's window, messages marked called back) to a temporary file that
then replaces it, so a crash mid-write leaves the previous version. A file that cannot be read is set aside
as `<path>.unreadable` and the service starts from the config's values, saying so in the log.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class StateFile:
    """SharedValues (stores/__init__.py) in this process's memory, written through to `path` (None: not kept)."""

    def __init__(self, path: str | None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._values: dict[str, Any] = self._load()

    def get(self, name: str) -> str | None:
        with self._lock:
            value = self._values.get(name)
        return value if isinstance(value, str) else None

    def put(self, name: str, value: str) -> None:
        with self._lock:
            self._values[name] = value
            self._save()

    def push(self, name: str, item: str, keep: int) -> list[str]:
        with self._lock:
            current = self._values.get(name)
            items = [item, *(current if isinstance(current, list) else [])][:keep]
            self._values[name] = items
            self._save()
            return list(items)

    def items(self, name: str) -> list[str]:
        with self._lock:
            current = self._values.get(name)
            return list(current) if isinstance(current, list) else []

    def drop(self, name: str) -> None:
        with self._lock:
            if self._values.pop(name, None) is not None:
                self._save()

    def _load(self) -> dict[str, Any]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            values = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(values, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            aside = self.path.with_name(self.path.name + ".unreadable")
            log.error("state file %s unreadable (%s): moved to %s; starting from the config's values",
                      self.path, exc, aside)
            try:
                os.replace(self.path, aside)
            except OSError:
                log.exception("could not move %s aside", self.path)
            return {}
        return values

    def _save(self) -> None:
        """Write through; a failed write is logged and the value kept in memory (it is lost at the next restart)."""
        if self.path is None:
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            temporary.write_text(json.dumps(self._values, ensure_ascii=False), encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError:
            log.exception("could not write the state file %s", self.path)
