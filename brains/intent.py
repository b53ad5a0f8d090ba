"""The offline brain: fuzzy-matches what the caller said against each intent's example phrases.

No key and no network. Both sides are normalised (lower case, no punctuation, English filler words
dropped) and compared with rapidfuzz's token-set ratio, which ignores word order and rewards an
utterance that contains an example's key words. Confidence is the best score / 100; the dialog, not
this brain, decides what a low confidence means. Questions about the business's hours, address and
what it does are answered from `business.*` even when no intent covers them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from rapidfuzz import fuzz, process, utils

from brains import BrainReply, Turn
from config import Intent, Settings

log = logging.getLogger(__name__)

NOT_SURE = "I'm not sure I can help with that. Could you say it another way?"

# Words that carry no intent of their own; without them "I" or "you" would fully match an example.
# English only: a business in another language should list its own.
FILLER_WORDS = """
a about am an and any are at be can could d did do does for get got guys has have hello hey hi i id im
is it just know let like ll m me my need of ok okay on or please re s so some t tell that the there
this to uh um us ve want was we what whats would you your yours
"""
STOPWORDS = frozenset(FILLER_WORDS.split())

FACT_EXAMPLES = {
    "hours": ("what are your hours", "when are you open", "what time do you open", "what time do you close"),
    "address": ("where are you located", "what is your address", "how do I get to you", "where is the office"),
    "about": ("what services do you offer", "what kind of business is this", "what do you offer"),
}


def normalise(text: str) -> str:
    """Lower-case, strip punctuation and filler words: "What's your ADDRESS?" becomes "address"."""
    return " ".join(word for word in utils.default_process(text).split() if word not in STOPWORDS)


def fact_intents(settings: Settings) -> list[Intent]:
    """Intents answering from business.hours/address/description, for facts no configured intent names."""
    business = settings.business
    answers = {
        "hours": business.hours and f"Our opening hours are {business.hours}",
        "address": business.address and f"You'll find us at {business.address}",
        "about": business.description and f"This is {business.name}. {business.description}",
    }
    configured = {intent.name for intent in settings.intents}
    return [
        Intent(name, FACT_EXAMPLES[name], answer)
        for name, answer in answers.items()
        if answer and name not in configured
    ]


class IntentBrain:
    """Brain that answers with the configured intent whose example phrase best matches the utterance."""

    def __init__(self, settings: Settings):
        intents = [*settings.intents, *fact_intents(settings)]
        pairs = [(normalise(example), intent) for intent in intents for example in intent.examples]
        pairs = [(text, intent) for text, intent in pairs if text]  # an all-filler example can never match
        self._phrases = [text for text, _ in pairs]
        self._owners = [intent for _, intent in pairs]
        self._threshold = settings.dialog.min_confidence
        log.debug("intent brain: %d intents, %d example phrases", len(intents), len(pairs))

    def reply(self, history: Sequence[Turn], utterance: str) -> BrainReply:
        """The best-matching intent's answer, or a short "not sure" when nothing matches well."""
        intent, confidence = self.match(utterance)
        if intent is None or confidence < self._threshold:
            return BrainReply(NOT_SURE, "continue", confidence)
        return BrainReply(intent.answer, intent.action, confidence, intent.department)

    def match(self, utterance: str) -> tuple[Intent | None, float]:
        """The best intent for the utterance and its score in 0..1 (None, 0.0 when there is nothing to match)."""
        query = normalise(utterance)
        if not query or not self._phrases:
            return None, 0.0
        _, score, index = process.extractOne(query, self._phrases, scorer=fuzz.token_set_ratio, processor=None)
        return self._owners[index], score / 100
