"""Deliveries of staff messages: stored, sent by a background thread, retried with backoff, each exactly once.

How "exactly once" holds:
- A delivery's id derives from the command that took the message (its command_id, itself derived from the
  webhook), the channel and the recipient. Adding an id that is already there does nothing, so a redelivered
  webhook, an event run again after a crash, or a retried command adds nothing twice.
- A worker claims one due delivery at a time, for CLAIM_S. Claiming is atomic, so two threads, workers or
  instances never send the same delivery at once. If the sender dies mid-send, the claim lapses and another
  worker sends it again under the same id: the same `Idempotency-Key` for Telnyx, the same `webhook-id` for a
  webhook receiver, so the receiver acts once.
- A delivered id is remembered for DONE_TTL_S, so a late duplicate of the message finds it done.

The caller never waits: taking a message only adds it here (runners.py); sending happens on this module's
thread. `MemoryOutbox` lives in the process (deliveries not yet sent are lost with it, as calls are);
`stores.redis_outbox.RedisOutbox` shares the deliveries among every worker and instance and survives restarts.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from call_log import CallLog, mask_number
from stores import StoreUnavailable

log = logging.getLogger(__name__)

CLAIM_S = 60.0  # longer than any one send can take (message_senders.py: connect + read timeouts)
DONE_TTL_S = 7 * 24 * 3600  # how long a delivered or failed id is remembered
MAX_BACKOFF_S = 600.0
POLL_S = 0.25  # how often an idle worker looks for due deliveries another process added or a retry made due
FAILURE_PAUSE_S = 5.0  # after a round that failed (Redis unreachable, a bug): a pause, not a busy loop
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Delivery:
    """One message to one recipient over one channel ("sms" to a number, "webhook" to a URL)."""

    id: str
    channel: str
    to: str
    message: dict[str, Any]  # StaffMessage.as_dict()
    status: str = PENDING
    attempts: int = 0
    error: str | None = None

    @property
    def call_control_id(self) -> str:
        return str(self.message.get("call_control_id", ""))


class Outbox(Protocol):
    def add(self, delivery: Delivery, now: float) -> bool:
        """Store a new delivery, due now; False when its id is already known (nothing changes)."""

    def claim(self, now: float) -> Delivery | None:
        """The next due delivery, its attempt counted and held for CLAIM_S; None when nothing is due."""

    def settle(self, delivery: Delivery, now: float, retry_at: float | None = None) -> None:
        """After an attempt: `delivery.status` is final (delivered or failed), or it is due again at `retry_at`."""

    def status(self, delivery_id: str) -> str | None: ...


class MemoryOutbox:
    """The outbox in this process's memory: for the in-memory store."""

    def __init__(self, claim_s: float = CLAIM_S) -> None:
        self.claim_s = claim_s
        self._items: dict[str, Delivery] = {}
        self._due: dict[str, float] = {}  # pending ids -> when they may be sent next
        self._settled_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, delivery: Delivery, now: float) -> bool:
        with self._lock:
            self._forget_old(now)
            if delivery.id in self._items:
                return False
            self._items[delivery.id] = delivery
            self._due[delivery.id] = now
            return True

    def claim(self, now: float) -> Delivery | None:
        with self._lock:
            due = [(when, item_id) for item_id, when in self._due.items() if when <= now]
            if not due:
                return None
            item_id = min(due)[1]
            self._due[item_id] = now + self.claim_s
            claimed = replace(self._items[item_id], attempts=self._items[item_id].attempts + 1)
            self._items[item_id] = claimed
            return claimed

    def settle(self, delivery: Delivery, now: float, retry_at: float | None = None) -> None:
        with self._lock:
            self._items[delivery.id] = delivery
            if retry_at is not None and delivery.status == PENDING:
                self._due[delivery.id] = retry_at
            else:
                self._due.pop(delivery.id, None)
                self._settled_at[delivery.id] = now

    def status(self, delivery_id: str) -> str | None:
        with self._lock:
            item = self._items.get(delivery_id)
            return item.status if item else None

    def _forget_old(self, now: float) -> None:
        for item_id, at in list(self._settled_at.items()):
            if now - at > DONE_TTL_S:
                del self._settled_at[item_id], self._items[item_id]


class DeliveryFailed(Exception):
    """One attempt failed; `retry` says whether trying again may help (a timeout, a 5xx) or not (a 4xx)."""

    def __init__(self, reason: str, retry: bool):
        super().__init__(reason)
        self.retry = retry


Send = Callable[[Delivery], None]  # raises DeliveryFailed


def backoff_s(attempts: int, first_s: float, rng: Callable[[], float] = random.random) -> float:
    """The wait after `attempts` failed attempts: doubling from `first_s`, capped, with jitter (half to full)."""
    return min(MAX_BACKOFF_S, first_s * 2 ** (attempts - 1)) * (0.5 + rng() / 2)


@dataclass
class OutboxWorker:
    """The background thread: claims due deliveries, sends them, records what happened."""

    outbox: Outbox
    senders: dict[str, Send]  # channel -> send
    call_log: CallLog
    max_attempts: int
    first_backoff_s: float
    clock: Callable[[], float] = time.time
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="outbox", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the send in progress, if any; what is not sent yet waits in the outbox."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except StoreUnavailable:  # Redis away: logged once per outage by the store; deliveries wait there
                self._stop.wait(FAILURE_PAUSE_S)
                continue
            except Exception:  # a bug must not end deliveries for good
                log.exception("outbox: delivery round failed; trying again in %.0f s", FAILURE_PAUSE_S)
                self._stop.wait(FAILURE_PAUSE_S)
                continue
            if not worked:
                self._wake.wait(POLL_S)
                self._wake.clear()

    def run_once(self) -> bool:
        """Send one due delivery; False when none was due."""
        delivery = self.outbox.claim(self.clock())
        if delivery is None:
            return False
        self._attempt(delivery)
        return True

    def _attempt(self, delivery: Delivery) -> None:
        where = f"call={delivery.call_control_id} delivery={delivery.channel}:{_masked(delivery)}"
        try:
            self.senders[delivery.channel](delivery)
        except DeliveryFailed as exc:
            self._failed(delivery, str(exc), exc.retry, where)
            return
        log.info("%s delivered (attempt %d)", where, delivery.attempts)
        self._settle(replace(delivery, status=DELIVERED, error=None))

    def _failed(self, delivery: Delivery, reason: str, retry: bool, where: str) -> None:
        if retry and delivery.attempts < self.max_attempts:
            wait = backoff_s(delivery.attempts, self.first_backoff_s)
            log.warning("%s attempt %d failed (%s); next in %.1f s", where, delivery.attempts, reason, wait)
            failed = replace(delivery, error=reason)
            self.outbox.settle(failed, self.clock(), retry_at=self.clock() + wait)
            return
        log.error("%s failed for good after %d attempt(s): %s", where, delivery.attempts, reason)
        self._settle(replace(delivery, status=FAILED, error=reason))

    def _settle(self, delivery: Delivery) -> None:
        now = self.clock()
        self.outbox.settle(delivery, now)
        self.call_log.write(delivery_record(delivery, now))


def delivery_record(delivery: Delivery, at: float) -> dict[str, Any]:
    """The call-log line for a delivery's final status, beside the call's own line."""
    return {
        "record": "message_delivery",
        "call_control_id": delivery.call_control_id,
        "delivery_id": delivery.id,
        "channel": delivery.channel,
        "to": _masked(delivery),
        "status": delivery.status,
        "attempts": delivery.attempts,
        "error": delivery.error,
        "at": datetime.fromtimestamp(at, UTC).isoformat(),
    }


def _masked(delivery: Delivery) -> str:
    """A recipient for logs: numbers masked, a webhook URL reduced to its host."""
    if delivery.channel == "sms":
        return mask_number(delivery.to)
    return delivery.to.split("/")[2] if delivery.to.count("/") >= 2 else "webhook"
