"""Webhook delivery the way Telnyx does it: signed, concurrent, 2 s timeout, retries with backoff.

Chaos switches add duplicates (the same event twice, sometimes at once), reordering (an event held
back so the next overtakes it) and jitter. Several target URLs stand for service instances behind a
load balancer: each attempt picks one by the `spread` policy.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, get_args

import requests

from simulator import departure
from simulator.events import WebhookEvent
from simulator.signing import WebhookSigner

Spread = Literal["random", "round_robin"]
SPREADS: tuple[str, ...] = get_args(Spread)


@dataclass
class DeliveryOptions:
    """How webhooks reach the service. Rates are probabilities per event."""

    timeout_s: float = 2.0
    max_attempts: int = 3
    backoff_s: tuple[float, ...] = (0.2, 0.5, 1.0)
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    reorder_delay_s: float = 0.15
    jitter_s: float = 0.0
    workers: int = 32
    seed: int | None = None
    spread: Spread = "random"


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of one event: when, which attempt, to which URL, and how it answered (status None = no answer)."""

    event_id: str
    event_type: str
    call_control_id: str
    attempt: int
    started_at: float
    latency_s: float
    status: int | None
    duplicate: bool = False
    target: str = ""
    sent_at: float | None = None  # when its last byte had gone to the kernel (simulator/departure.py); None: never

    @property
    def left_at(self) -> float:
        """When the webhook left the simulator: its bytes sent, or (if none went out) when it was started."""
        return self.started_at if self.sent_at is None else self.sent_at

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class DeliveryLog:
    """Every attempt, thread-safe; listeners hear about each one."""

    attempts: list[DeliveryAttempt] = field(default_factory=list)
    listeners: list[Callable[[WebhookEvent, DeliveryAttempt], None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, event: WebhookEvent, attempt: DeliveryAttempt) -> None:
        with self.lock:
            self.attempts.append(attempt)
        for listener in self.listeners:
            listener(event, attempt)


class Targets:
    """The webhook URLs of the service's instances and the load balancer's choice among them."""

    def __init__(self, urls: str | Sequence[str], spread: Spread = "random", seed: int | None = None):
        self.urls: tuple[str, ...] = (urls,) if isinstance(urls, str) else tuple(urls)
        if not self.urls:
            raise ValueError("no webhook target URL")
        if spread not in SPREADS:
            raise ValueError(f"unknown spread {spread!r}; expected one of {', '.join(SPREADS)}")
        self.spread = spread
        # Its own generator, so target picks on pool threads never shift the chaos switches' draws.
        self._random = random.Random(None if seed is None else f"targets/{seed}")
        self._turns = itertools.count()
        self._lock = threading.Lock()

    def pick(self, failed: Collection[str] = ()) -> str:
        """The URL for the next attempt; one that already failed this webhook only when all have."""
        candidates = tuple(url for url in self.urls if url not in failed) or self.urls
        if len(candidates) == 1:
            return candidates[0]
        with self._lock:
            if self.spread == "round_robin":
                return candidates[next(self._turns) % len(candidates)]
            return self._random.choice(candidates)


class WebhookDelivery:
    """Posts events from a thread pool to one webhook URL, or spreads them over several."""

    def __init__(self, url: str | Sequence[str], signer: WebhookSigner, options: DeliveryOptions | None = None):
        self.signer = signer
        self.options = options or DeliveryOptions()
        self.targets = Targets(url, self.options.spread, self.options.seed)
        self.log = DeliveryLog()
        self._random = random.Random(self.options.seed)
        self._pool = ThreadPoolExecutor(max_workers=self.options.workers, thread_name_prefix="sim-webhook")
        self._local = threading.local()
        self._pending = 0
        self._idle = threading.Condition()

    @property
    def url(self) -> str:
        """The first target URL (the only one, unless several were given)."""
        return self.targets.urls[0]

    @url.setter
    def url(self, url: str | Sequence[str]) -> None:
        self.targets = Targets(url, self.options.spread, self.options.seed)

    def deliver(self, event: WebhookEvent) -> None:
        """Queue an event; chaos switches may add a duplicate or hold it back."""
        delay = self._delay()
        self._submit(event, delay, duplicate=False)
        if self._chance(self.options.duplicate_rate):
            concurrent = self._chance(0.5)
            self._submit(event, delay if concurrent else delay + self.options.reorder_delay_s, duplicate=True)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Block until every queued delivery has finished (or the timeout passes)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _delay(self) -> float:
        delay = self._random.uniform(0, self.options.jitter_s) if self.options.jitter_s else 0.0
        if self._chance(self.options.reorder_rate):
            delay += self.options.reorder_delay_s
        return delay

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    def _submit(self, event: WebhookEvent, delay_s: float, duplicate: bool) -> None:
        with self._idle:
            self._pending += 1
        self._pool.submit(self._deliver_all_attempts, event, delay_s, duplicate)

    def _deliver_all_attempts(self, event: WebhookEvent, delay_s: float, duplicate: bool) -> None:
        try:
            if delay_s:
                time.sleep(delay_s)
            failed: set[str] = set()
            for attempt in range(1, self.options.max_attempts + 1):
                record = self._post(event, attempt, duplicate, self.targets.pick(failed))
                if record.ok:
                    return
                failed.add(record.target)
                if attempt < self.options.max_attempts:
                    time.sleep(self.options.backoff_s[min(attempt, len(self.options.backoff_s)) - 1])
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _post(self, event: WebhookEvent, attempt: int, duplicate: bool, target: str) -> DeliveryAttempt:
        body = json.dumps(event.envelope(attempt, target)).encode()
        departure.forget()
        started = time.monotonic()
        try:
            response = self._session().post(
                target, data=body, headers=self.signer.headers(body), timeout=self.options.timeout_s
            )
            status: int | None = response.status_code
        except requests.RequestException:
            status = None
        record = DeliveryAttempt(event.event_id, event.event_type, event.call_control_id, attempt, started,
                                 time.monotonic() - started, status, duplicate, target, departure.last_sent_at())
        self.log.add(event, record)
        return record

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = departure.note_sends(requests.Session())
            # Telnyx is not a Python client reading proxy variables and ~/.netrc before each webhook: without
            # this the simulator spends that CPU on every delivery, on the cores the service under test needs.
            session.trust_env = False
        return session
