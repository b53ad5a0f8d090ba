"""The conversation's decisions: from (call state, event) to a list of commands. No I/O happens here.

Every handler is a small function found by event type in HANDLERS. Handlers mutate the call's own
state (owned by one worker at a time) and return plain-data commands that `receptionist.py` carries out.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from brains import INTERRUPTED_MARK, Decision, Finished, Sentence, StillWriting, Turn
from calls import LISTENING, CallState, Phase, TurnRecord
from commands import (
    Answer,
    AskBrain,
    Command,
    DeliverMessage,
    FinishCall,
    Hangup,
    HangupLeg,
    Speak,
    StartTimer,
    StartTranscription,
    StopPlayback,
    StopTranscription,
    Transfer,
)
from config import Settings
from consent import declines_recording, notice_heard, recording_failed, recording_url, withdraw_consent
from events import (
    BrainFailed,
    BrainReplied,
    BrainStreamed,
    CallEvent,
    CallExpired,
    CommandFailed,
    Event,
    LegEvent,
    TimerFired,
)
from hours import OpeningHours

CHARS_PER_SECOND = 12  # a generous speaking rate, for the guard timer when call.speak.ended is lost
SPEECH_GUARD_S = 5.0  # added to that estimate: Telnyx's speech synthesis takes a moment to start
MAX_TRANSCRIPT_CHARS = 2000  # what one caller turn may carry into the brain and the call log
UNBRIDGED_TIMER, UNBRIDGED_WAIT_S = "unbridged", 2.0  # after the transfer leg hangs up, wait for the caller's hangup

# ---------------------------------------------------------------- policy (from config)


@dataclass(frozen=True)
class Policy:
    """The config values the dialog decides with."""

    lines: dict[str, str]
    min_asr_confidence: float
    min_confidence: float
    max_low_confidence_turns: int
    silence_timeout_s: float
    max_turns: int
    destinations: dict[str, str]
    default_destination: str | None
    ai_enabled: bool
    canary_percent: float
    hours: OpeningHours | None = None  # None: always open
    after_hours_destination: str | None = None
    machine_detection: bool = False
    recording: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            lines={**settings.assistant.model_dump(), "recording_notice": settings.recording.notice,
                   "recording_stopped": settings.recording.stopped},
            min_asr_confidence=settings.dialog.min_asr_confidence,
            min_confidence=settings.dialog.min_confidence,
            max_low_confidence_turns=settings.dialog.max_low_confidence_turns,
            silence_timeout_s=settings.dialog.silence_timeout_s,
            max_turns=settings.dialog.max_turns,
            destinations=settings.destinations,
            default_destination=settings.transfer.default_destination,
            ai_enabled=settings.ai.enabled,
            canary_percent=settings.ai.canary_percent,
            hours=settings.business.opening_hours(),
            after_hours_destination=settings.transfer.after_hours_destination,
            machine_detection=settings.transfer.machine_detection,
            recording=settings.recording.enabled,
        )


def in_canary(caller: str, percent: float) -> bool:
    """A stable bucket per caller number, so one caller always gets the same experience."""
    bucket = int.from_bytes(hashlib.sha256(caller.encode()).digest()[:4], "big") % 10_000
    return bucket < percent * 100


_PERSON = (
    r"(a |an |the |some |real |live )*"
    r"(human|person|people|someone|somebody|operator|receptionist|representative|agent|staff|front desk)"
)
_ASKS_FOR_PERSON = re.compile(
    rf"\b((speak|talk|connect|transfer|put|get)\b.{{0,30}}\b(to|with|through to)\s+{_PERSON}\b"
    rf"|^\s*{_PERSON}( please)?\s*$|\b(real|live) (person|human)\b|\boperator\b|\brepresentative\b)",
    re.IGNORECASE,
)


_LEAVE_MESSAGE = re.compile(r"\b(leave|take|pass on|give them) (a |my |them a )?message\b", re.IGNORECASE)


def asks_to_leave_message(utterance: str) -> bool:
    """"Can I leave a message?": go straight to taking it, whatever the brain would say."""
    return bool(_LEAVE_MESSAGE.search(utterance))


def asks_for_person(utterance: str) -> bool:
    """Policy, not prompt: a caller who asks for a human is put through whatever the brain thinks."""
    return bool(_ASKS_FOR_PERSON.search(utterance))


# ---------------------------------------------------------------- the decision entry point

Handler = Callable[[CallState, Any, Policy], list[Command]]


def decide(state: CallState, event: Event, policy: Policy) -> list[Command]:
    """What to do about one event; unknown events and anything after the call ended do nothing."""
    if state.phase is Phase.ENDED:
        return []
    if isinstance(event, CallEvent):
        notice_echo(state, event)
    handler = HANDLERS.get(event.event_type)
    return handler(state, event, policy) if handler else []


def notice_echo(state: CallState, event: CallEvent) -> None:
    """Any webhook carrying one of this call's speech numbers shows that Telnyx echoes them (on_speak_ended)."""
    tag = event.speech_tag
    if tag is not None and 0 < tag <= state.last_speech and not state.speech_echoed:
        state.speech_echoed, state.stale_speech_ends = True, 0


# ---------------------------------------------------------------- webhook handlers


def on_initiated(state: CallState, event: CallEvent, policy: Policy) -> list[Command]:
    """Answer an incoming call once; a second call.initiated under another webhook id changes nothing."""
    if state.initiated or state.phase is not Phase.RINGING or event.payload.get("direction") != "incoming":
        return []
    state.initiated = True
    state.caller = str(event.payload.get("from") or "")
    state.called = str(event.payload.get("to") or "")
    state.after_hours = policy.hours is not None and not policy.hours.is_open(event.received_at)
    state.ai = policy.ai_enabled and in_canary(state.caller, policy.canary_percent)
    if state.answered:  # its call.answered came first (Telnyx does not order webhooks): answering again is moot
        return greet(state, policy)
    return [Answer()]


def on_answered(state: CallState, event: CallEvent, policy: Policy) -> list[Command]:
    if state.answered or state.phase is not Phase.RINGING:
        return []
    state.answered = True
    if not state.initiated:
        return []  # greeted once its call.initiated says who is calling (on_initiated)
    return greet(state, policy)


def greet(state: CallState, policy: Policy) -> list[Command]:
    """The call is answered: greet the caller and listen, or hand them to a person when the AI is off."""
    state.phase = Phase.CONVERSING
    if not state.ai:
        return escalate(state, policy, "ai disabled for this call")
    greeting = state.after_hours and policy.lines.get("after_hours_greeting") or policy.lines["greeting"]
    if not policy.recording:
        return [*say(state, greeting), StartTranscription()]
    # The notice is part of the greeting; recording starts once that speech has played to its end (speech_ended).
    commands = say(state, f"{greeting} {policy.lines['recording_notice']}")
    state.recording, state.notice_speech = "pending", state.last_speech
    return [*commands, StartTranscription()]


def on_speak_ended(state: CallState, event: CallEvent, policy: Policy) -> list[Command]:
    """Count only the end of a speech still playing: not a stray one, a stopped one, or one already counted.

    Each speech carries its number in client_state (`say`), and Telnyx echoes it. An end without a number
    counts only on a call where Telnyx has echoed none so far: then nothing tells ends apart, and they are
    counted, skipping as many as were stopped by a barge-in.
    """
    tag = event.speech_tag
    if tag is not None:
        return speech_ended(state, policy) if playing(state, tag) else []
    if state.speech_echoed:
        return []  # Telnyx echoes this call's numbers: a speech without one is not this service's
    if state.stale_speech_ends:
        state.stale_speech_ends -= 1
        return []
    return speech_ended(state, policy)


def playing(state: CallState, tag: int) -> bool:
    """Speech number `tag` has not ended yet: speech plays in order, so the last `speaking` ones have not."""
    return state.last_speech - state.speaking < tag <= state.last_speech


def speech_ended(state: CallState, policy: Policy) -> list[Command]:
    """One queued speech has finished (or failed); when none is left, run what waited for it, or listen."""
    consent = notice_heard(state, state.last_speech - state.speaking + 1)  # speech plays in order: the oldest ended
    state.speaking = max(0, state.speaking - 1)
    if state.speaking:
        return consent
    state.reply_sentences = []  # all heard
    if state.after_speech is not None:
        pending, state.after_speech = state.after_speech, None
        return [*consent, pending]
    return consent + listen(state, policy)


def on_transcription(state: CallState, event: CallEvent, policy: Policy) -> list[Command]:
    data = event.payload.get("transcription_data")
    if not isinstance(data, dict) or state.phase not in LISTENING:
        return []
    text = data.get("transcript")
    if not isinstance(text, str) or not has_words(text):
        return []
    state.silence_token += 1
    state.silence_reprompted = False
    if data.get("is_final") is not True:
        return []
    barge_in = interrupt(state)
    turn = TurnRecord(text[:MAX_TRANSCRIPT_CHARS], asr_confidence(data.get("confidence")), event.received_at,
                      event_id=event.event_id)
    state.turns.append(turn)
    return barge_in + caller_turn(state, turn, policy)


# Characters a recogniser or a sender can emit that show nothing: fillers that Unicode files as letters or symbols.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_VISIBLE_CATEGORIES = ("L", "N", "P", "S")  # letters, digits, punctuation, symbols


def has_words(text: str) -> bool:
    """True when the text shows anything: not only whitespace, zero-width, control or combining characters."""
    return any(
        unicodedata.category(char)[0] in _VISIBLE_CATEGORIES and char not in _INVISIBLE for char in text
    )


def asr_confidence(value: Any) -> float | None:
    """A recogniser confidence in 0..1, or None (unknown) for anything else.

    JSON numbers can be huge ints (float() overflows) or 1e400 (infinity); neither may crash the
    worker or pass as certainty.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and not 0 <= value <= 1:
        return None
    value = float(value)
    return value if 0.0 <= value <= 1.0 else None


def on_dtmf(state: CallState, event: CallEvent, policy: Policy) -> list[Command]:
    if event.payload.get("digit") != "0" or state.phase not in LISTENING:
        return []
    state.silence_token += 1
    return interrupt(state) + escalate(state, policy, "caller pressed 0")


def on_hangup(state: CallState, event: CallEvent, policy: Policy) -> list[Command]:
    if state.phase is Phase.ENDING and state.outcome == "caller_hung_up":
        state.outcome = "hung_up_by_assistant"
    state.phase = Phase.ENDED
    state.after_speech = None
    return [FinishCall()]


def on_expired(state: CallState, event: CallExpired, policy: Policy) -> list[Command]:
    """Write off a call whose hangup never came: its log line, then forget it; nothing is sent to Telnyx.

    A bridged caller may well still be talking to the person they were put through to (a long call, or a
    lost hangup): the call keeps its outcome, and nothing on either leg disturbs them (receptionist._process).
    """
    if state.phase is not Phase.BRIDGED:
        state.outcome = "expired"
    state.phase = Phase.ENDED
    return [FinishCall()]


def on_leg_connected(state: CallState, event: CallEvent | LegEvent, policy: Policy) -> list[Command]:
    if state.phase is not Phase.TRANSFERRING:
        return []
    if policy.machine_detection and not state.person_on_leg:
        return []  # answered, but maybe by a voicemail: answering machine detection decides (on_machine_detected)
    state.phase = Phase.BRIDGED
    state.outcome = "transferred"
    return [StopTranscription()]


def on_leg_hangup(state: CallState, event: LegEvent, policy: Policy) -> list[Command]:
    if state.phase is Phase.BRIDGED and policy.machine_detection:
        # The transfer parks the caller when the leg ends (so that a voicemail can be dropped, on_machine_detected):
        # after a conversation with a person, that is the end of the call. When the caller hung up first, their own
        # call.hangup may still be on its way: wait a moment for it before hanging up a call that has ended.
        return [StartTimer(UNBRIDGED_TIMER, UNBRIDGED_WAIT_S, 0)]
    if state.phase is not Phase.TRANSFERRING:
        return []
    return offer_message(state, policy, "transfer not answered")


def on_machine_detected(state: CallState, event: LegEvent, policy: Policy) -> list[Command]:
    """Answering machine detection on the transfer leg: a machine is hung up and counts as nobody answering."""
    result = event.event.payload.get("result")
    if not policy.machine_detection or state.phase is not Phase.TRANSFERRING:
        return []  # not asked for (a stray result), or too late
    if result == "machine":
        return [HangupLeg(event.event.call_control_id), *offer_message(state, policy, "transfer reached voicemail")]
    if result not in ("human", "not_sure"):
        return []  # a result this service does not know: wait for the leg's other events
    state.person_on_leg = True  # a doubt is put through: better than a caller dropped
    return on_leg_connected(state, event, policy)


def on_command_failed(state: CallState, event: CommandFailed, policy: Policy) -> list[Command]:
    """Telnyx refused a command: carry on so that the caller is never left in silence."""
    failed = event.command
    recording_failed(state, failed)
    if isinstance(failed, Speak):
        if not playing(state, failed.tag):
            return []  # stopped or counted already
        return speech_ended(state, policy)  # nothing is playing: go on as if it had been heard
    if isinstance(failed, Transfer) and state.phase is Phase.TRANSFERRING:
        return offer_message(state, policy, f"transfer failed: {event.reason}")
    # Answer, hangup, starting or stopping transcription, stopping playback: logged by the runner, and the
    # call goes on. A transcription_start refused with 90054 means it is already running, for example.
    return []


def on_recording_saved(state: CallState, event: CallEvent, policy: Policy) -> list[Command]:
    """The recording's file is ready: keep its URL with the call's record (runners.py when the call has ended)."""
    state.recording_url = recording_url(event.payload) or state.recording_url
    return []


def on_brain_replied(state: CallState, event: BrainReplied, policy: Policy) -> list[Command]:
    reply, turn = event.reply, state.turns[-1] if state.turns else None
    if turn is not None:
        turn.brain_confidence, turn.action = reply.confidence, reply.action
    if reply.confidence < policy.min_confidence:
        return low_confidence(state, policy, "low brain confidence")
    state.low_confidence_streak = 0
    if reply.action == "transfer":
        # The brain's words may promise the department it named ("putting you through to +1 900 ...");
        # when policy refuses that name, the caller hears the configured announcement instead.
        words = reply.reply if reply.department is None or reply.department in policy.destinations else None
        return escalate(state, policy, "brain chose transfer", reply.department, words)
    remember(state, reply.reply, turn)
    if reply.action == "end":
        return end_call(state, policy, reply.reply)
    return say(state, reply.reply)


def on_brain_streamed(state: CallState, event: BrainStreamed, policy: Policy) -> list[Command]:
    """A reply being written: speak each sentence as it comes; apply the model's decision once it is all written."""
    part, turn = event.part, state.turns[-1] if state.turns else None
    if isinstance(part, Sentence):
        if state.phase is not Phase.CONVERSING or refused_transfer(state, policy):
            return []  # the words may promise a department that policy refuses: the caller hears the announcement
        if not state.reply_sentences:
            state.reply_first_speech = state.last_speech + 1
        state.reply_sentences.append(part.text)
        if turn is not None:
            turn.sentences += 1
        return say(state, part.text)
    if isinstance(part, StillWriting):
        if state.phase is not Phase.CONVERSING or state.reply_sentences or not policy.lines.get("holding"):
            return []
        return say(state, policy.lines["holding"], filler=True)  # fills the wait; the reply queues behind it
    if isinstance(part, Decision):
        if state.reply_action is None:  # the first decision counts: a model calling two tools is obeyed once
            state.reply_action, state.reply_department = part.action, part.department
        return []
    return streamed_reply_end(state, part, turn, policy)


def refused_transfer(state: CallState, policy: Policy) -> bool:
    department = state.reply_department
    return state.reply_action == "transfer" and department is not None and department not in policy.destinations


def streamed_reply_end(state: CallState, end: Finished, turn: TurnRecord | None, policy: Policy) -> list[Command]:
    """The whole reply is queued: keep it in the history, then do what the model decided, after the last sentence.

    A reply cut short by the model (a stall, a broken stream) ends with the reprompt; one stopped by the
    service (a barge-in, a hangup) ends with nothing: the event that stopped it does the rest.
    """
    action, department = state.reply_action or "continue", state.reply_department
    state.reply_action = state.reply_department = None
    spoken = " ".join(state.reply_sentences)
    if turn is not None:
        turn.output_tokens = end.output_tokens
        turn.action = action if end.ending == "complete" else end.ending
        turn.brain_confidence = 0.0 if action == "not_sure" else None
    if spoken or end.ending == "stopped":
        remember(state, spoken or INTERRUPTED_MARK, turn)
    if end.ending == "stopped":
        return []
    if end.ending != "complete":
        return say(state, policy.lines["reprompt"])
    if action == "not_sure":
        if spoken and state.low_confidence_streak + 1 < policy.max_low_confidence_turns:
            state.low_confidence_streak += 1  # the model's own words asked again
            return []
        return low_confidence(state, policy, "model not sure")
    state.low_confidence_streak = 0
    if action == "transfer":
        accepted = department is None or department in policy.destinations
        return escalate(state, policy, "brain chose transfer", department, announce=not (accepted and spoken))
    if action == "end":
        goodbye = policy.lines["goodbye"]
        return end_call(state, policy, "" if goodbye in spoken else goodbye, say_goodbye=False)
    if action == "take_message":
        return offer_message(state, policy, "brain chose to take a message", speak=not spoken)
    return [] if spoken else say(state, policy.lines["reprompt"])


def on_brain_failed(state: CallState, event: BrainFailed, policy: Policy) -> list[Command]:
    return escalate(state, policy, f"brain failed: {event.reason}", announcement=policy.lines["fallback"])


def on_timer(state: CallState, event: TimerFired, policy: Policy) -> list[Command]:
    if event.name == "silence" and event.token == state.silence_token and not state.speaking:
        return on_silence(state, policy)
    if event.name == UNBRIDGED_TIMER and state.phase is Phase.BRIDGED:
        return [Hangup()]  # the person hung up and the caller, parked, is still there
    if event.name == "speech_guard" and event.token == state.speech_token and state.after_speech:
        state.speaking = 0
        pending, state.after_speech = state.after_speech, None
        return [pending]
    return []


# ---------------------------------------------------------------- shared steps


def caller_turn(state: CallState, turn: TurnRecord, policy: Policy) -> list[Command]:
    """A final transcript: stop recording, take a message, escalate, reprompt, or ask the brain."""
    if state.recording in ("pending", "on") and declines_recording(turn.transcript):
        return stop_recording(state, policy)
    if state.phase is Phase.TAKING_MESSAGE:
        state.messages.append(turn.transcript)
        state.outcome = "message_taken"
        return [DeliverMessage(turn.transcript),
                *end_call(state, policy, policy.lines["message_taken"], say_goodbye=False)]
    if asks_to_leave_message(turn.transcript):
        return offer_message(state, policy, "caller asked to leave a message")
    if asks_for_person(turn.transcript):
        return escalate(state, policy, "caller asked for a person")
    if turn.asr_confidence is not None and turn.asr_confidence < policy.min_asr_confidence:
        return low_confidence(state, policy, "low speech recognition confidence")
    if len(state.turns) > policy.max_turns:
        return escalate(state, policy, "turn limit reached")
    state.reply_sentences, state.reply_action, state.reply_department = [], None, None
    return [AskBrain(turn.transcript)]


def stop_recording(state: CallState, policy: Policy) -> list[Command]:
    """The caller does not want to be recorded: stop (or never start) and say so."""
    return withdraw_consent(state) + say(state, policy.lines["recording_stopped"])


def low_confidence(state: CallState, policy: Policy, reason: str) -> list[Command]:
    state.low_confidence_streak += 1
    if state.low_confidence_streak >= policy.max_low_confidence_turns:
        return escalate(state, policy, reason)
    return say(state, policy.lines["reprompt"])


def escalate(
    state: CallState,
    policy: Policy,
    reason: str,
    department: str | None = None,
    announcement: str | None = None,
    announce: bool = True,
) -> list[Command]:
    """Hand the caller to a configured human; never a number that did not come from the config."""
    state.escalation_reason = state.escalation_reason or reason
    name = reachable_destination(state, policy, department)
    if state.transfer_attempted or not name or name not in policy.destinations:
        return offer_message(state, policy, reason)
    state.transfer_attempted = True
    state.transfer_destination = name
    state.phase = Phase.TRANSFERRING
    transfer = Transfer(policy.destinations[name], name)
    return _announce_then(state, policy, announcement, transfer) if announce else _after_speech(state, transfer)


def reachable_destination(state: CallState, policy: Policy, department: str | None) -> str | None:
    """Who can take the call: the department asked for, else the default; after hours only the after-hours one."""
    if state.after_hours:
        return policy.after_hours_destination
    return department if department in policy.destinations else policy.default_destination


def _announce_then(state: CallState, policy: Policy, announcement: str | None, command: Command) -> list[Command]:
    """Speak, then run `command` once the speech has ended (or its guard timer fires, if the event is lost)."""
    text = announcement or policy.lines["transfer_announcement"]
    speech = say(state, text)
    return [*speech, *_after_speech(state, command, text)]


def _after_speech(state: CallState, command: Command, text: str = "") -> list[Command]:
    """Run `command` once every queued speech has ended: a streamed reply's sentences, then `text`."""
    if not state.speaking:
        return [command]
    state.after_speech = command
    state.speech_token += 1
    queued = len(text) + sum(len(sentence) for sentence in state.reply_sentences)
    return [StartTimer("speech_guard", SPEECH_GUARD_S + queued / CHARS_PER_SECOND, state.speech_token)]


def offer_message(state: CallState, policy: Policy, reason: str, speak: bool = True) -> list[Command]:
    state.escalation_reason = state.escalation_reason or reason
    state.transfer_attempted = True
    state.phase = Phase.TAKING_MESSAGE
    return say(state, policy.lines["no_human_available"]) if speak else []


def end_call(state: CallState, policy: Policy, text: str, say_goodbye: bool = True) -> list[Command]:
    """Speak the last words, then hang up once they have been heard."""
    state.phase = Phase.ENDING
    if state.outcome == "caller_hung_up":
        state.outcome = "hung_up_by_assistant"
    goodbye = policy.lines["goodbye"]
    words = f"{text} {goodbye}" if say_goodbye and goodbye not in text else text
    return _announce_then(state, policy, words, Hangup()) if words else _after_speech(state, Hangup())


def on_silence(state: CallState, policy: Policy) -> list[Command]:
    if not state.silence_reprompted:
        state.silence_reprompted = True
        return say(state, policy.lines["silence_reprompt"])
    state.escalation_reason = state.escalation_reason or "caller silent"
    state.outcome = "silence"
    return end_call(state, policy, policy.lines["goodbye"], say_goodbye=False)


def listen(state: CallState, policy: Policy) -> list[Command]:
    """The assistant has finished speaking: start waiting for the caller."""
    if state.phase not in LISTENING:
        return []
    state.silence_token += 1
    return [StartTimer("silence", policy.silence_timeout_s, state.silence_token)]


def interrupt(state: CallState) -> list[Command]:
    """Barge-in: stop the assistant's speech; the ended events of what was stopped are then ignored."""
    if not state.speaking:
        return []
    if state.turns:
        state.turns[-1].barged_in = True
    keep_heard(state)
    if not state.speech_echoed:
        state.stale_speech_ends += state.speaking  # their ends may come untagged: skip that many
    state.speaking = 0  # every speech so far is over: their tags no longer count (on_speak_ended)
    return [StopPlayback()]


def keep_heard(state: CallState) -> None:
    """Barge-in on a streamed reply: the history keeps only what the caller heard, marked as interrupted.

    Speech plays in order, so the first speech not yet ended is the one the caller cut off: they heard the
    sentences before it, and the start of it.
    """
    sentences, state.reply_sentences = state.reply_sentences, []
    cut = state.last_speech - state.speaking + 1 - state.reply_first_speech  # index of the sentence cut off
    if not sentences or cut >= len(sentences) or not state.history or state.history[-1].role != "assistant":
        return
    heard = sentences[: max(0, cut + 1)]
    state.history[-1] = Turn("assistant", " ".join([*heard, INTERRUPTED_MARK]))


def cuts_reply(event: CallEvent) -> bool:
    """A webhook that makes a reply still being written moot: the caller spoke over it, pressed 0, or hung up.

    Checked as the webhook arrives (Receptionist.accept), so the model's stream is closed at once rather than
    when the call's worker, busy speaking that reply, comes to the event.
    """
    if event.event_type == "call.hangup":
        return True
    if event.event_type == "call.dtmf.received":
        return event.payload.get("digit") == "0"
    data = event.payload.get("transcription_data")
    if event.event_type != "call.transcription" or not isinstance(data, dict) or data.get("is_final") is not True:
        return False
    text = data.get("transcript")
    return isinstance(text, str) and has_words(text)


def say(state: CallState, text: str, filler: bool = False) -> list[Command]:
    """Speak, numbered: the number comes back in the speech's call.speak.ended (on_speak_ended)."""
    state.speaking += 1
    state.last_speech += 1
    return [Speak(text, state.last_speech, filler)]


def remember(state: CallState, reply: str, turn: TurnRecord | None) -> None:
    if turn is not None:
        state.history.append(Turn("caller", turn.transcript))
        turn.reply = reply
    state.history.append(Turn("assistant", reply))


HANDLERS: dict[str, Handler] = {
    "call.initiated": on_initiated,
    "call.answered": on_answered,
    "call.speak.ended": on_speak_ended,
    "call.transcription": on_transcription,
    "call.dtmf.received": on_dtmf,
    "call.hangup": on_hangup,
    CallExpired.event_type: on_expired,
    "call.bridged": on_leg_connected,
    LegEvent.PREFIX + "call.answered": on_leg_connected,
    LegEvent.PREFIX + "call.bridged": on_leg_connected,
    LegEvent.PREFIX + "call.hangup": on_leg_hangup,
    LegEvent.PREFIX + "call.machine.detection.ended": on_machine_detected,
    "call.recording.saved": on_recording_saved,
    CommandFailed.event_type: on_command_failed,
    BrainReplied.event_type: on_brain_replied,
    BrainStreamed.event_type: on_brain_streamed,
    BrainFailed.event_type: on_brain_failed,
    TimerFired.event_type: on_timer,
}
