"""The Redis store: every worker and instance shares the calls, so any of them can take any webhook.

A call's events are run by whichever process holds the call's lease (stores/leases.py says how). While it
runs one event, the handler changes the call's state in place; that state, the timers it armed and the
event's removal from the inbox are then written in one atomic step, and only if the lease is still held
(stores/scripts.py, COMMIT). A process that dies mid-event has written nothing: the next holder runs the
event again from the same state, and the commands keep their deterministic ids, so Telnyx acts once.

Redis errors never escape as tracebacks: they become StoreUnavailable (the webhook is answered 503 and
Telnyx delivers it again), logged once when Redis goes away and once when it is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from calls import SEEN_TTL_S, CallState
from config import Settings
from events import CallExpired, TimerFired
from stores import Handler, QueuedEvent, StoreUnavailable, scripts
from stores.codec import dump_event, dump_state, load_state
from stores.leases import LeasedQueues, Snapshot
from workers import Scheduler

log = logging.getLogger(__name__)

# A call's state outlives calls.max_call_age_s by this much, so the expiry timer always finds it.
STATE_SLACK_S = 3600


class Outage:
    """Turns Redis errors into StoreUnavailable, and says so in the log once per outage, not per request."""

    def __init__(self):
        self.reason: str | None = None
        self._lock = threading.Lock()

    @contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            self.failed(f"{type(exc).__name__}: {exc}")
            raise StoreUnavailable(self.reason) from exc
        self.recovered()

    def failed(self, reason: str) -> None:
        with self._lock:
            was_up, self.reason = self.reason is None, reason
        if was_up:
            log.error("redis unavailable (%s): webhooks are refused with 503 until it is back", reason)

    def recovered(self) -> None:
        if self.reason is None:
            return
        with self._lock:
            was_down, self.reason = self.reason is not None, None
        if was_down:
            log.warning("redis is back: serving again")


@dataclass
class Unit:
    """What one event of one call leaves behind, written by COMMIT when the event is done.

    It starts from the call as the lease holder last saw it (Snapshot: from CLAIM, or from its own previous
    COMMIT), so reading the call costs no round trip.
    """

    call_control_id: str
    snapshot: Snapshot = field(default_factory=Snapshot)
    state: CallState | None = None
    loaded: bool = False
    closed: bool = False
    timers: list[tuple[float, str, bool]] = field(default_factory=list)  # (delay_s, member, fire locally)
    written: str | None = None  # the state COMMIT writes (commit_args), when it writes one

    @property
    def stored(self) -> str | None:
        """The state as committed before this event, to skip writing it back unchanged."""
        stored = self.snapshot.state
        return stored.decode() if isinstance(stored, bytes) else stored

    def load(self) -> CallState | None:
        if not self.loaded and not self.closed:
            stored = self.stored
            self.state = None if stored is None else load_state(stored)
            self.loaded = True
        return self.state

    def committed(self) -> Snapshot:
        """The call as COMMIT left it: what the next event of the same lease starts from."""
        if self.closed:
            return Snapshot(None, ended=True)
        if self.written is not None:
            return Snapshot(self.written, self.snapshot.ended)
        return self.snapshot


class RedisStore:
    """The Store on Redis: calls, seen ids, tombstones and timers under `redis.key_prefix` (stores/scripts.py)."""

    outlives_process = True

    def __init__(self, settings: Settings, scheduler: Scheduler, clock: Callable[[], float]):
        config = settings.redis
        self.redis = redis.Redis.from_url(
            settings.secrets.redis_url,
            socket_timeout=config.timeout_s,
            socket_connect_timeout=config.timeout_s,
            # One quick retry on a fresh connection after a dropped one (a restarted Redis); a timeout is not
            # retried, so a hung Redis is refused (503) after timeout_s, before Telnyx stops waiting.
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            health_check_interval=10,
        )
        self.prefix = config.key_prefix
        self.scheduler = scheduler
        self.outage = Outage()
        self.max_call_age_s = settings.calls.max_call_age_s
        self.inbox_ttl_ms = (self.max_call_age_s + STATE_SLACK_S) * 1000
        self._units = threading.local()
        self._fire = self.redis.register_script(scripts.FIRE)
        self._accept = self.redis.register_script(scripts.ACCEPT)
        self.calls = RedisCalls(self, clock)
        self.seen = RedisSeen(self)
        self.shared = RedisShared(self)
        self.queues = LeasedQueues(self, lease_s=config.lease_s, workers=settings.calls.workers)

    def key(self, kind: str, name: str = "") -> str:
        return f"{self.prefix}{kind}{name}"

    # ------------------------------------------------------------ Store

    def start(self, handle: Handler) -> None:
        self.queues.start(handle)

    def accept(self, event_id: str, call_control_id: str, event: QueuedEvent) -> bool:
        args = [self.prefix, event_id, call_control_id, dump_event(event), SEEN_TTL_S * 1000, self.inbox_ttl_ms]
        with self.outage.guard():
            queued = self._accept(args=args)
        if queued:
            self.queues.wake()
        return bool(queued)

    def schedule(self, delay_s: float, call_control_id: str, event: TimerFired | CallExpired) -> None:
        """Armed when the event commits; this process fires it on time, and any process if this one is gone."""
        local = isinstance(event, TimerFired)  # an expiry hours away is left to the pollers
        self.unit(call_control_id).timers.append((delay_s, timer_member(call_control_id, event), local))

    def health(self) -> str | None:
        try:
            with self.outage.guard():
                self.redis.ping()
        except StoreUnavailable as exc:
            return f"redis unavailable: {exc}"
        return None

    def begin_shutdown(self) -> None:
        self.queues.begin_shutdown()

    def shutdown(self) -> None:
        self.scheduler.stop()
        self.queues.shutdown(wait=True)
        self.redis.close()

    # ------------------------------------------------------------ one event's unit of work (stores/leases.py)

    @contextmanager
    def unit_of_work(self, call_control_id: str, snapshot: Snapshot) -> Iterator[Unit]:
        self._units.current = unit = Unit(call_control_id, snapshot)
        try:
            yield unit
        finally:
            self._units.current = None

    def unit(self, call_control_id: str) -> Unit:
        unit = getattr(self._units, "current", None)
        if unit is None or unit.call_control_id != call_control_id:
            raise RuntimeError(f"call={call_control_id} changed outside its own event")
        return unit

    def current_unit(self, call_control_id: str) -> Unit | None:
        unit = getattr(self._units, "current", None)
        return unit if unit is not None and unit.call_control_id == call_control_id else None

    def commit_args(self, unit: Unit, token: str, lease_ms: int, hand_back: bool) -> list:
        """COMMIT's ARGV for what the unit left behind (scripts.py, COMMIT)."""
        op, text, started_at = "none", "", 0.0
        if unit.closed:
            op = "close"
        elif unit.state is not None:
            text, started_at = dump_state(unit.state), unit.state.started_at
            op = "save" if text != unit.stored else "none"
            unit.written = text if op == "save" else None
        state_ttl_ms = (self.max_call_age_s + STATE_SLACK_S) * 1000
        args = [self.prefix, unit.call_control_id, token, lease_ms, op, text, state_ttl_ms,
                self.max_call_age_s * 1000, started_at, int(hand_back),
                timer_member(unit.call_control_id, CallExpired())]
        for delay_s, member, _ in unit.timers:
            args += [int(delay_s * 1000), member]
        return args

    def arm_local_timers(self, unit: Unit) -> None:
        """After COMMIT: fire this process's own timers from its scheduler, on time and without polling."""
        for delay_s, member, local in unit.timers:
            if local:
                self.scheduler.call_later(delay_s, lambda member=member: self.fire_timer(member))

    def fire_timer(self, member: str) -> None:
        try:
            with self.outage.guard():
                fired = self._fire(args=[self.prefix, member, self.inbox_ttl_ms])
        except StoreUnavailable:
            return  # still in the timers zset: any process's next poll fires it
        if fired:
            self.queues.wake()


def timer_member(call_control_id: str, event: TimerFired | CallExpired) -> str:
    """A timer's zset member: the same timer armed twice is one member (scripts.py, `fire`)."""
    return f"{len(call_control_id.encode())}:{call_control_id}{dump_event(event)}"


class RedisCalls:
    """CallStates in Redis. Inside an event's unit of work, reads come from and writes go to the unit."""

    def __init__(self, store: RedisStore, clock: Callable[[], float]):
        self.store, self.clock, self.redis = store, clock, store.redis

    def get(self, call_control_id: str) -> CallState | None:
        unit = self.store.current_unit(call_control_id)
        return self._read(call_control_id) if unit is None else unit.load()

    def open(self, call_control_id: str) -> CallState | None:
        state = self.get(call_control_id)
        if state is not None or self.has_ended(call_control_id):
            return state
        unit = self.store.unit(call_control_id)
        unit.state = CallState(call_control_id, started_at=self.clock())
        self.store.schedule(self.store.max_call_age_s, call_control_id, CallExpired())
        return unit.state

    def close(self, call_control_id: str) -> None:
        unit = self.store.unit(call_control_id)
        unit.state, unit.loaded, unit.closed = None, True, True

    def has_ended(self, call_control_id: str) -> bool:
        unit = self.store.current_unit(call_control_id)
        if unit is not None:
            return unit.closed or unit.snapshot.ended
        with self.store.outage.guard():
            return bool(self.redis.exists(self.store.key("ended:", call_control_id)))

    def is_live(self, call_control_id: str) -> bool:
        with self.store.outage.guard():
            return bool(self.redis.exists(self.store.key("call:", call_control_id)))

    def known(self, call_control_id: str) -> bool:
        keys = (self.store.key("call:", call_control_id), self.store.key("ended:", call_control_id))
        with self.store.outage.guard():
            return bool(self.redis.exists(*keys))

    def __len__(self) -> int:
        with self.store.outage.guard():
            return int(self.redis.zcard(self.store.key("live")))

    def snapshot(self, limit: int) -> list[CallState]:
        """Up to `limit` live calls, oldest first, as last committed (the operator page; read only)."""
        with self.store.outage.guard():
            ids = [cid.decode() for cid in self.redis.zrange(self.store.key("live"), 0, limit - 1)]
            texts = self.redis.mget([self.store.key("call:", cid) for cid in ids]) if ids else []
        return [load_state(text) for text in texts if text is not None]

    def _read(self, call_control_id: str) -> CallState | None:
        with self.store.outage.guard():
            text = self.redis.get(self.store.key("call:", call_control_id))
        return None if text is None else load_state(text)


class RedisSeen:
    def __init__(self, store: RedisStore):
        self.store = store

    def first_time(self, event_id: str) -> bool:
        with self.store.outage.guard():
            return bool(self.store.redis.set(self.store.key("seen:", event_id), 1, nx=True, ex=SEEN_TTL_S))


class RedisShared:
    """SharedValues under `<prefix>shared:`; they never expire (Redis persistence keeps them across restarts)."""

    def __init__(self, store: RedisStore):
        self.store, self.redis = store, store.redis

    def _key(self, name: str) -> str:
        return self.store.key("shared:", name)

    def get(self, name: str) -> str | None:
        with self.store.outage.guard():
            value = self.redis.get(self._key(name))
        return None if value is None else value.decode()

    def put(self, name: str, value: str) -> None:
        with self.store.outage.guard():
            self.redis.set(self._key(name), value)

    def push(self, name: str, item: str, keep: int) -> list[str]:
        key = self._key(name)
        with self.store.outage.guard():
            pipe = self.redis.pipeline(transaction=True)
            pipe.lpush(key, item).ltrim(key, 0, keep - 1).lrange(key, 0, -1)
            items = pipe.execute()[-1]
        return [value.decode() for value in items]

    def items(self, name: str) -> list[str]:
        with self.store.outage.guard():
            return [value.decode() for value in self.redis.lrange(self._key(name), 0, -1)]

    def drop(self, name: str) -> None:
        with self.store.outage.guard():
            self.redis.delete(self._key(name))
