"""dialog.py: every decision the dialog makes, from (state, event) to commands, with no server involved."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from brains import BrainReply
from calls import CallState, Phase
from commands import (
    Answer,
    AskBrain,
    FinishCall,
    Hangup,
    Speak,
    StartTimer,
    StartTranscription,
    StopPlayback,
    StopTranscription,
    Transfer,
)
from dialog import Policy, asks_for_person, decide, in_canary
from events import (
    BrainFailed,
    BrainReplied,
    CallEvent,
    CallExpired,
    CommandFailed,
    LegEvent,
    TimerFired,
    encode_client_state,
    speech_client_state,
    transfer_client_state,
)

_ids = itertools.count()


def event(event_type: str, **payload) -> CallEvent:
    payload.setdefault("call_control_id", "v3:test-call")
    return CallEvent(f"evt-{next(_ids)}", event_type, payload["call_control_id"], payload, received_at=100.0)


def transcript(text: str, confidence: float = 0.95, is_final: bool = True) -> CallEvent:
    data = {"transcript": text, "confidence": confidence, "is_final": is_final}
    return event("call.transcription", transcription_data=data)


@pytest.fixture
def policy(settings) -> Policy:
    return Policy.from_settings(settings)


def answered_call(policy: Policy) -> CallState:
    """A call that has been answered and greeted, with the greeting finished."""
    state = CallState("v3:test-call")
    decide(state, event("call.initiated", direction="incoming", **{"from": "+13125550111"}), policy)
    decide(state, event("call.answered"), policy)
    decide(state, event("call.speak.ended", status="completed"), policy)
    return state


def speeches(commands: list) -> list[str]:
    return [c.text for c in commands if isinstance(c, Speak)]


def speak_ended(tag: int | None = None, client_state: str | None = None) -> CallEvent:
    """A call.speak.ended echoing speech number `tag` in its client_state, as Telnyx does, or `client_state`."""
    echoed = speech_client_state(tag) if tag is not None else client_state
    return event("call.speak.ended", status="completed", client_state=echoed)


def greeted_call(policy: Policy) -> CallState:
    """A call answered and greeted, the greeting's tagged end heard: the carrier echoes speech tags."""
    state = CallState("v3:test-call")
    decide(state, event("call.initiated", direction="incoming", **{"from": "+13125550111"}), policy)
    decide(state, event("call.answered"), policy)
    decide(state, speak_ended(1), policy)
    assert state.speech_echoed and state.speaking == 0
    return state


def test_incoming_call_is_answered(policy):
    state = CallState("v3:test-call")
    commands = decide(state, event("call.initiated", direction="incoming", **{"from": "+13125550111"}), policy)
    assert commands == [Answer()]
    assert state.caller == "+13125550111"


def test_outgoing_leg_is_not_answered(policy):
    assert decide(CallState("v3:x"), event("call.initiated", direction="outgoing"), policy) == []


def test_answered_call_is_greeted_and_listened_to(policy):
    state = CallState("v3:test-call")
    decide(state, event("call.initiated", direction="incoming", **{"from": "+13125550111"}), policy)
    commands = decide(state, event("call.answered"), policy)
    assert commands == [Speak(policy.lines["greeting"], 1), StartTranscription()]
    assert "automated assistant" in policy.lines["greeting"]


def test_greeting_end_starts_the_silence_timer(policy):
    state = CallState("v3:test-call")
    decide(state, event("call.initiated", direction="incoming", **{"from": "+1"}), policy)
    decide(state, event("call.answered"), policy)
    commands = decide(state, event("call.speak.ended", status="completed"), policy)
    assert commands == [StartTimer("silence", policy.silence_timeout_s, state.silence_token)]


def test_caller_turn_goes_to_the_brain_and_the_reply_is_spoken(policy):
    state = answered_call(policy)
    assert decide(state, transcript("what are your hours"), policy) == [AskBrain("what are your hours")]
    reply = BrainReply("We open at 8.", "continue", 0.9)
    assert decide(state, BrainReplied(reply), policy) == [Speak("We open at 8.", 2)]
    assert state.turns[-1].brain_confidence == 0.9
    assert [t.text for t in state.history] == ["what are your hours", "We open at 8."]


def test_interim_transcripts_are_not_turns(policy):
    state = answered_call(policy)
    assert decide(state, transcript("what are", is_final=False), policy) == []
    assert state.turns == []


def test_low_asr_confidence_reprompts_then_escalates(policy):
    state = answered_call(policy)
    first = decide(state, transcript("mmhm rrr", confidence=0.2), policy)
    assert speeches(first) == [policy.lines["reprompt"]]
    for _ in range(policy.max_low_confidence_turns - 2):
        decide(state, transcript("mmhm", confidence=0.2), policy)
    last = decide(state, transcript("mmhm rrr", confidence=0.2), policy)
    assert speeches(last) == [policy.lines["transfer_announcement"]]
    assert state.phase is Phase.TRANSFERRING
    assert state.escalation_reason == "low speech recognition confidence"


def test_low_brain_confidence_reprompts_then_escalates(policy):
    state = answered_call(policy)
    unsure = BrainReplied(BrainReply("Maybe?", "continue", 0.1))
    decide(state, transcript("something odd"), policy)
    assert speeches(decide(state, unsure, policy)) == [policy.lines["reprompt"]]
    for _ in range(policy.max_low_confidence_turns - 1):
        decide(state, transcript("something odd"), policy)
        commands = decide(state, unsure, policy)
    assert speeches(commands) == [policy.lines["transfer_announcement"]]
    assert state.escalation_reason == "low brain confidence"


def test_a_confident_turn_resets_the_low_confidence_streak(policy):
    state = answered_call(policy)
    decide(state, transcript("mmm", confidence=0.1), policy)
    decide(state, transcript("hours please"), policy)
    decide(state, BrainReplied(BrainReply("8 to 5.", "continue", 0.9)), policy)
    assert state.low_confidence_streak == 0


def test_transfer_happens_after_the_announcement_is_heard(policy):
    state = answered_call(policy)
    commands = decide(state, transcript("can I talk to a real person"), policy)
    assert speeches(commands) == [policy.lines["transfer_announcement"]]
    assert not any(isinstance(c, Transfer) for c in commands)
    after = decide(state, event("call.speak.ended", status="completed"), policy)
    assert after == [Transfer(policy.destinations["front_desk"], "front_desk")]
    assert state.escalation_reason == "caller asked for a person"


def test_dtmf_zero_transfers_at_once(policy):
    state = answered_call(policy)
    commands = decide(state, event("call.dtmf.received", digit="0"), policy)
    assert speeches(commands) == [policy.lines["transfer_announcement"]]
    assert state.after_speech == Transfer(policy.destinations["front_desk"], "front_desk")


def test_other_digits_are_ignored(policy):
    state = answered_call(policy)
    assert decide(state, event("call.dtmf.received", digit="5"), policy) == []


def test_brain_transfer_goes_only_to_a_configured_destination(policy):
    state = answered_call(policy)
    decide(state, transcript("billing please"), policy)
    decide(state, BrainReplied(BrainReply("Connecting you.", "transfer", 0.9, "billing")), policy)
    assert state.after_speech == Transfer(policy.destinations["billing"], "billing")


@pytest.mark.parametrize("department", ["+19005550123", "sip:evil@example.com", "premium", None, ""])
def test_unknown_department_falls_back_to_the_default_destination(policy, department):
    state = answered_call(policy)
    decide(state, transcript("transfer me"), policy)
    decide(state, BrainReplied(BrainReply("Sure.", "transfer", 0.9, department)), policy)
    assert state.after_speech == Transfer(policy.destinations["front_desk"], "front_desk")


def test_brain_failure_speaks_the_fallback_and_transfers(policy):
    state = answered_call(policy)
    decide(state, transcript("hello"), policy)
    commands = decide(state, BrainFailed("timed out"), policy)
    assert speeches(commands) == [policy.lines["fallback"]]
    assert isinstance(state.after_speech, Transfer)
    assert state.escalation_reason == "brain failed: timed out"


def test_unanswered_transfer_offers_to_take_a_message(policy):
    state = answered_call(policy)
    decide(state, event("call.dtmf.received", digit="0"), policy)
    decide(state, event("call.speak.ended", status="completed"), policy)
    leg_hangup = LegEvent(event("call.hangup", hangup_cause="timeout"))
    commands = decide(state, leg_hangup, policy)
    assert speeches(commands) == [policy.lines["no_human_available"]]
    assert state.phase is Phase.TAKING_MESSAGE
    decide(state, event("call.speak.ended", status="completed"), policy)
    taken = decide(state, transcript("please call me back about my crown"), policy)
    assert speeches(taken) == [policy.lines["message_taken"]]
    assert state.messages == ["please call me back about my crown"]
    assert decide(state, event("call.speak.ended", status="completed"), policy) == [Hangup()]


def test_failed_transfer_command_offers_to_take_a_message(policy):
    state = answered_call(policy)
    decide(state, event("call.dtmf.received", digit="0"), policy)
    decide(state, event("call.speak.ended", status="completed"), policy)
    failed = CommandFailed(Transfer("+15555550100", "front_desk"), "TelnyxHTTPError")
    assert speeches(decide(state, failed, policy)) == [policy.lines["no_human_available"]]


def test_answered_transfer_stops_transcription(policy):
    state = answered_call(policy)
    decide(state, event("call.dtmf.received", digit="0"), policy)
    decide(state, event("call.speak.ended", status="completed"), policy)
    leg = LegEvent(event("call.answered"))
    assert decide(state, leg, policy) == [StopTranscription()]
    assert state.outcome == "transferred"


def test_no_destination_configured_takes_a_message(policy):
    policy = replace(policy, destinations={}, default_destination=None)
    state = answered_call(policy)
    commands = decide(state, transcript("let me talk to a person"), policy)
    assert speeches(commands) == [policy.lines["no_human_available"]]
    assert state.phase is Phase.TAKING_MESSAGE


def test_at_most_one_transfer_per_call(policy):
    state = answered_call(policy)
    decide(state, event("call.dtmf.received", digit="0"), policy)
    decide(state, event("call.speak.ended", status="completed"), policy)
    decide(state, LegEvent(event("call.hangup")), policy)
    decide(state, event("call.speak.ended", status="completed"), policy)
    commands = decide(state, event("call.dtmf.received", digit="0"), policy)
    assert not any(isinstance(c, Transfer) for c in commands) and state.after_speech is None


def test_goodbye_is_spoken_before_the_hangup(policy):
    state = answered_call(policy)
    decide(state, transcript("that's all thanks"), policy)
    commands = decide(state, BrainReplied(BrainReply("You're welcome.", "end", 0.9)), policy)
    assert speeches(commands) == [f"You're welcome. {policy.lines['goodbye']}"]
    assert not any(isinstance(c, Hangup) for c in commands)
    assert decide(state, event("call.speak.ended", status="completed"), policy) == [Hangup()]


def test_lost_speak_ended_still_hangs_up_via_the_guard_timer(policy):
    state = answered_call(policy)
    decide(state, transcript("bye"), policy)
    commands = decide(state, BrainReplied(BrainReply("Bye.", "end", 0.9)), policy)
    guard = next(c for c in commands if isinstance(c, StartTimer))
    assert decide(state, TimerFired("speech_guard", guard.token), policy) == [Hangup()]


def test_silence_reprompts_once_then_says_goodbye(policy):
    state = answered_call(policy)
    first = decide(state, TimerFired("silence", state.silence_token), policy)
    assert speeches(first) == [policy.lines["silence_reprompt"]]
    timer = decide(state, event("call.speak.ended", status="completed"), policy)
    second = decide(state, TimerFired("silence", timer[0].token), policy)
    assert speeches(second) == [policy.lines["goodbye"]]
    assert decide(state, event("call.speak.ended", status="completed"), policy) == [Hangup()]
    assert state.escalation_reason == "caller silent"


def test_a_stale_silence_timer_does_nothing(policy):
    state = answered_call(policy)
    stale = state.silence_token
    decide(state, transcript("hello"), policy)
    assert decide(state, TimerFired("silence", stale), policy) == []


def test_barge_in_stops_the_assistant_and_answers_the_new_turn(policy):
    state = answered_call(policy)
    decide(state, transcript("what are your hours"), policy)
    decide(state, BrainReplied(BrainReply("We are open from eight until five on weekdays.", "continue", 0.9)), policy)
    commands = decide(state, transcript("and saturdays"), policy)
    assert commands == [StopPlayback(), AskBrain("and saturdays")]
    decide(state, BrainReplied(BrainReply("Nine to one.", "continue", 0.9)), policy)
    # the stopped speech's own ended event must not count as the new reply ending
    assert decide(state, event("call.speak.ended", status="completed"), policy) == []
    assert state.speaking == 1


def test_nothing_is_sent_after_hangup(policy):
    state = answered_call(policy)
    assert decide(state, event("call.hangup", hangup_cause="normal_clearing"), policy) == [FinishCall()]
    late = [transcript("hello?"), event("call.speak.ended"), event("call.dtmf.received", digit="0"),
            BrainReplied(BrainReply("Hi", "continue", 0.9)), TimerFired("silence", state.silence_token)]
    assert all(decide(state, e, policy) == [] for e in late)


def test_caller_hangup_during_goodbye_counts_as_assistant_ending(policy):
    state = answered_call(policy)
    decide(state, transcript("bye"), policy)
    decide(state, BrainReplied(BrainReply("Bye.", "end", 0.9)), policy)
    decide(state, event("call.hangup"), policy)
    assert state.outcome == "hung_up_by_assistant"


def test_canary_off_sends_the_caller_straight_to_a_human(policy):
    policy = replace(policy, canary_percent=0)
    state = CallState("v3:test-call")
    decide(state, event("call.initiated", direction="incoming", **{"from": "+13125550111"}), policy)
    commands = decide(state, event("call.answered"), policy)
    assert not any(isinstance(c, StartTranscription) for c in commands)
    assert state.after_speech == Transfer(policy.destinations["front_desk"], "front_desk")


def test_ai_disabled_sends_the_caller_straight_to_a_human(policy):
    policy = replace(policy, ai_enabled=False)
    state = CallState("v3:test-call")
    decide(state, event("call.initiated", direction="incoming", **{"from": "+13125550111"}), policy)
    decide(state, event("call.answered"), policy)
    assert isinstance(state.after_speech, Transfer) and state.escalation_reason == "ai disabled for this call"


def test_canary_bucket_is_stable_and_proportional():
    callers = [f"+1312555{n:04d}" for n in range(2000)]
    inside = [c for c in callers if in_canary(c, 25)]
    assert 0.2 < len(inside) / len(callers) < 0.3
    assert inside == [c for c in callers if in_canary(c, 25)]
    assert all(in_canary(c, 100) for c in callers) and not any(in_canary(c, 0) for c in callers)


@pytest.mark.parametrize(
    "utterance, expected",
    [
        ("can I talk to a real person", True),
        ("operator", True),
        ("put me through to the front desk please", True),
        ("I'd like to speak with someone", True),
        ("what are your hours", False),
        ("is someone there", False),
        ("where is the office", False),
    ],
)
def test_asks_for_person(utterance, expected):
    assert asks_for_person(utterance) is expected


# ---------------------------------------------------------------- call.initiated and call.answered, in any order


def test_a_second_call_initiated_under_another_webhook_id_is_not_answered_again(policy):
    state = CallState("v3:test-call")
    first = decide(state, event("call.initiated", direction="incoming", **{"from": "+13125550111"}), policy)
    again = decide(state, event("call.initiated", direction="incoming", **{"from": "+13125550111"}), policy)
    assert (first, again) == ([Answer()], [])
    assert decide(state, event("call.answered"), policy) == [Speak(policy.lines["greeting"], 1), StartTranscription()]


def test_call_answered_before_call_initiated_greets_the_caller_without_answering_again(policy):
    state = CallState("v3:test-call")
    assert decide(state, event("call.answered"), policy) == []
    assert state.phase is Phase.RINGING and state.answered and not state.initiated
    commands = decide(state, event("call.initiated", direction="incoming", **{"from": "+13125550111"}), policy)
    assert commands == [Speak(policy.lines["greeting"], 1), StartTranscription()]
    assert state.phase is Phase.CONVERSING and state.caller == "+13125550111"
    assert decide(state, event("call.answered"), policy) == []  # its redelivery greets nobody twice


def test_call_answered_before_call_initiated_outside_the_canary_still_goes_to_a_person(policy):
    policy = replace(policy, canary_percent=0)
    state = CallState("v3:test-call")
    decide(state, event("call.answered"), policy)
    commands = decide(state, event("call.initiated", direction="incoming", **{"from": "+13125550111"}), policy)
    assert speeches(commands) == [policy.lines["transfer_announcement"]]
    assert not any(isinstance(c, Answer | StartTranscription) for c in commands)
    assert state.after_speech == Transfer(policy.destinations["front_desk"], "front_desk")


def test_a_duplicate_call_answered_does_not_greet_twice(policy):
    state = CallState("v3:test-call")
    decide(state, event("call.initiated", direction="incoming", **{"from": "+1"}), policy)
    assert speeches(decide(state, event("call.answered"), policy)) == [policy.lines["greeting"]]
    assert decide(state, event("call.answered"), policy) == []


# ---------------------------------------------------------------- which call.speak.ended counts


def test_every_speech_carries_its_own_number(policy):
    state = greeted_call(policy)
    decide(state, transcript("what are your hours"), policy)
    assert decide(state, BrainReplied(BrainReply("8 to 5.", "continue", 0.9)), policy) == [Speak("8 to 5.", 2)]
    assert decide(state, speak_ended(2), policy) == [StartTimer("silence", policy.silence_timeout_s,
                                                                state.silence_token)]
    announcement = decide(state, event("call.dtmf.received", digit="0"), policy)
    assert [c for c in announcement if isinstance(c, Speak)] == [Speak(policy.lines["transfer_announcement"], 3)]


STRAYS = {
    "no client_state": dict(client_state=None),
    "another application's client_state": dict(client_state=encode_client_state("campaign=7")),
    "a transfer leg's tag": dict(client_state=transfer_client_state("v3:other")),
    "not a number": dict(client_state=encode_client_state("speak:2x")),
    "the greeting's, delivered again": dict(tag=1),
    "a number never spoken": dict(tag=99),
}


def start_transfer(state: CallState, policy: Policy) -> None:
    decide(state, event("call.dtmf.received", digit="0"), policy)


def start_goodbye(state: CallState, policy: Policy) -> None:
    decide(state, transcript("that's all, bye"), policy)
    decide(state, BrainReplied(BrainReply("You're welcome.", "end", 0.9)), policy)


@pytest.mark.parametrize("stray", STRAYS.values(), ids=STRAYS.keys())
@pytest.mark.parametrize("start, waiting", [(start_transfer, Transfer("+15555550100", "front_desk")),
                                            (start_goodbye, Hangup())], ids=["announcement", "goodbye"])
def test_a_stray_or_stale_speak_ended_does_not_cut_the_speech_short(policy, stray, start, waiting):
    state = greeted_call(policy)
    start(state, policy)
    assert (state.after_speech, state.speaking, state.last_speech) == (waiting, 1, 2)
    assert decide(state, speak_ended(**stray), policy) == []
    assert state.after_speech == waiting and state.speaking == 1
    assert decide(state, speak_ended(2), policy) == [waiting]


def test_the_current_speech_ends_once_however_often_its_end_is_delivered(policy):
    state = greeted_call(policy)
    decide(state, transcript("what are your hours"), policy)
    decide(state, BrainReplied(BrainReply("8 to 5.", "continue", 0.9)), policy)
    assert len(decide(state, speak_ended(2), policy)) == 1  # the silence timer
    token = state.silence_token
    assert decide(state, speak_ended(2), policy) == [] and state.silence_token == token


def test_barge_in_with_tags_ignores_the_stopped_speech_and_counts_the_new_one(policy):
    state = greeted_call(policy)
    decide(state, transcript("what are your hours"), policy)
    decide(state, BrainReplied(BrainReply("We are open from eight until five on weekdays.", "continue", 0.9)), policy)
    assert decide(state, transcript("and saturdays"), policy) == [StopPlayback(), AskBrain("and saturdays")]
    reply = decide(state, BrainReplied(BrainReply("Nine to one.", "continue", 0.9)), policy)
    assert reply == [Speak("Nine to one.", 3)]
    assert decide(state, speak_ended(2), policy) == []  # the stopped reply
    assert state.speaking == 1
    assert decide(state, speak_ended(3), policy) == [StartTimer("silence", policy.silence_timeout_s,
                                                                state.silence_token)]


@pytest.mark.parametrize("echo", ["its own number", "the latest number"])
def test_queued_speeches_end_in_order_whichever_number_telnyx_echoes(policy, echo):
    """Telnyx may echo each speak's own client_state, or the latest one set on the call ("every subsequent
    webhook"): either way the second of two queued speeches ends the speech, and not the first."""
    state = greeted_call(policy)
    decide(state, BrainReplied(BrainReply("One moment.", "continue", 0.9)), policy)
    decide(state, BrainReplied(BrainReply("We open at 8.", "continue", 0.9)), policy)
    assert (state.speaking, state.last_speech) == (2, 3)
    assert decide(state, speak_ended(2 if echo == "its own number" else 3), policy) == []
    assert decide(state, speak_ended(2), policy) == []  # ended already (or never playing, with the latest number)
    assert len(decide(state, speak_ended(3), policy)) == 1 and state.speaking == 0


def test_without_any_echo_from_telnyx_an_untagged_end_still_counts(policy):
    state = answered_call(policy)  # every call.speak.ended so far came without client_state
    assert not state.speech_echoed
    start_transfer(state, policy)
    assert decide(state, speak_ended(), policy) == [Transfer(policy.destinations["front_desk"], "front_desk")]


def test_the_echo_is_learned_from_any_webhook_carrying_a_number_even_a_late_one(policy):
    """Delivery order is not guaranteed: the caller pressed 0 before the greeting's end was handled, so the
    greeting counts as stopped; its late, numbered end still shows that Telnyx echoes the numbers."""
    state = CallState("v3:test-call")
    decide(state, event("call.initiated", direction="incoming", **{"from": "+13125550111"}), policy)
    decide(state, event("call.answered"), policy)
    assert decide(state, event("call.dtmf.received", digit="0"), policy)[0] == StopPlayback()
    assert decide(state, speak_ended(1), policy) == [] and state.speech_echoed
    for stray in STRAYS.values():
        assert decide(state, speak_ended(**stray), policy) == []
    assert decide(state, speak_ended(2), policy) == [Transfer(policy.destinations["front_desk"], "front_desk")]


def test_a_speak_started_with_a_number_is_enough_to_learn_the_echo(policy):
    state = CallState("v3:test-call")
    decide(state, event("call.initiated", direction="incoming", **{"from": "+13125550111"}), policy)
    decide(state, event("call.answered"), policy)
    decide(state, event("call.speak.started", client_state=speech_client_state(1)), policy)
    assert state.speech_echoed
    assert decide(state, speak_ended(), policy) == [] and state.speaking == 1


def test_a_failed_speech_that_no_longer_plays_is_not_counted_again(policy):
    state = greeted_call(policy)
    start_transfer(state, policy)
    assert decide(state, CommandFailed(Speak(policy.lines["greeting"], 1), "TelnyxTimeout"), policy) == []
    failed = CommandFailed(Speak(policy.lines["transfer_announcement"], 2), "TelnyxTimeout")
    assert decide(state, failed, policy) == [Transfer(policy.destinations["front_desk"], "front_desk")]


# ---------------------------------------------------------------- transcripts that show nothing

INVISIBLE = ["\u200b", "\u200c\u200d", "\u2060", "\ufeff", " \u200b\t\u200b\n", "\u00ad", "\u180e", "\u202e\u2066",
             "\u0301", "\u3164", "\u2800", "\u115f\u1160", "\x00\x07", "\u2028\u2029\x85"]


@pytest.mark.parametrize("text", INVISIBLE, ids=[ascii(text) for text in INVISIBLE])
@pytest.mark.parametrize("is_final", [True, False], ids=["final", "interim"])
def test_a_transcript_of_invisible_characters_is_no_turn(policy, text, is_final):
    state = greeted_call(policy)
    token = state.silence_token
    assert decide(state, transcript(text, is_final=is_final), policy) == []
    assert state.turns == [] and state.silence_token == token  # the silence timer still runs


@pytest.mark.parametrize("text", ["ok\u200b", "\ufeffyes", "5", "?", "\u00e9", "e\u0301", "\U0001f44d"])
def test_a_transcript_with_anything_visible_is_a_turn(policy, text):
    state = greeted_call(policy)
    assert decide(state, transcript(text), policy) == [AskBrain(text)]


# ---------------------------------------------------------------- a call that is bridged to a person


def bridged_call(policy: Policy) -> CallState:
    state = greeted_call(policy)
    start_transfer(state, policy)
    decide(state, speak_ended(2), policy)
    assert decide(state, LegEvent(event("call.answered")), policy) == [StopTranscription()]
    assert state.phase is Phase.BRIDGED
    return state


@pytest.mark.parametrize("leg_event", [event("call.dtmf.received", digit="*"), event("call.dtmf.received", digit="0"),
                                       transcript("operator"), event("call.speak.ended", status="completed"),
                                       event("call.initiated", direction="incoming")],
                         ids=["star", "zero", "transcript", "speak ended", "initiated"])
def test_nothing_on_the_transfer_leg_disturbs_a_bridged_call(policy, leg_event):
    state = bridged_call(policy)
    assert decide(state, LegEvent(leg_event), policy) == []
    assert state.phase is Phase.BRIDGED and state.outcome == "transferred"


def test_expiry_of_a_bridged_call_sends_nothing_and_keeps_its_outcome(policy):
    state = bridged_call(policy)
    assert decide(state, CallExpired(), policy) == [FinishCall()]
    assert (state.phase, state.outcome) == (Phase.ENDED, "transferred")


def test_expiry_of_a_call_not_bridged_writes_it_off(policy):
    state = greeted_call(policy)
    assert decide(state, CallExpired(), policy) == [FinishCall()]
    assert (state.phase, state.outcome) == (Phase.ENDED, "expired")
