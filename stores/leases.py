"""One call's events run one at a time, in arrival order, by whichever process holds the call's lease.

The protocol (the scripts are in stores/scripts.py; each step is one atomic script on the Redis server):

1. Intake (ACCEPT, on the request thread). A webhook id is marked seen and the event is appended to its
   call's inbox in one step, and the call is put on `ready` (score: now) unless it is there already. The
   request is answered at once; nothing else happens on the request thread.
2. Claim (CLAIM, each process's dispatcher thread: at once when its own request thread queued something,
   otherwise every POLL_S). Due timers are moved into their calls' inboxes first. Then, for each call on
   `ready` whose score has come, the process tries to take the call's lease (SET NX PX lease_ms). Won: the
   call's score becomes the lease's expiry and the call is run on the process's pool. Lost: someone else
   holds it; the score becomes that lease's expiry, when the call is looked at again. A call claimed
   MAX_CLAIMS times without its first event being committed has that event dropped, logged as an error: each
   process that ran it died or stalled (a poison event), and the call's later events must not wait for ever.
3. Run. The holder runs the inbox's first event; the event stays in the inbox meanwhile. CLAIM hands it the
   event with the call's state and tombstone, and each COMMIT the next event, so a call's events run without
   reading Redis again: only the lease holder writes a call, and it knows what it wrote.
4. Commit (COMMIT). Only while `lease` still names the holder: the call's new state, its tombstone or the
   timers it armed are written, the event is dropped from the inbox, and either the lease is extended and
   the next event returned (back to 3), or, the inbox being empty, the lease is given up and the call
   leaves `ready`. An ACCEPT that lands between two events finds the call on `ready` (its score is the
   lease's expiry), and the holder finds the event in the inbox before it can give the lease up.
5. Renewal (RENEW, every lease_s / 3 from the dispatcher thread) keeps the leases of calls being run, so a
   slow model reply does not cost the lease.

On expiry. A holder that dies (SIGKILL, a lost machine) stops renewing; its lease lapses after at most
lease_s, the call's score on `ready` comes due at the same moment, and the next CLAIM by any process takes the
call over and runs the unfinished event again, from the state the last COMMIT wrote. Every command id
derives from the event, so Telnyx does the repeated commands once. A holder that was only slow finds at
COMMIT that the lease is gone: it writes nothing and leaves the call to the new holder (the Telnyx commands
it sent were the same ids). A process that is shutting down commits its current event and hands the call
back (the lease is given up, the call is due at once), so a deploy costs no lease_s wait.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from events import LegEvent, TimerFired
from stores import Handler, StoreUnavailable, scripts
from stores.codec import CorruptRecord, load_event

if TYPE_CHECKING:
    from stores.redis import RedisStore

log = logging.getLogger(__name__)

# How often a dispatcher looks for work it was not told about: another process's call, a lapsed lease, a timer.
POLL_S = 0.05
# Claims of one event before it is dropped as a poison event (see the docstring).
MAX_CLAIMS = 3
# After a Redis error the dispatcher waits this long before trying again.
ERROR_PAUSE_S = 0.5


@dataclass(frozen=True)
class Snapshot:
    """A call as last committed: its state (JSON, None when there is none) and whether it has ended."""

    state: bytes | str | None = None
    ended: bool = False


class LeaseLost(Exception):
    """Another process took the call over while this one ran an event; this one's work is not written."""


class LeasedQueues:
    """CallQueues over Redis: the dispatcher thread claims calls, the pool runs them (see the module docstring)."""

    def __init__(self, store: RedisStore, lease_s: float, workers: int):
        self.store, self.redis = store, store.redis
        self.lease_ms = int(lease_s * 1000)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.workers = workers
        self._claim = self.redis.register_script(scripts.CLAIM)
        self._commit = self.redis.register_script(scripts.COMMIT)
        self._renew = self.redis.register_script(scripts.RENEW)
        self._release = self.redis.register_script(scripts.RELEASE)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="call")
        self._held: dict[str, str] = {}  # lease token -> call id, for each call this process is running
        self._claiming = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self._handle: Handler | None = None
        self._thread = threading.Thread(target=self._dispatch, name="dispatcher", daemon=True)

    def start(self, handle: Handler) -> None:
        self._handle = handle
        self._thread.start()

    def wake(self) -> None:
        """Something was queued or fired: claim now instead of at the next poll."""
        self._wake.set()

    # ------------------------------------------------------------ CallQueues

    def pending(self) -> int:
        """Calls with events queued or running, in every process."""
        with self.store.outage.guard():
            return int(self.redis.zcard(self.store.key("ready")))

    def held(self) -> list[str]:
        """The calls this process is running now."""
        with self._lock:
            return sorted(set(self._held.values()))

    def idle(self) -> bool:
        """Nothing running here, and (unless shutting down) nothing any process could claim right now.

        Redis is asked first: a claim that lands after that answer shows in `_claiming` or `_held` below.
        """
        if not self._stopping.is_set():
            with self.store.outage.guard():
                if self.redis.zcount(self.store.key("ready"), "-inf", int(time.time() * 1000)):
                    return False
        with self._lock:
            return not (self._held or self._claiming)

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.idle():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def discard_pending(self) -> dict[str, int]:
        """Nothing to discard: queued events wait in Redis for whichever process serves next."""
        return {}

    def begin_shutdown(self) -> None:
        self._stopping.set()
        self._wake.set()

    def shutdown(self, wait: bool = True) -> None:
        self._stopping.set()
        self._closed.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=wait)

    # ------------------------------------------------------------ the dispatcher thread

    def _dispatch(self) -> None:
        next_renewal = time.monotonic()
        while not self._closed.is_set():
            self._wake.wait(POLL_S)
            self._wake.clear()
            try:
                if time.monotonic() >= next_renewal:
                    self._renew_leases()
                    next_renewal = time.monotonic() + self.lease_ms / 3000
                if not self._stopping.is_set():
                    self._claim_calls()
            except StoreUnavailable:
                self._closed.wait(ERROR_PAUSE_S)  # logged once by the outage
            except Exception:  # the top of background work: log it and keep dispatching
                log.exception("lease dispatcher failed")
                self._closed.wait(ERROR_PAUSE_S)

    def _claim_calls(self) -> None:
        with self._lock:
            wanted = self.workers - len(self._held)
            self._claiming = True
        try:
            with self.store.outage.guard():
                claimed, dropped = self._claim(args=[self.store.prefix, self.owner, self.lease_ms, wanted,
                                                     self.store.inbox_ttl_ms, MAX_CLAIMS])
            for raw_id, raw_event in zip(dropped[::2], dropped[1::2], strict=True):
                log.error("call=%s %s dropped after %d claims: each process that ran it stopped before finishing",
                          raw_id.decode(), _describe(raw_event), MAX_CLAIMS)
            for raw_id, raw_token, first, state, ended in _rows(claimed, scripts.CLAIMED_FIELDS):
                call_control_id, token = raw_id.decode(), raw_token.decode()
                with self._lock:
                    self._held[token] = call_control_id
                self._pool.submit(self._run_call, call_control_id, token, first, Snapshot(state, bool(ended)))
        finally:
            with self._lock:
                self._claiming = False
        if claimed and len(claimed) >= scripts.CLAIMED_FIELDS * wanted:
            self._wake.set()  # there may be more: look again without waiting for the poll

    def _renew_leases(self) -> None:
        with self._lock:
            pairs = [item for token, call_control_id in self._held.items() for item in (call_control_id, token)]
        if not pairs:
            return
        with self.store.outage.guard():
            lost = self._renew(args=[self.store.prefix, self.lease_ms, *pairs])
        with self._lock:
            still_running = set(self._held.values())
        for call_control_id in {raw.decode() for raw in lost} & still_running:  # not just committed and let go
            log.warning("call=%s lease lapsed while running: another worker may take the call over", call_control_id)

    # ------------------------------------------------------------ running one call (a pool thread)

    def _run_call(self, call_control_id: str, token: str, raw: bytes | None, snapshot: Snapshot) -> None:
        """Run the call's events while its inbox has any; `raw` and `snapshot` are what CLAIM read for the first."""
        try:
            if raw is None:
                self._give_back(call_control_id, token)
            while raw is not None:
                raw, snapshot = self._run_event(call_control_id, token, raw, snapshot)
        except StoreUnavailable:
            pass  # logged once by the outage; the lease lapses and the events wait in Redis
        except LeaseLost:
            log.warning("call=%s lease lost while running an event: another worker took the call over; "
                        "this worker's result is dropped", call_control_id)
        except Exception:  # the top of background work: log it; the lease lapses and the event runs again
            log.exception("call=%s background work failed", call_control_id)
        finally:
            with self._lock:
                self._held.pop(token, None)

    def _run_event(self, call_control_id: str, token: str, raw: bytes,
                   snapshot: Snapshot) -> tuple[bytes | None, Snapshot]:
        """Run the inbox's first event and commit it: the next event (None when the lease was given up) and
        the call as this commit left it, which only the lease holder can change."""
        with self.store.unit_of_work(call_control_id, snapshot) as unit:
            self._handle_one(call_control_id, raw)
        args = self.store.commit_args(unit, token, self.lease_ms, hand_back=self._stopping.is_set())
        with self.store.outage.guard():
            result = self._commit(args=args)
        if result[0] == -1:
            raise LeaseLost(call_control_id)
        self.store.arm_local_timers(unit)
        return (result[1] if len(result) > 1 else None), unit.committed()

    def _handle_one(self, call_control_id: str, raw: bytes) -> None:
        try:
            event = load_event(raw)
        except CorruptRecord as exc:
            log.error("call=%s queued event unreadable, dropped: %s", call_control_id, exc)
            return
        try:
            self._handle(call_control_id, event)
        except StoreUnavailable:
            raise  # nothing is committed: the event stays first in the inbox
        except Exception:  # as in memory: log it, keep what the event did, and serve the call's next event
            log.exception("call=%s background work failed", call_control_id)

    def _give_back(self, call_control_id: str, token: str) -> None:
        with self.store.outage.guard():
            self._release(args=[self.store.prefix, call_control_id, token])


def _rows(flat: list, width: int) -> Iterator[tuple]:
    """A script's flat list as rows of `width` values."""
    return zip(*[iter(flat)] * width, strict=True)


def _describe(raw_event: bytes) -> str:
    """What a dropped event was (`call.transcription`, `timer silence`), without its content."""
    try:
        event = load_event(raw_event)
    except CorruptRecord:
        return "an unreadable event"
    if isinstance(event, LegEvent):
        return f"transfer-leg event {event.event.event_type}"
    if isinstance(event, TimerFired):
        return f"timer {event.name}"
    return f"event {getattr(event, 'event_type', type(event).__name__)}"
