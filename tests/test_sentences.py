"""sentences.py: where a reply being written is cut into sentences to speak, fed whole and token by token."""

from __future__ import annotations

import re
import time

import pytest

from sentences import SentenceSplitter, split_text

CASES = {
    "plain": ("We open at nine. We close at five.", ["We open at nine.", "We close at five."]),
    "question and exclamation": ("Can I help? Great! Bye.", ["Can I help?", "Great!", "Bye."]),
    "title before a name": ("Dr. Patel is in today. Mrs. Lee is not.", ["Dr. Patel is in today.", "Mrs. Lee is not."]),
    "times": ("We are open from 9 a.m. to 5 p.m. on weekdays. Call us.",
              ["We are open from 9 a.m. to 5 p.m. on weekdays.", "Call us."]),
    "time ending a sentence": ("We close at 5 p.m. Call us tomorrow.", ["We close at 5 p.m.", "Call us tomorrow."]),
    "price": ("The fee is $45.50. It is due today.", ["The fee is $45.50.", "It is due today."]),
    "city": ("Our office is in St. Louis. Parking is free.", ["Our office is in St. Louis.", "Parking is free."]),
    "e.g.": ("Bring an ID, e.g. a passport. Thanks.", ["Bring an ID, e.g. a passport.", "Thanks."]),
    "i.e.": ("Come early, i.e. before nine. Thanks.", ["Come early, i.e. before nine.", "Thanks."]),
    "numbers with dots": ("Version 2.5.1 is out. Room No. 4 is free.",
                          ["Version 2.5.1 is out.", "Room No. 4 is free."]),
    "ellipsis then more": ("Well... let me check. Yes.", ["Well... let me check.", "Yes."]),
    "ellipsis then a sentence": ("Hmm... Let me check.", ["Hmm...", "Let me check."]),
    "unicode ellipsis": ("Hmm… Let me check.", ["Hmm…", "Let me check."]),
    "double quotes": ('He said "we are closed." Then he left.', ['He said "we are closed."', "Then he left."]),
    "curly quotes": ("She said “thanks!” Then she hung up.", ["She said “thanks!”", "Then she hung up."]),
    "brackets": ("We open at nine (on weekdays.) See you.", ["We open at nine (on weekdays.)", "See you."]),
    "no punctuation at all": ("sure thing", ["sure thing"]),
    "initialism ending a reply": ("We ship across the U.S.", ["We ship across the U.S."]),
    "interrobang": ("Really?! Yes.", ["Really?!", "Yes."]),
    "leading and extra spaces": ("  We open at nine.   Bye.  ", ["We open at nine.", "Bye."]),
    "long first sentence cut at a clause": (
        "Our office is at 12 Main Street, right next to the library and across from the park. See you.",
        ["Our office is at 12 Main Street,", "right next to the library and across from the park.", "See you."],
    ),
    "long first sentence without punctuation": (
        " ".join(f"w{n}" for n in range(30)),
        [" ".join(f"w{n}" for n in range(25)), " ".join(f"w{n}" for n in range(25, 30))],
    ),
    "only the first sentence is cut for length": (
        "Hi. " + " ".join(f"w{n}," for n in range(20)) + " end.",
        ["Hi.", " ".join(f"w{n}," for n in range(20)) + " end."],
    ),
}


def tokens(text: str) -> list[str]:
    """About how a model's tokenizer writes: a word with its leading space, a run of punctuation ("...", '."')."""
    return re.findall(r"\s*[^\W_]+|\s*[^\w\s]+|\s+$", text)


def streamed(text: str, pieces: list[str] | None = None) -> list[str]:
    splitter = SentenceSplitter()
    out = [sentence for piece in (pieces or tokens(text)) for sentence in splitter.feed(piece)]
    rest = splitter.flush()
    return out + [rest] if rest else out


@pytest.mark.parametrize(("text", "expected"), CASES.values(), ids=CASES.keys())
def test_split_points_token_by_token(text, expected):
    assert streamed(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES.values(), ids=CASES.keys())
def test_one_character_at_a_time_loses_no_word(text, expected):
    """Fed a character at a time, a sentence may end at a dot before the rest of an ellipsis or a closing
    quote arrives (those marks are then dropped); every word is still spoken, whole and in order."""
    got = streamed(text, list(text))
    assert words(" ".join(got)) == words(text)
    assert all(sentence.strip() for sentence in got)


def words(text: str) -> list[str]:
    return re.findall(r"[\w$]+(?:[.,'][\w]+)*", text)


def test_whole_text_agrees_when_no_length_cut_applies():
    for name, (text, expected) in CASES.items():
        if not name.startswith(("long", "only")):
            assert split_text(text) == expected, name


def test_a_sentence_is_given_as_soon_as_it_can_only_be_complete():
    splitter = SentenceSplitter()
    assert splitter.feed("We open at nine.") == ["We open at nine."]  # a plain word's dot: at once
    assert splitter.feed(" Really?") == ["Really?"]
    assert splitter.feed(" See you at 5 p.m.") == []
    assert splitter.feed(" ") == []  # "p.m." waits for the next word: a capital ends it, a small letter not
    assert splitter.feed("Bye") == ["See you at 5 p.m."]
    assert splitter.feed(" now, Dr.") == []  # a title never ends a sentence
    assert splitter.feed(" Patel. The fee is 45.") == ["Bye now, Dr. Patel."]  # "45." may yet be "45.50"
    assert splitter.feed("50 dollars.") == ["The fee is 45.50 dollars."]
    assert splitter.pending == ""


def test_never_half_a_word():
    """Whatever the pieces, every sentence given is made of whole words of the text."""
    text = "Absolutely wonderful accommodation arrangements, unquestionably extraordinary circumstances " * 3
    words = set(text.split())
    for size in (1, 3, 7):
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        splitter = SentenceSplitter()
        given = [s for piece in pieces for s in splitter.feed(piece)]
        assert given and all(set(s.split()) <= words for s in given)


def test_fast_enough_to_never_matter():
    """A long reply fed a token at a time costs well under a millisecond per token."""
    text = " ".join(text for text, _ in CASES.values()) * 4
    pieces = tokens(text)
    started = time.perf_counter()
    streamed(text, pieces)
    per_token_ms = (time.perf_counter() - started) * 1000 / len(pieces)
    assert per_token_ms < 0.5, per_token_ms
