"""brains/intent.py: the offline intent brain, against the shipped example config (a dental clinic)."""

from __future__ import annotations

import pytest

from brains import BrainReply, Turn
from brains.intent import NOT_SURE, IntentBrain, normalise
from config import build_settings

MIN_CONFIDENCE = 0.55  # dialog.min_confidence in config.example.yml


@pytest.fixture
def intent_brain(settings) -> IntentBrain:
    return IntentBrain(settings)


def brain_for(raw_config: dict) -> IntentBrain:
    """An intent brain for an edited copy of the example config."""
    raw_config["webhook"]["verify_signatures"] = False
    return IntentBrain(build_settings(raw_config, {}))


def test_example_config_threshold_is_the_one_these_tests_assume(settings):
    assert settings.dialog.min_confidence == MIN_CONFIDENCE


# Paraphrases that appear in no intent's examples.
@pytest.mark.parametrize(
    "utterance, intent",
    [
        ("what time do you open on saturdays", "hours"),
        ("when do you close today", "hours"),
        ("Are you open Sundays?", "hours"),
        ("what are your opening hours", "hours"),
        ("where's your office", "address"),
        ("what's the address of the clinic", "address"),
        ("how do I find you", "address"),
        ("I'd like to make a booking", "appointment"),
        ("can I get a checkup appointment", "appointment"),
        ("I want to schedule a visit with the dentist", "appointment"),
        ("I have a billing question", "billing"),
        ("do you accept Delta Dental insurance", "billing"),
        ("how much is a filling", "billing"),
        ("ok that's all, thank you", "goodbye"),
        ("bye bye", "goodbye"),
        ("no thats it thanks", "goodbye"),
    ],
)
def test_paraphrases_reach_their_intent(intent_brain, settings, utterance, intent):
    expected = next(i for i in settings.intents if i.name == intent)
    reply = intent_brain.reply([], utterance)
    assert reply.reply == expected.answer
    assert reply.action == expected.action
    assert reply.department == expected.department
    assert MIN_CONFIDENCE < reply.confidence <= 1.0


@pytest.mark.parametrize(
    "utterance, department",
    [
        ("I need to book a cleaning", "front_desk"),
        ("I would like to pay my bill", "billing"),
    ],
)
def test_transfer_intents_carry_their_department(intent_brain, utterance, department):
    reply = intent_brain.reply([], utterance)
    assert reply.action == "transfer"
    assert reply.department == department


def test_goodbye_ends_the_call(intent_brain):
    reply = intent_brain.reply([Turn("assistant", "Anything else?")], "thanks goodbye")
    assert reply == BrainReply("You're welcome. Have a great day!", "end", 1.0, None)


def test_case_and_punctuation_do_not_matter(intent_brain):
    assert intent_brain.reply([], "WHERE ARE YOU LOCATED?!").confidence == 1.0


@pytest.mark.parametrize(
    "utterance",
    [
        "tell me a joke about penguins",
        "asdf qwerty zxcv",
        "what's the weather like",
        "is this the pizza place",
        "my car broke down on the highway",
        "who won the game last night",
        "I'd like to order a large pepperoni pizza",
        "blah blah blah",
    ],
)
def test_unrelated_or_gibberish_is_low_confidence(intent_brain, utterance):
    reply = intent_brain.reply([], utterance)
    assert reply.confidence < MIN_CONFIDENCE
    assert (reply.reply, reply.action, reply.department) == (NOT_SURE, "continue", None)


@pytest.mark.parametrize("utterance", ["", "   ", "um", "I", "you", "?!"])
def test_empty_or_filler_only_utterance_scores_zero(intent_brain, utterance):
    assert intent_brain.reply([], utterance) == BrainReply(NOT_SURE, "continue", 0.0, None)


def test_business_description_answers_what_do_you_do(intent_brain):
    reply = intent_brain.reply([], "what services do you offer?")
    assert "family dental clinic offering check-ups" in reply.reply
    assert reply.action == "continue"
    assert reply.confidence > MIN_CONFIDENCE


def test_configured_intent_wins_over_the_built_in_fact(intent_brain):
    reply = intent_brain.reply([], "what are your hours")
    assert reply.reply.startswith("We're open Monday to Friday from 8 am to 5 pm")


def test_business_facts_answered_without_any_intents(raw_config):
    raw_config["intents"] = []
    facts_only = brain_for(raw_config)
    hours = facts_only.reply([], "what time do you close on saturday")
    address = facts_only.reply([], "where is your office")
    assert "Saturday 9 am to 1 pm" in hours.reply and hours.confidence > MIN_CONFIDENCE
    assert "1200 Harbor Street" in address.reply and address.confidence > MIN_CONFIDENCE


def test_no_intents_and_no_facts_means_not_sure(raw_config):
    raw_config["intents"] = None
    raw_config["business"].update(hours="", address="", description="")
    assert brain_for(raw_config).reply([], "what are your hours").confidence == 0.0


def test_normalise_drops_case_punctuation_and_filler():
    assert normalise("What's your ADDRESS?") == "address"
    assert normalise("I'd like to book, please!") == "book"
