"""The AI kill switch and its automatic rollback guard, kept in the store's shared values.

The switch says whether new calls get the assistant (and which share of callers, the canary). It starts from
the config (`ai.enabled`, `ai.canary_percent`); a change, from the operator page, a script (`/admin/ai`) or the
guard, is kept in the store, so every worker and instance applies it to its next new call and it survives a
restart. Calls already in progress keep what they got.

The guard watches the last `rollback.window_calls` calls the assistant handled. When, once that many have
finished, the share with a brain failure or the share handed to a person exceeds its threshold, it switches
the AI off: every new call then goes straight to a person. Only a person switches it back on; that also starts
a fresh window, so the calls that tripped the guard do not trip it again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import metrics
from calls import CallState
from config import RollbackConfig, Settings
from stores import SharedValues, StoreUnavailable

log = logging.getLogger(__name__)

SWITCH = "ai_switch"
HISTORY = "ai_switch_history"
WINDOW = "rollback_window"
HISTORY_KEPT = 50
GUARD = "rollback guard"


@dataclass(frozen=True)
class AiSetting:
    """What the next new call gets, and who decided it when (and why, when the guard did)."""

    enabled: bool
    canary_percent: float
    changed_at: float | None = None  # None: the config's values, never changed
    source: str = "config"
    reason: str | None = None

    @property
    def tripped(self) -> bool:
        """Switched off by the rollback guard, not yet switched back on by a person."""
        return not self.enabled and self.source == GUARD


class AiSwitch:
    """Reads and changes the AI setting in the shared values; a store that cannot be read keeps the last one seen."""

    def __init__(self, shared: SharedValues, settings: Settings, clock: Callable[[], float] = time.time):
        self.shared, self.clock = shared, clock
        self._last = AiSetting(settings.ai.enabled, settings.ai.canary_percent)

    def current(self) -> AiSetting:
        try:
            stored = self.shared.get(SWITCH)
        except StoreUnavailable:
            return self._last  # the webhook itself would be refused; keep answering with what we knew
        if stored is not None:
            self._last = AiSetting(**json.loads(stored))
        return self._last

    def change(self, enabled: bool, canary_percent: float, source: str, reason: str | None = None) -> AiSetting:
        """Apply to every worker's next new call; logged and kept in the history with its time and source."""
        before = self.current()
        setting = AiSetting(enabled, float(canary_percent), self.clock(), source, reason)
        text = json.dumps(asdict(setting))
        self.shared.put(SWITCH, text)
        self.shared.push(HISTORY, text, HISTORY_KEPT)
        if enabled and not before.enabled:
            self.shared.drop(WINDOW)  # a fresh start: the calls that tripped the guard are not counted again
        self._last = setting
        log.warning("ai switch: enabled=%s canary_percent=%g by %s%s", enabled, canary_percent, source,
                    f" ({reason})" if reason else "")
        return setting

    def history(self) -> list[AiSetting]:
        """The latest changes, newest first."""
        return [AiSetting(**json.loads(text)) for text in self.shared.items(HISTORY)]


# ---------------------------------------------------------------- the rollback guard


@dataclass(frozen=True)
class Verdict:
    """How one call the assistant handled went, as the guard counts it."""

    brain_failed: bool
    escalated: bool


def verdict(state: CallState) -> Verdict:
    """A call with a failed brain answer; a call handed to a person or a message (dialog.escalate)."""
    reason = state.escalation_reason or ""
    return Verdict(brain_failed=reason.startswith("brain failed"), escalated=state.transfer_attempted)


def breach(window: list[Verdict], config: RollbackConfig) -> tuple[str, str] | None:
    """(metric reason, words) when a full window crosses a threshold, else None."""
    if len(window) < config.window_calls:
        return None
    failed = sum(v.brain_failed for v in window) / len(window)
    escalated = sum(v.escalated for v in window) / len(window)
    if failed > config.max_brain_failure_share:
        return "brain_failures", (f"brain failed on {failed:.0%} of the last {len(window)} calls "
                                  f"(limit {config.max_brain_failure_share:.0%})")
    if escalated > config.max_escalation_share:
        return "escalations", (f"{escalated:.0%} of the last {len(window)} calls went to a person "
                               f"(limit {config.max_escalation_share:.0%})")
    return None


class RollbackGuard:
    """Counts each finished call the assistant handled; trips the switch when the window breaches."""

    def __init__(self, shared: SharedValues, switch: AiSwitch, config: RollbackConfig):
        self.shared, self.switch, self.config = shared, switch, config

    def call_finished(self, state: CallState) -> None:
        if not state.ai:
            return  # a call that went straight to a person says nothing about the assistant
        try:
            self._count(verdict(state))
        except StoreUnavailable:
            log.warning("call=%s rollback guard: store unavailable, call not counted", state.call_control_id)

    def _count(self, call: Verdict) -> None:
        items = self.shared.push(WINDOW, json.dumps(asdict(call)), self.config.window_calls)
        found = breach([Verdict(**json.loads(item)) for item in items], self.config)
        if found is None or not self.switch.current().enabled:
            return
        kind, words = found
        self.switch.change(False, self.switch.current().canary_percent, GUARD, words)
        metrics.ai_rolled_back(kind)
        log.error("rollback guard: AI switched off, every new call goes to a person: %s", words)

    def window(self) -> list[Verdict]:
        return [Verdict(**json.loads(item)) for item in self.shared.items(WINDOW)]
