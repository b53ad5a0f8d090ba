"""The network's side of each call: legs, speech queues, transcription, transfers, hangups.

Commands arrive from the fake API (`handle_command`), the scripted caller acts through `say`, `press`
and `hang_up`, and every change becomes a webhook passed to `emit`. One lock guards all calls; the
`changed` condition wakes callers waiting for the assistant to finish speaking.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator import events
from simulator.events import Leg, WebhookEvent
from workers import Scheduler, Timer

CALL_ENDED = "90018"
UNKNOWN_CALL = "90015"
NOT_ANSWERED = "90034"
TRANSCRIPTION_RUNNING = "90054"
CHARS_PER_SECOND = 15.0
NEEDS_ANSWER = frozenset({"speak", "transcription_start", "transcription_stop", "playback_stop", "record_start",
                          "record_stop"})
ONE_SHOT = frozenset({"answer", "hangup", "reject"})


@dataclass
class TransferPlan:
    """What the transfer target does: answer after `ring_s` and talk for `talk_s`, or never answer.

    `machine`: a voicemail answers, and plays its greeting until someone hangs it up (as a real one records).
    """

    answer: bool = True
    ring_s: float = 2.0
    talk_s: float = 2.0
    machine: bool = False


@dataclass
class Speech:
    """One `speak` command as played to the caller."""

    text: str
    command_id: str | None
    started_at: float | None = None
    ended_at: float | None = None
    status: str | None = None
    timer: Timer | None = field(default=None, repr=False)


@dataclass
class Moment:
    """A line of the call's timeline (commands are kept by the fake API, not here)."""

    at: float
    kind: str
    text: str


@dataclass
class SimCall:
    """One inbound call: the caller's leg A, any transfer legs B, and everything that happened."""

    a: Leg
    transfer_plan: TransferPlan
    started_at: float = field(default_factory=time.monotonic)
    b_legs: list[Leg] = field(default_factory=list)
    timeline: list[Moment] = field(default_factory=list)
    speeches: list[Speech] = field(default_factory=list)
    current: Speech | None = None
    queued: deque[Speech] = field(default_factory=deque)
    answered: bool = False
    transcribing: bool = False
    bridged_to: str | None = None
    transfers: list[str] = field(default_factory=list)
    transfer_failed_at: float | None = None
    recording_since: str | None = None  # record_start's time while recording
    recordings_saved: int = 0
    ended_at: float | None = None
    hangup_source: str | None = None
    hangup_acked_at: float | None = None
    transcripts_sent: list[float] = field(default_factory=list)
    acted: list[str] = field(default_factory=list)
    duplicate_effects: int = 0

    @property
    def call_control_id(self) -> str:
        return self.a.call_control_id

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def speaking(self) -> bool:
        return self.current is not None or bool(self.queued)

    def note(self, kind: str, text: str) -> None:
        self.timeline.append(Moment(time.monotonic(), kind, text))


class Carrier:
    """Plays the network for many concurrent calls."""

    def __init__(self, emit: Callable[[WebhookEvent], None], speed: float = 1.0, scheduler: Scheduler | None = None):
        self.emit = emit
        self.speed = speed
        self.scheduler = scheduler or Scheduler()
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.calls: list[SimCall] = []
        self._legs: dict[str, tuple[SimCall, Leg]] = {}
        self._handlers: dict[str, Callable[[SimCall, Leg, dict[str, Any]], str | None]] = {
            "answer": self._answer, "reject": self._reject, "hangup": self._hangup, "speak": self._speak,
            "transcription_start": self._transcription_start, "transcription_stop": self._transcription_stop,
            "playback_stop": self._playback_stop, "transfer": self._transfer,
            "record_start": self._record_start, "record_stop": self._record_stop,
        }

    # ----- the caller's side -------------------------------------------------------------

    def place_call(self, from_number: str, to_number: str, plan: TransferPlan | None = None) -> SimCall:
        """A new inbound call, parked, announced with call.initiated."""
        leg = Leg("incoming", from_number, to_number, call_session_id=str(uuid.uuid4()))
        call = SimCall(leg, plan or TransferPlan())
        with self.lock:
            self.calls.append(call)
            self._legs[leg.call_control_id] = (call, leg)
            call.note("network", f"incoming call from {from_number} to {to_number}")
            self.emit(events.initiated(leg))
        return call

    def say(self, call: SimCall, transcript: str, confidence: float) -> bool:
        """The caller speaks; Telnyx only reports it when transcription is running."""
        with self.changed:
            if call.ended or not call.transcribing:
                call.note("caller", f"{transcript}  (not transcribed)")
                return False
            call.note("caller", f"{transcript}  [confidence {confidence:.2f}]")
            call.transcripts_sent.append(time.monotonic())
            self.emit(events.transcription(call.a, transcript, confidence))
            self.changed.notify_all()
            return True

    def press(self, call: SimCall, digit: str) -> bool:
        with self.changed:
            if call.ended:
                return False
            call.note("dtmf", f"(presses {digit})")
            call.transcripts_sent.append(time.monotonic())
            self.emit(events.dtmf_received(call.a, digit))
            self.changed.notify_all()
            return True

    def hang_up(self, call: SimCall) -> None:
        with self.changed:
            if not call.ended:
                call.note("caller", "(hangs up)")
                self._end_call(call, "normal_clearing", "caller")

    def wait(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Block until `predicate()` (evaluated under the lock) is true or the timeout passes."""
        with self.changed:
            return self.changed.wait_for(predicate, timeout=timeout_s)

    def delivered(self, event: WebhookEvent, attempt: Any) -> None:
        """Delivery listener: remember when the service acknowledged the caller's hangup."""
        if event.event_type != "call.hangup" or not attempt.ok:
            return
        with self.changed:
            found = self._legs.get(event.call_control_id)
            if found and found[1] is found[0].a and found[0].hangup_acked_at is None:
                found[0].hangup_acked_at = time.monotonic()
                self.changed.notify_all()

    # ----- commands from the service -----------------------------------------------------

    def handle_command(self, call_control_id: str, action: str, body: dict[str, Any]) -> str | None:
        """Apply one accepted command; return a Telnyx error code when the call state forbids it."""
        with self.changed:
            found = self._legs.get(call_control_id)
            if found is None:
                return UNKNOWN_CALL
            call, leg = found
            if leg.state == "hangup":
                return CALL_ENDED
            if action in NEEDS_ANSWER and leg.state == "parked":
                return NOT_ANSWERED
            if isinstance(body.get("client_state"), str):
                leg.client_state = body["client_state"]
            error = self._handlers[action](call, leg, body)
            if error is None:
                self._count_effect(call, leg, action)
            self.changed.notify_all()
            return error

    def _count_effect(self, call: SimCall, leg: Leg, action: str) -> None:
        key = f"{leg.call_control_id}:{action}"
        if action in ONE_SHOT and key in call.acted:
            call.duplicate_effects += 1
        call.acted.append(key)

    def _answer(self, call: SimCall, leg: Leg, body: dict[str, Any]) -> str | None:
        if leg.state != "parked":
            return None  # counted as a duplicate effect; no second call.answered
        leg.state = "answered"
        call.answered = True
        call.note("network", "answered")
        self.emit(events.answered(leg))
        return None

    def _reject(self, call: SimCall, leg: Leg, body: dict[str, Any]) -> str | None:
        self._end_leg(call, leg, "call_rejected", "callee")
        return None

    def _hangup(self, call: SimCall, leg: Leg, body: dict[str, Any]) -> str | None:
        if leg is call.a:
            self._end_call(call, "normal_clearing", "callee")
            return None
        bridged = leg.state == "answered"
        self._end_leg(call, leg, "normal_clearing", "callee")
        if bridged:
            call.bridged_to, call.transfer_failed_at = None, time.monotonic()
            call.note("network", f"{leg.to_number} hung up by the service; bridge ended")
            if not leg.park_after_unbridge:  # Telnyx's default: the other leg is hung up too
                self._end_call(call, "normal_clearing", "callee")
        return None

    def _transcription_start(self, call: SimCall, leg: Leg, body: dict[str, Any]) -> str | None:
        if call.transcribing:
            return TRANSCRIPTION_RUNNING
        call.transcribing = True
        return None

    def _transcription_stop(self, call: SimCall, leg: Leg, body: dict[str, Any]) -> str | None:
        call.transcribing = False
        return None

    # ----- recording ------------------------------------------------------------------------

    def _record_start(self, call: SimCall, leg: Leg, body: dict[str, Any]) -> str | None:
        if call.recording_since is None:
            call.recording_since = events.now_iso()
            call.note("network", f"recording ({body['channels']} channel, {body['format']})")
        return None

    def _record_stop(self, call: SimCall, leg: Leg, body: dict[str, Any]) -> str | None:
        self._save_recording(call)
        return None

    def _save_recording(self, call: SimCall) -> None:
        """Stop recording, if it was, and report the file as Telnyx does, with call.recording.saved."""
        if call.recording_since is None:
            return
        call.note("network", "recording stopped and saved")
        self.emit(events.recording_saved(call.a, call.recording_since))
        call.recording_since = None
        call.recordings_saved += 1

    # ----- speech ---------------------------------------------------------------------------

    def _speak(self, call: SimCall, leg: Leg, body: dict[str, Any]) -> str | None:
        if body.get("stop") in ("current", "all"):
            self._stop_speech(call, body["stop"])
        speech = Speech(body["payload"], body.get("command_id"))
        if any(s.text == speech.text for s in ([call.current] if call.current else []) + list(call.queued)):
            call.duplicate_effects += 1  # the same words already playing or queued: the caller would hear them twice
        call.speeches.append(speech)
        call.queued.append(speech)
        if call.current is None:
            self._start_next_speech(call)
        return None

    def _playback_stop(self, call: SimCall, leg: Leg, body: dict[str, Any]) -> str | None:
        self._stop_speech(call, body.get("stop", "all"))
        return None

    def _stop_speech(self, call: SimCall, stop: str) -> None:
        if stop == "all":
            call.queued.clear()
        if call.current is not None:
            # The spec's speak.ended statuses are completed|call_hangup|cancelled_amd: completed fits best.
            self._finish_speech(call, call.current, "completed", start_next=(stop != "all"))

    def _start_next_speech(self, call: SimCall) -> None:
        if not call.queued or call.ended:
            return
        speech = call.current = call.queued.popleft()
        speech.started_at = time.monotonic()
        call.note("assistant", speech.text)
        self.emit(events.speak_started(call.a))
        duration = len(speech.text) / CHARS_PER_SECOND * self.speed
        speech.timer = self.scheduler.call_later(duration, lambda: self._speech_timer(call, speech))

    def _speech_timer(self, call: SimCall, speech: Speech) -> None:
        with self.changed:
            if call.current is speech:
                self._finish_speech(call, speech, "completed")
                self.changed.notify_all()

    def _finish_speech(self, call: SimCall, speech: Speech, status: str, start_next: bool = True) -> None:
        if speech.timer:
            speech.timer.cancel()
        speech.ended_at, speech.status = time.monotonic(), status
        call.current = None
        self.emit(events.speak_ended(call.a, status))
        if start_next:
            self._start_next_speech(call)

    # ----- transfer -------------------------------------------------------------------------

    def _transfer(self, call: SimCall, leg: Leg, body: dict[str, Any]) -> str | None:
        if any(b.state != "hangup" for b in call.b_legs):
            call.duplicate_effects += 1  # a second transfer while the first is still ringing or bridged
        b_leg = Leg("outgoing", body.get("from", call.a.to_number), body["to"], call.a.call_session_id,
                    client_state=body.get("target_leg_client_state"), state="bridging",
                    machine_detection=body.get("answering_machine_detection", "disabled") != "disabled",
                    park_after_unbridge=body.get("park_after_unbridge") == "self")
        call.b_legs.append(b_leg)
        call.transfers.append(body["to"])
        self._legs[b_leg.call_control_id] = (call, b_leg)
        call.note("network", f"ringing {body['to']}")
        self.emit(events.initiated(b_leg))
        plan = call.transfer_plan
        if plan.answer:
            self.scheduler.call_later(plan.ring_s * self.speed, lambda: self._b_answers(call, b_leg))
        else:
            ring_s = min(plan.ring_s * self.speed, float(body.get("timeout_secs", 30)))
            self.scheduler.call_later(ring_s, lambda: self._b_times_out(call, b_leg))
        return None

    def _b_answers(self, call: SimCall, b_leg: Leg) -> None:
        with self.changed:
            if b_leg.state == "hangup":
                return
            if call.ended:
                self._end_leg(call, b_leg, "originator_cancel", "caller")
                return
            b_leg.state = "answered"
            call.bridged_to = b_leg.to_number
            machine = call.transfer_plan.machine
            call.note("network", f"{b_leg.to_number} answered{' by voicemail' if machine else ''}; bridged")
            self.emit(events.answered(b_leg))
            self.emit(events.bridged(call.a))
            self.emit(events.bridged(b_leg))
            if b_leg.machine_detection:
                self.emit(events.machine_detection_ended(b_leg, "machine" if machine else "human"))
            if not machine:
                self.scheduler.call_later(call.transfer_plan.talk_s * self.speed, lambda: self.hang_up(call))
            self.changed.notify_all()

    def _b_times_out(self, call: SimCall, b_leg: Leg) -> None:
        with self.changed:
            if b_leg.state != "hangup":
                call.note("network", f"{b_leg.to_number} did not answer")
                call.transfer_failed_at = time.monotonic()
                self._end_leg(call, b_leg, "timeout", "callee")
                self.changed.notify_all()

    # ----- ending ---------------------------------------------------------------------------

    def _end_call(self, call: SimCall, cause: str, source: str) -> None:
        """Hang up leg A (speech in progress ends with call_hangup) and every B leg still up."""
        call.queued.clear()
        if call.current is not None:
            self._finish_speech(call, call.current, "call_hangup", start_next=False)
        call.transcribing = False
        call.hangup_source = source
        self._end_leg(call, call.a, cause, source)
        self._save_recording(call)
        call.ended_at = time.monotonic()
        for b_leg in call.b_legs:
            if b_leg.state != "hangup":
                self._end_leg(call, b_leg, "normal_clearing" if b_leg.state == "answered" else "originator_cancel",
                              source)
        self.changed.notify_all()

    def _end_leg(self, call: SimCall, leg: Leg, cause: str, source: str) -> None:
        if leg.state == "hangup":
            return
        leg.state = "hangup"
        self.emit(events.hangup(leg, cause, source))
        if leg is call.a and not call.ended:
            call.ended_at = time.monotonic()
            call.hangup_source = source
