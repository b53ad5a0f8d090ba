"""Carries out the dialog's decisions: routes events to their call, runs commands against Telnyx and the brain."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from brain import Brain, BrainError
from call_log import CallLog, build_record
from call_state import CallState
from calls import CallRegistry, SeenEvents
from commands import (
    Answer,
    AskBrain,
    BrainFailed,
    BrainReplied,
    CallExpired,
    FinishCall,
    Hangup,
    Speak,
    SpeakFailed,
    StartTimer,
    StartTranscription,
    StopPlayback,
    StopTranscription,
    TimerFired,
    Transfer,
    TransferFailed,
)
from config import Settings
from dialog import Policy, decide
from events import CallEvent, encode_client_state
from telnyx_client import CallControl, TelnyxError, command_id_for
from workers import Scheduler, SerialQueues

log = logging.getLogger(__name__)

TRANSFER_TAG = "xfer:"
HOUSEKEEPING_S = 60.0
# A caller still talking on a call this process holds no state for (it died with a previous worker).
ORPHAN_EVENTS = frozenset({"call.transcription", "call.dtmf.received"})
STATE_LOST = "call state lost (service restarted)"


class ServiceStopping(Exception):
    """The process is shutting down and will not take this event on; answer 503 so Telnyx delivers it again."""


class LegEvent:
    """A webhook about the transfer leg (B), delivered to the call it was transferred from (A)."""

    def __init__(self, event: CallEvent):
        self.event = event
        self.event_type = "leg." + event.event_type
        self.event_id = event.event_id
        self.payload = event.payload


class Receptionist:
    """Owns the live calls. `accept` is called on the request thread and only queues work."""

    def __init__(
        self,
        settings: Settings,
        telnyx: CallControl,
        brain: Brain,
        *,
        scheduler: Scheduler | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.policy = Policy.from_settings(settings)
        self.telnyx, self.brain, self.clock = telnyx, brain, clock
        self.voice = settings.get("assistant.voice")
        self.language = settings.get("assistant.language")
        self.transcription = {
            "transcription_engine": settings.get("transcription.engine"),
            "transcription_engine_config": {
                "transcription_engine": settings.get("transcription.engine"),
                "language": settings.get("transcription.language"),
            },
            "transcription_tracks": "inbound",
        }
        self.ring_timeout_s = settings.get("transfer.ring_timeout_s")
        self.redact = settings.get("call_log.redact_transcripts")
        self.call_log = CallLog(settings.get("call_log.path"))
        self.calls = CallRegistry(settings.get("calls.max_call_age_s"), clock=clock)
        self.seen = SeenEvents()
        self._stopping = threading.Event()
        self.queues = SerialQueues(self._process, workers=settings.get("calls.workers"))
        self.scheduler = scheduler or Scheduler()
        self.scheduler.call_later(HOUSEKEEPING_S, self._housekeeping)
        self._runners: dict[type, Callable[[CallState, Any, str], bool]] = {
            Answer: self._answer,
            Speak: self._speak,
            StartTranscription: self._start_transcription,
            StopTranscription: self._stop_transcription,
            StopPlayback: self._stop_playback,
            Transfer: self._transfer,
            Hangup: self._hangup,
            AskBrain: self._ask_brain,
            StartTimer: self._start_timer,
            FinishCall: self._finish,
        }

    # ------------------------------------------------------------ intake (request thread)

    def accept(self, event: CallEvent) -> bool:
        """Queue a verified event for its call; False when it is a redelivery and was dropped.

        While shutting down, an event for a call this process does not know (a new call, above all) raises
        ServiceStopping before it is marked seen: answering it here would strand the caller when we exit.
        """
        key, item = self._route(event)
        if self.stopping and self.calls.get(key) is None and not self.calls.has_ended(key):
            raise ServiceStopping(f"call={key} event={event.event_type} refused: shutting down")
        if not self.seen.first_time(event.event_id):
            log.info("call=%s event=%s duplicate id, dropped", event.call_control_id, event.event_type)
            return False
        self.queues.submit(key, item)
        return True

    def _route(self, event: CallEvent) -> tuple[str, Any]:
        """Transfer-leg events belong to the call they were transferred from."""
        cid = event.call_control_id
        if self.calls.get(cid) is not None or self.calls.has_ended(cid):
            return cid, event
        state = event.client_state
        origin = state[len(TRANSFER_TAG) :] if state and state.startswith(TRANSFER_TAG) else None
        if origin and origin != cid and self.calls.get(origin) is not None:
            return origin, LegEvent(event)
        return cid, event

    def stats(self) -> dict[str, int]:
        return {"live_calls": len(self.calls), "queued_events": self.queues.pending()}

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def shutdown(self) -> None:
        self.scheduler.stop()
        self.queues.shutdown(wait=True)

    # ------------------------------------------------------------ graceful exit (see gunicorn.conf.py)

    def begin_shutdown(self) -> None:
        """From now on, refuse events of calls this process does not hold (ServiceStopping)."""
        if not self._stopping.is_set():
            self._stopping.set()
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
        log.info("shutdown drain took %.2f s; live_calls=%d left without this process",
                 time.monotonic() - started, len(self.calls))
        return finished

    # ------------------------------------------------------------ processing (one call at a time)

    def _process(self, call_control_id: str, item: Any) -> None:
        state = self.calls.get(call_control_id)
        if state is None:
            if _ends_call(item):
                # The hangup overtook its call.initiated (Telnyx does not order webhooks): remember the call
                # ended, so the late call.initiated cannot open a call that would then live until expiry.
                self.calls.close(call_control_id)
                return
            if _orphaned(item):
                self._adopt(call_control_id, item)
                return
            if not _starts_call(item):
                log.debug("call=%s event=%s for no live call, ignored", call_control_id, item.event_type)
                return
            state = self.calls.open(call_control_id)
            if state is None:
                return
        log.info("call=%s event=%s", call_control_id, item.event_type)
        self._run(state, item, _origin(item))

    def _run(self, state: CallState, event: Any, origin: str) -> bool:
        """Carry out the dialog's commands for one event; False when one of them ended the run early."""
        state.last_event_at = self.clock()
        for index, command in enumerate(decide(state, event, self.policy)):
            command_id = command_id_for(state.call_control_id, origin, type(command).__name__, str(index))
            if not self._runners[type(command)](state, command, command_id):
                return False
        return True

    def _adopt(self, call_control_id: str, item: CallEvent) -> None:
        """The caller speaks on a call whose state died with a previous worker: hand them to a person.

        The dialog treats it as a failed brain (fallback line, then a transfer to the default
        destination), and the adopted call then lives like any other until its hangup.
        """
        state = self.calls.open(call_control_id)
        if state is None:
            return
        log.warning("call=%s event=%s for a call this process does not hold: %s; handing the caller to a person",
                    call_control_id, item.event_type, STATE_LOST)
        if not self._run(state, BrainFailed(STATE_LOST), _origin(item)):
            self.calls.close(call_control_id)  # Telnyx says the call is over: nobody to rescue

    # ------------------------------------------------------------ command runners: True = carry on

    def _answer(self, state: CallState, command: Answer, command_id: str) -> bool:
        return self._send(state, "answer", command_id)

    def _speak(self, state: CallState, command: Speak, command_id: str) -> bool:
        try:
            sent = self.telnyx.speak(
                state.call_control_id, command.text, self.voice, language=self.language, command_id=command_id
            )
        except TelnyxError as exc:
            log.error("call=%s speak failed: %s", state.call_control_id, exc)
            self._run(state, SpeakFailed(), command_id)
            return True
        if sent and state.turns and state.turns[-1].responded_at is None:
            state.turns[-1].responded_at = self.clock()
        return sent

    def _start_transcription(self, state: CallState, command: StartTranscription, command_id: str) -> bool:
        return self._send(state, "transcription_start", command_id, **self.transcription)

    def _stop_transcription(self, state: CallState, command: StopTranscription, command_id: str) -> bool:
        return self._send(state, "transcription_stop", command_id)

    def _stop_playback(self, state: CallState, command: StopPlayback, command_id: str) -> bool:
        return self._send(state, "playback_stop", command_id, stop="all")

    def _transfer(self, state: CallState, command: Transfer, command_id: str) -> bool:
        tag = encode_client_state(TRANSFER_TAG + state.call_control_id)
        try:
            return self.telnyx.transfer(
                state.call_control_id,
                command.to,
                timeout_secs=self.ring_timeout_s,
                target_leg_client_state=tag,
                command_id=command_id,
            )
        except TelnyxError as exc:
            log.error("call=%s transfer to %s failed: %s", state.call_control_id, command.destination, exc)
            self._run(state, TransferFailed(type(exc).__name__), command_id)
            return True

    def _hangup(self, state: CallState, command: Hangup, command_id: str) -> bool:
        return self._send(state, "hangup", command_id)

    def _ask_brain(self, state: CallState, command: AskBrain, command_id: str) -> bool:
        try:
            result: Any = BrainReplied(self.brain.reply(list(state.history), command.utterance))
        except BrainError as exc:
            result = BrainFailed(str(exc)[:200])
        except Exception as exc:  # a broken brain must not leave the caller in silence
            log.exception("call=%s brain crashed", state.call_control_id)
            result = BrainFailed(type(exc).__name__)
        self._run(state, result, command_id)
        return True

    def _start_timer(self, state: CallState, command: StartTimer, command_id: str) -> bool:
        cid, fired = state.call_control_id, TimerFired(command.name, command.token)
        self.scheduler.call_later(command.delay_s, lambda: self.queues.submit(cid, fired))
        return True

    def _finish(self, state: CallState, command: FinishCall, command_id: str) -> bool:
        self.call_log.write(build_record(state, self.clock(), self.redact))
        self.calls.close(state.call_control_id)
        log.info("call=%s finished outcome=%s", state.call_control_id, state.outcome)
        return False

    def _send(self, state: CallState, action: str, command_id: str, **body: Any) -> bool:
        """Send one verb; a Telnyx failure is logged and the call carries on with its next step."""
        try:
            return getattr(self.telnyx, action)(state.call_control_id, command_id=command_id, **body)
        except TelnyxError as exc:
            log.error("call=%s %s failed: %s", state.call_control_id, action, exc)
            return True

    def _housekeeping(self) -> None:
        for call_control_id in self.calls.expired():
            self.queues.submit(call_control_id, CallExpired())
        self.scheduler.call_later(HOUSEKEEPING_S, self._housekeeping)


def _starts_call(item: Any) -> bool:
    """Only an inbound call's first event creates state; anything else for an unknown call is stale."""
    return (
        isinstance(item, CallEvent)
        and item.event_type == "call.initiated"
        and item.payload.get("direction") == "incoming"
    )


def _orphaned(item: Any) -> bool:
    """An event showing a caller is still there, on a call this process has no state for."""
    return isinstance(item, CallEvent) and item.event_type in ORPHAN_EVENTS


def _ends_call(item: Any) -> bool:
    return isinstance(item, CallEvent) and item.event_type == "call.hangup"


def _origin(item: Any) -> str:
    """What a command's id derives from: the webhook id, or the timer that fired."""
    if isinstance(item, TimerFired):
        return f"timer:{item.name}:{item.token}"
    if isinstance(item, CallExpired):
        return "expired"
    return getattr(item, "event_id", "") or hashlib.sha256(repr(item).encode()).hexdigest()
