"""Owns the live calls: routes each event to its call, then runs the one loop of dialog and runners.

The loop, for one event of one call: the dialog decides commands; the runners carry them out; whatever a
runner reports back (the brain's reply, a failed command) goes to the dialog again, until nothing is left.
Where calls live between events, and who runs which call's events, is the store's business (stores/).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace

import metrics
from ai_switch import AiSwitch, RollbackGuard
from brains import Brain
from calls import CallState, Phase
from config import Settings
from dialog import Policy, cuts_reply, decide, recording_url
from events import BrainFailed, CallEvent, CallExpired, Event, LegEvent, TimerFired
from message_delivery import build_message_delivery
from runners import CALL_OVER, Runners
from stores import QueuedEvent, Store, build_store
from telnyx_client import CallControl, command_id_for
from workers import Scheduler

log = logging.getLogger(__name__)
# A caller still talking on a call this process holds no state for (it died with a previous worker).
ORPHAN_EVENTS = frozenset({"call.transcription", "call.dtmf.received"})
STATE_LOST = "call state lost (service restarted)"


class ServiceStopping(Exception):
    """The process is shutting down and will not take this event on; answer 503 so Telnyx delivers it again."""


class Receptionist:
    """Owns the live calls. `accept` is called on the request thread and only queues work."""

    def __init__(
        self,
        settings: Settings,
        telnyx: CallControl,
        brain: Brain,
        *,
        scheduler: Scheduler | None = None,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.policy = Policy.from_settings(settings)
        self.clock = clock
        self._stopping = threading.Event()
        self.scheduler = scheduler or Scheduler()
        self.store = store or build_store(settings, self.scheduler, clock)
        self.deliveries = build_message_delivery(settings, self.store, clock)
        self.switch = AiSwitch(self.store.shared, settings, clock)
        self.guard = RollbackGuard(self.store.shared, self.switch, settings.rollback)
        self.runners = Runners(settings, telnyx, brain, self.store.calls, self.store.schedule, clock, self.deliveries,
                               on_finish=self._finished)
        self.store.start(self._process)
        self.deliveries.start()
        self.calls, self.seen, self.queues = self.store.calls, self.store.seen, self.store.queues

    # ------------------------------------------------------------ intake (request thread)

    def accept(self, event: CallEvent) -> bool:
        """Queue a verified event for its call; False when it is a redelivery and was dropped.

        While shutting down, an event for a call this process does not know (a new call, above all) raises
        ServiceStopping before it is marked seen: answering it here would strand the caller when we exit.
        A store whose calls outlive the process (Redis) takes it anyway: another process will run it.
        Raises StoreUnavailable when the store cannot take it (after a timeout it may have been queued all the
        same; its redelivery is then a duplicate).
        """
        key, item = self._route(event)
        if self.stopping and not self.store.outlives_process and not self.calls.known(key):
            raise ServiceStopping(f"call={key} event={event.event_type} refused: shutting down")
        if not self.store.accept(event.event_id, key, item):
            log.info("call=%s event=%s duplicate id, dropped", event.call_control_id, event.event_type)
            return False
        if item is event and cuts_reply(event):
            self.runners.stop_reply(key, event.event_id)  # now, not when the worker busy with that reply gets here
        return True

    def _route(self, event: CallEvent) -> tuple[str, QueuedEvent]:
        """Transfer-leg events belong to the call they were transferred from (when it is not live, see `_process`)."""
        cid, origin = event.call_control_id, event.transferred_from
        # Asked only of a tagged event: in Redis each question is a round trip on the request thread.
        if origin and not self.calls.known(cid) and self.calls.is_live(origin):
            return origin, LegEvent(event)
        return cid, event

    def stats(self) -> dict[str, int]:
        return {"live_calls": len(self.calls), "queued_events": self.queues.pending()}

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def shutdown(self) -> None:
        self.deliveries.stop()
        self.store.shutdown()
        close = getattr(self.runners.brain, "close", None)  # the LLM brain's kept-alive connections to the model
        if callable(close):
            close()

    # ------------------------------------------------------------ graceful exit (see gunicorn.conf.py)

    def begin_shutdown(self) -> None:
        """From now on, refuse events of calls this process does not hold (ServiceStopping)."""
        if not self._stopping.is_set():
            self._stopping.set()
            self.store.begin_shutdown()
            if self.store.outlives_process:
                log.info("shutting down: the calls this process runs are handed back to the store")
            else:
                log.info("shutting down: live_calls=%d; new calls are refused with 503", len(self.calls))

    def drain(self, timeout_s: float) -> bool:
        """Finish the work already queued (brain replies, speaks) for up to `timeout_s`, then drop the rest.

        Timers stop first: a silence reprompt or speech guard that has not fired is lost. False when
        queued work had to be dropped; an item already running still finishes (or the master kills us).
        """
        self.begin_shutdown()
        self.scheduler.stop()
        started = time.monotonic()
        finished = self.queues.wait_idle(timeout_s)
        dropped = {} if finished else self.queues.discard_pending()
        for call_control_id, count in dropped.items():
            log.warning("call=%s shutdown: %d queued event(s) dropped after %.0f s", call_control_id, count, timeout_s)
        self.queues.shutdown(wait=False)
        log.info("shutdown drain took %.2f s", time.monotonic() - started)
        return finished

    # ------------------------------------------------------------ processing (one call at a time)

    def _process(self, call_control_id: str, item: Event) -> None:
        state = self.calls.get(call_control_id)
        if state is None and _on_a_transfer_leg(item):
            # The call it was transferred from is not live here (a restart, an expiry, a hangup race): the person
            # on this leg pressing keys or speaking must start neither a dialog nor a rescue (`_adopt`).
            log.info("call=%s event=%s on a transfer leg whose call is not live here: left alone",
                     call_control_id, item.event_type)
            return
        if _orphaned(item) and (state is None or _never_initiated(state)):
            self._adopt(call_control_id, item)
            return
        if state is None:
            if _ends_call(item):
                # The hangup overtook its call.initiated (Telnyx does not order webhooks): remember the call
                # ended, so the late call.initiated cannot open a call that would then live until expiry.
                self.calls.close(call_control_id)
                return
            if _recording_saved(item) and self.calls.has_ended(call_control_id):
                self.runners.recording_saved_after_call(call_control_id, recording_url(item.payload))
                return
            if not _starts_call(item):
                log.debug("call=%s event=%s for no live call, ignored", call_control_id, item.event_type)
                return
            state = self.calls.open(call_control_id)
            if state is None:
                return
        log.info("call=%s event=%s", call_control_id, item.event_type)
        self._run(state, item, _origin(item))

    def _run(self, state: CallState, event: Event, origin: str) -> bool:
        """Decide and carry out, until no follow-up is left; False when the call is over.

        `origin` is what the command ids derive from: the webhook's id, the timer, or the command whose
        outcome is the follow-up. A redelivered or re-run event therefore sends the same command ids.
        """
        pending: deque[tuple[Event, str]] = deque([(event, origin)])
        while pending:
            event, origin = pending.popleft()
            state.last_event_at = self.clock()
            for index, command in enumerate(decide(state, event, self._policy_for(event))):
                command_id = command_id_for(state.call_control_id, origin, type(command).__name__, str(index))
                follow_up = self.runners.run(state, command, command_id)
                if follow_up is CALL_OVER:
                    return False
                if isinstance(follow_up, Iterator):
                    if not self._run_each(state, follow_up, command_id):
                        return False
                elif follow_up is not None:
                    pending.append((follow_up, command_id))
        return True

    def _run_each(self, state: CallState, events: Iterator[Event], origin: str) -> bool:
        """A streamed reply: each part is decided on and carried out as it comes, before the next is read."""
        with contextlib.closing(events):  # stops the stream when the call is over before it is
            for number, event in enumerate(events):
                if not self._run(state, event, f"{origin}:{number}"):
                    return False
        return True

    def _policy_for(self, event: Event) -> Policy:
        """A new call gets the AI switch as it is now (ai_switch.py); the switch is read only then."""
        if event.event_type != "call.initiated":
            return self.policy
        setting = self.switch.current()
        return replace(self.policy, ai_enabled=setting.enabled, canary_percent=setting.canary_percent)

    def _finished(self, state: CallState) -> None:
        metrics.call_finished(state.outcome, state.escalation_reason, state.ai)
        self.guard.call_finished(state)

    def _adopt(self, call_control_id: str, item: CallEvent) -> None:
        """The caller speaks on a call whose state died with a previous worker: hand them to a person.

        The dialog treats it as a failed brain (fallback line, then a transfer to the default
        destination), and the adopted call then lives like any other until its hangup. A call known only
        from a call.answered (whose call.initiated this process never saw) is adopted the same way.
        """
        state = self.calls.open(call_control_id)
        if state is None:
            return
        log.warning("call=%s event=%s for a call this process does not hold: %s; handing the caller to a person",
                    call_control_id, item.event_type, STATE_LOST)
        if not self._run(state, BrainFailed(STATE_LOST), _origin(item)):
            self.calls.close(call_control_id)  # Telnyx says the call is over: nobody to rescue


def _starts_call(item: Event) -> bool:
    """Only an inbound call's first event creates state; anything else for an unknown call is stale.

    That is its call.initiated, or its call.answered when that came first: the state then remembers the
    answer and waits for the call.initiated (dialog.on_answered). A transfer leg's events never do.
    """
    if not isinstance(item, CallEvent):
        return False
    if item.event_type == "call.initiated":
        return item.payload.get("direction") == "incoming"
    return item.event_type == "call.answered"


def _on_a_transfer_leg(item: Event) -> bool:
    """A webhook tagged as a transfer leg's; an incoming call's call.initiated is a new call whatever its tag says."""
    if not isinstance(item, CallEvent) or item.transferred_from is None:
        return False
    return not (item.event_type == "call.initiated" and item.payload.get("direction") == "incoming")


def _never_initiated(state: CallState) -> bool:
    """A call known only from a call.answered that overtook its call.initiated, which never came."""
    return state.phase is Phase.RINGING and not state.initiated


def _orphaned(item: Event) -> bool:
    """An event showing a caller is still there, on a call this process has no state for."""
    return isinstance(item, CallEvent) and item.event_type in ORPHAN_EVENTS


def _recording_saved(item: Event) -> bool:
    return isinstance(item, CallEvent) and item.event_type == "call.recording.saved"


def _ends_call(item: Event) -> bool:
    return isinstance(item, CallEvent) and item.event_type == "call.hangup"


def _origin(item: Event) -> str:
    """What a command's id derives from: the webhook id, or the timer that fired."""
    if isinstance(item, TimerFired):
        return f"timer:{item.name}:{item.token}"
    if isinstance(item, CallExpired):
        return "expired"
    if isinstance(item, CallEvent | LegEvent) and item.event_id:
        return item.event_id
    return hashlib.sha256(repr(item).encode()).hexdigest()
