"""dialog.py, streamed replies: sentences spoken as they come, the model's decision after the last one, and what
a barge-in keeps in the history. Pure decisions, no I/O (the whole path runs in tests/test_streamed_replies.py)."""

from __future__ import annotations

import pytest
from test_dialog import event, greeted_call, speak_ended, transcript

from brains import Decision, Finished, Sentence, StillWriting
from calls import Phase
from commands import AskBrain, Hangup, Speak, StartTimer, StopPlayback, Transfer
from dialog import Policy, cuts_reply, decide
from events import BrainStreamed


@pytest.fixture
def policy(settings) -> Policy:
    return Policy.from_settings(settings)


def streamed(state, policy, *parts) -> list:
    commands = []
    for part in parts:
        commands += decide(state, BrainStreamed(part), policy)
    return commands


def asked(policy, text: str = "when are you open"):
    state = greeted_call(policy)
    assert decide(state, transcript(text), policy) == [AskBrain(text)]
    return state


def test_each_sentence_is_a_numbered_speak_and_nothing_more_until_the_reply_ends(policy):
    state = asked(policy)
    commands = streamed(state, policy, Sentence("We open at nine."), Sentence("We close at five."))
    assert commands == [Speak("We open at nine.", 2), Speak("We close at five.", 3)]
    assert streamed(state, policy, Finished("complete", 12)) == []
    assert state.turns[-1].sentences == 2 and state.turns[-1].output_tokens == 12
    assert state.history[-1].text == "We open at nine. We close at five."


def test_a_slow_reply_is_preceded_by_the_holding_phrase_and_numbered_after_it(policy):
    state = asked(policy)
    assert streamed(state, policy, StillWriting()) == [Speak(policy.lines["holding"], 2, filler=True)]
    assert streamed(state, policy, Sentence("We open at nine."), Finished("complete")) == [Speak("We open at nine.", 3)]
    assert state.speaking == 2 and state.history[-1].text == "We open at nine."
    assert decide(state, speak_ended(2), policy) == []
    assert [type(c) for c in decide(state, speak_ended(3), policy)] == [StartTimer]


def test_no_holding_phrase_after_a_sentence_or_once_the_call_has_moved_on(policy):
    state = asked(policy)
    streamed(state, policy, Sentence("Sure."))
    assert streamed(state, policy, StillWriting()) == []
    state = asked(policy)
    state.phase = Phase.TRANSFERRING
    assert streamed(state, policy, StillWriting()) == []


def test_listening_starts_after_the_last_sentence_and_not_before(policy):
    state = asked(policy)
    streamed(state, policy, Sentence("One."), Sentence("Two."), Finished("complete"))
    assert decide(state, speak_ended(2), policy) == []
    assert [type(c) for c in decide(state, speak_ended(3), policy)] == [StartTimer]
    assert state.reply_sentences == []


def test_an_end_decided_mid_reply_hangs_up_after_the_goodbye_the_guard_counting_every_queued_sentence(policy):
    state = asked(policy)
    commands = streamed(state, policy, Sentence("You're welcome."), Decision("end"), Sentence("Take care."),
                        Finished("complete"))
    goodbye = policy.lines["goodbye"]
    assert commands[:2] == [Speak("You're welcome.", 2), Speak("Take care.", 3)]
    assert commands[2] == Speak(goodbye, 4) and isinstance(commands[3], StartTimer)
    queued = len("You're welcome.") + len("Take care.") + len(goodbye)
    assert commands[3].delay_s == pytest.approx(5.0 + queued / 12)
    assert state.after_speech == Hangup()


def test_only_the_first_decision_counts(policy):
    state = asked(policy)
    streamed(state, policy, Sentence("Let me transfer you."), Decision("transfer", "billing"), Decision("end"),
             Finished("complete"))
    assert state.after_speech == Transfer(policy.destinations["billing"], "billing")


def test_a_reply_cut_short_keeps_what_was_said_and_reprompts(policy):
    state = asked(policy)
    commands = streamed(state, policy, Sentence("We open at nine."), Finished("stalled", None, 7))
    assert commands[-1] == Speak(policy.lines["reprompt"], 3)
    assert state.turns[-1].action == "stalled" and state.history[-1].text == "We open at nine."


def test_a_barge_in_keeps_the_heard_sentences_and_the_one_cut_off_marked(policy):
    state = asked(policy)
    streamed(state, policy, Sentence("One."), Sentence("Two."), Sentence("Three."), Finished("complete"))
    decide(state, speak_ended(2), policy)  # "One." heard, "Two." playing
    commands = decide(state, transcript("wait, another thing"), policy)
    assert commands[0] == StopPlayback() and commands[-1] == AskBrain("wait, another thing")
    assert [turn.text for turn in state.history] == ["when are you open", "One. Two. [interrupted]"]
    assert state.turns[0].barged_in and not state.turns[1].barged_in


def test_a_barge_in_after_the_whole_reply_was_heard_leaves_it_whole(policy):
    state = asked(policy)
    streamed(state, policy, Sentence("One."), Finished("stalled"))  # "One." then the reprompt, queued
    decide(state, speak_ended(2), policy)  # "One." heard; the caller talks over the reprompt
    assert decide(state, transcript("thanks"), policy)[0] == StopPlayback()
    assert [turn.text for turn in state.history] == ["when are you open", "One."]


def test_a_reply_stopped_before_its_first_sentence_leaves_a_mark_not_a_fallback(policy):
    state = asked(policy)
    assert streamed(state, policy, Finished("stopped")) == []
    assert state.history[-1].text == "[interrupted]" and state.turns[-1].action == "stopped"


def test_sentences_after_a_refused_department_are_not_spoken(policy):
    state = asked(policy)
    commands = streamed(state, policy, Decision("transfer", "legal"), Sentence("Putting you through to legal."),
                        Finished("complete"))
    assert [c.text for c in commands if isinstance(c, Speak)] == [policy.lines["transfer_announcement"]]
    default = policy.default_destination
    assert state.after_speech == Transfer(policy.destinations[default], default)


@pytest.mark.parametrize(("webhook", "cuts"), [
    (transcript("stop"), True),
    (transcript("stop", is_final=False), False),
    (transcript("   "), False),
    (event("call.dtmf.received", digit="0"), True),
    (event("call.dtmf.received", digit="5"), False),
    (event("call.hangup"), True),
    (event("call.speak.ended"), False),
])
def test_what_cuts_a_reply_being_written(webhook, cuts):
    assert cuts_reply(webhook) is cuts
