"""Carries out the dialog's commands: a Telnyx action, a question to the brain, a timer, or the end of the call.

A runner never calls back into the dialog. It returns what happened next, and the receptionist's loop
hands that to the dialog: nothing, a follow-up event (the brain's reply, a failed command), or CALL_OVER
when there is nothing more to do for this call (Telnyx says it has ended, or it was just finished).
Every Telnyx command fails the same way: the error is logged and comes back as a CommandFailed event.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Final

import metrics
from brains import Brain, BrainError, ReplyStream
from call_log import CallLog, build_record
from calls import CallRegistry, CallState
from commands import (
    Answer,
    AskBrain,
    Command,
    DeliverMessage,
    FinishCall,
    Hangup,
    HangupLeg,
    Speak,
    StartRecording,
    StartTimer,
    StartTranscription,
    StopPlayback,
    StopRecording,
    StopTranscription,
    TelnyxCommand,
    Transfer,
)
from config import Settings
from events import (
    BrainFailed,
    BrainReplied,
    BrainStreamed,
    CommandFailed,
    Event,
    TimerFired,
    speech_client_state,
    transfer_client_state,
)
from message_delivery import MessageDelivery
from staff_messages import StaffMessage, caller_name
from telnyx_client import CallControl, TelnyxError

log = logging.getLogger(__name__)

# Enough of a brain's error to recognise it in the call log, not a page of it.
MAX_REASON_CHARS = 200


class CallOver:
    """Nothing more to do for this call: drop the rest of the run."""

    def __repr__(self) -> str:
        return "CALL_OVER"


CALL_OVER: Final = CallOver()
# A streamed reply is an iterator of events, each decided on as it comes (Receptionist._run).
FollowUp = Event | Iterator[Event] | CallOver | None
# Puts an event on a call's queue after a delay: (delay_s, call_control_id, event).
Schedule = Callable[[float, str, Event], None]


class Runners:
    """One runner per command type; `run` is the only entry point."""

    def __init__(
        self,
        settings: Settings,
        telnyx: CallControl,
        brain: Brain,
        calls: CallRegistry,
        schedule: Schedule,
        clock: Callable[[], float],
        deliveries: MessageDelivery,
        on_finish: Callable[[CallState], None] = lambda state: None,
    ):
        self.on_finish = on_finish
        self.brain_name = metrics.brain_label(brain)
        self.telnyx, self.brain, self.calls, self.schedule, self.clock = telnyx, brain, calls, schedule, clock
        self.deliveries, self.business = deliveries, settings.business.name
        self.voice = settings.assistant.voice
        self.language = settings.assistant.language
        self.transcription = transcription_body(settings)
        self.ring_timeout_s = settings.transfer.ring_timeout_s
        # Detection, and a caller parked (not hung up) when the leg ends, so that a voicemail leg can be dropped.
        self.machine_detection = (
            {"answering_machine_detection": "detect", "park_after_unbridge": "self"}
            if settings.transfer.machine_detection else {}
        )
        self.redact = settings.call_log.redact_transcripts
        self.call_log = CallLog(settings.call_log.path)
        # Replies being streamed, by call, with the id of the webhook they answer (stop_reply).
        self._replies: dict[str, tuple[ReplyStream, str]] = {}
        self._replies_lock = threading.Lock()
        self._verbs: dict[type, Callable[[CallState, Any, str], bool]] = {
            Answer: self._answer,
            Speak: self._speak,
            StartTranscription: self._transcription_start,
            StopTranscription: self._transcription_stop,
            StopPlayback: self._playback_stop,
            Transfer: self._transfer,
            Hangup: self._hangup,
            HangupLeg: self._hangup_leg,
            StartRecording: self._record_start,
            StopRecording: self._record_stop,
        }

    def run(self, state: CallState, command: Command, command_id: str) -> FollowUp:
        """Carry out one command and say what happened next."""
        if isinstance(command, AskBrain):
            return self._ask_brain(state, command)
        if isinstance(command, StartTimer):
            self.schedule(command.delay_s, state.call_control_id, TimerFired(command.name, command.token))
            return None
        if isinstance(command, DeliverMessage):
            return self._deliver_message(state, command, command_id)
        if isinstance(command, FinishCall):
            return self._finish(state)
        return self._send(state, command, command_id)

    def _send(self, state: CallState, command: TelnyxCommand, command_id: str) -> FollowUp:
        """The one failure policy for Telnyx: an error goes back to the dialog; a call Telnyx says ended stops."""
        verb = self._verbs[type(command)]  # each named after its Call Control action
        try:
            sent = verb(state, command, command_id)
        except TelnyxError as exc:
            log.error("call=%s %s failed: %s", state.call_control_id, verb.__name__.lstrip("_"), exc)
            return CommandFailed(command, type(exc).__name__)
        return None if sent else CALL_OVER

    def _answer(self, state: CallState, command: Answer, command_id: str) -> bool:
        return self.telnyx.answer(state.call_control_id, command_id=command_id)

    def _speak(self, state: CallState, command: Speak, command_id: str) -> bool:
        tag = {"client_state": speech_client_state(command.tag)} if command.tag else {}
        sent = self.telnyx.speak(
            state.call_control_id, command.text, self.voice, language=self.language, command_id=command_id, **tag
        )
        if sent and state.turns and command.filler:
            state.turns[-1].held_at = self.clock()
        elif sent and state.turns:
            turn = state.turns[-1]
            turn.last_spoke_at = self.clock()
            if turn.responded_at is None:
                turn.responded_at = turn.last_spoke_at
                metrics.turn_answered(turn.responded_at - turn.received_at)
        return sent

    def _transcription_start(self, state: CallState, command: StartTranscription, command_id: str) -> bool:
        return self.telnyx.transcription_start(state.call_control_id, command_id=command_id, **self.transcription)

    def _transcription_stop(self, state: CallState, command: StopTranscription, command_id: str) -> bool:
        return self.telnyx.transcription_stop(state.call_control_id, command_id=command_id)

    def _playback_stop(self, state: CallState, command: StopPlayback, command_id: str) -> bool:
        return self.telnyx.playback_stop(state.call_control_id, command_id=command_id, stop="all")

    def _transfer(self, state: CallState, command: Transfer, command_id: str) -> bool:
        return self.telnyx.transfer(
            state.call_control_id,
            command.to,
            timeout_secs=self.ring_timeout_s,
            target_leg_client_state=transfer_client_state(state.call_control_id),
            command_id=command_id,
            **self.machine_detection,
        )

    def _hangup(self, state: CallState, command: Hangup, command_id: str) -> bool:
        return self.telnyx.hangup(state.call_control_id, command_id=command_id)

    def _record_start(self, state: CallState, command: StartRecording, command_id: str) -> bool:
        return self.telnyx.record_start(state.call_control_id, command_id=command_id, format="mp3", channels="dual")

    def _record_stop(self, state: CallState, command: StopRecording, command_id: str) -> bool:
        return self.telnyx.record_stop(state.call_control_id, command_id=command_id)

    def _hangup_leg(self, state: CallState, command: HangupLeg, command_id: str) -> bool:
        self.telnyx.hangup(command.leg, command_id=command_id)
        return True  # a leg already gone is what was wanted; the caller's call goes on either way

    def _ask_brain(self, state: CallState, command: AskBrain) -> Event | Iterator[Event]:
        if callable(getattr(self.brain, "stream", None)):
            return self._stream_reply(state, command)
        started = time.monotonic()
        follow_up, failure = self._brain_answer(state, command)
        metrics.brain_answered(self.brain_name, time.monotonic() - started, failure)
        return follow_up

    def _brain_answer(self, state: CallState, command: AskBrain) -> tuple[Event, str | None]:
        """The follow-up event, and what kind of failure it was (None when the brain answered)."""
        try:
            return BrainReplied(self.brain.reply(list(state.history), command.utterance)), None
        except BrainError as exc:
            return BrainFailed(str(exc)[:MAX_REASON_CHARS]), metrics.failure_kind(str(exc))
        except Exception as exc:  # a broken brain must not leave the caller in silence
            log.exception("call=%s brain crashed", state.call_control_id)
            return BrainFailed(type(exc).__name__), "crashed"

    def _stream_reply(self, state: CallState, command: AskBrain) -> Iterator[Event]:
        """The reply's parts as events, while `stop_reply` can reach it; a failure becomes BrainFailed."""
        call_control_id = state.call_control_id
        try:
            reply = self.brain.stream(list(state.history), command.utterance)  # type: ignore[attr-defined]
        except Exception as exc:  # a broken brain must not leave the caller in silence
            log.exception("call=%s brain crashed", call_control_id)
            yield BrainFailed(type(exc).__name__)
            return
        cause = state.turns[-1].event_id if state.turns else ""
        with self._replies_lock:
            self._replies[call_control_id] = (reply, cause)
        started, failure = time.monotonic(), None
        try:
            with contextlib.closing(reply.parts()) as parts:
                for part in parts:
                    yield BrainStreamed(part)
        except BrainError as exc:
            failure = metrics.failure_kind(str(exc))
            yield BrainFailed(str(exc)[:MAX_REASON_CHARS])
        except Exception as exc:
            failure = "crashed"
            log.exception("call=%s brain crashed", call_control_id)
            yield BrainFailed(type(exc).__name__)
        finally:
            metrics.brain_answered(self.brain_name, time.monotonic() - started, failure)
            with self._replies_lock:
                if self._replies.get(call_control_id, (None, ""))[0] is reply:
                    del self._replies[call_control_id]

    def stop_reply(self, call_control_id: str, event_id: str) -> bool:
        """Stop the call's reply being streamed in this process (any thread), unless it answers webhook `event_id`
        (that webhook, which may be running already, or a redelivery of it); True when one was stopped."""
        with self._replies_lock:
            reply, cause = self._replies.get(call_control_id, (None, ""))
        if reply is None or cause == event_id:
            return False
        reply.stop()
        log.info("call=%s reply stopped while being written", call_control_id)
        return True

    def _deliver_message(self, state: CallState, command: DeliverMessage, command_id: str) -> None:
        message = StaffMessage(state.call_control_id, state.caller, state.called, command.text, self.clock(),
                               self.business, caller_name(command.text))
        for delivery_id in self.deliveries.take(message, command_id):
            if delivery_id not in state.deliveries:  # the same event run again adds the same ids
                state.deliveries.append(delivery_id)

    def recording_saved_after_call(self, call_control_id: str, url: str | None) -> None:
        """A recording's file came after its call's line was written (as it usually does): a line of its own."""
        self.call_log.write({"record": "recording", "call_control_id": call_control_id, "recording_url": url,
                             "at": datetime.fromtimestamp(self.clock(), UTC).isoformat()})
        log.info("call=%s recording saved", call_control_id)

    def _finish(self, state: CallState) -> CallOver:
        record = build_record(state, self.clock(), self.redact)
        if state.deliveries:
            record["message_deliveries"] = self.deliveries.statuses(state.deliveries)
        self.call_log.write(record)
        self.calls.close(state.call_control_id)
        log.info("call=%s finished outcome=%s", state.call_control_id, state.outcome)
        self.on_finish(state)
        return CALL_OVER


def transcription_body(settings: Settings) -> dict[str, Any]:
    """The transcription_start body: the configured engine and language, the caller's side only."""
    engine = settings.transcription.engine
    return {
        "transcription_engine": engine,
        "transcription_engine_config": {
            "transcription_engine": engine,
            "language": settings.transcription.language,
        },
        "transcription_tracks": "inbound",
    }

