"""Masking of phone numbers and other personal data before anything is logged or stored."""

from __future__ import annotations

import re

# Matches start only where a run of address characters starts, so a long word without '@' costs one scan,
# not one scan per character (a model can answer with kilobytes of text).
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(\.[\w-]+)+")
# Between the digits of a number people and models write spaces, dots, dashes (also en and em dashes),
# commas, slashes and brackets, up to three in a row ("555 - 867 - 5309").
_SEPARATOR = r"[\s().,/\u2010-\u2015-]"
# A phone number or card-like run: 7+ digits with separators between them.
_DIGIT_RUN = re.compile(rf"\+?\d(?:{_SEPARATOR}{{0,3}}\d){{6,}}")
# Speech recognition may write digits read one by one as words: "five five five, eight six seven ...".
_DIGIT_WORDS = "zero|oh|one|two|three|four|five|six|seven|eight|nine"
_SPOKEN_TOKEN = rf"(?:{_DIGIT_WORDS}|\d+)\b"
_SPOKEN_RUN = re.compile(rf"\b(?:{_SPOKEN_TOKEN}{_SEPARATOR}{{1,3}}){{2,}}{_SPOKEN_TOKEN}", re.IGNORECASE)
_SPOKEN_DIGITS = re.compile(rf"{_DIGIT_WORDS}|\d+", re.IGNORECASE)


def mask_number(number: str | None) -> str:
    """'+13125550111' -> '+1*******11': enough to tell calls apart in a log, not enough to dial."""
    if not number:
        return "unknown"
    digits = number.strip()
    if len(digits) <= 4:
        return "*" * len(digits)
    return digits[:2] + "*" * (len(digits) - 4) + digits[-2:]


def redact_text(text: str) -> str:
    """Replace emails and long digit runs (phones, cards, account numbers), written or spoken, in free text."""
    text = _EMAIL.sub("[email]", text)
    text = _SPOKEN_RUN.sub(_mask_spoken, text)
    return _DIGIT_RUN.sub("[number]", text)


def _mask_spoken(match: re.Match) -> str:
    # Count digits, not words: "555 eight six seven 5309" is ten digits in five words. Runs of written
    # digits only are left to _DIGIT_RUN, which also takes a leading "+".
    tokens = _SPOKEN_DIGITS.findall(match.group())
    if all(token.isdigit() for token in tokens):
        return match.group()
    digits = sum(len(token) if token.isdigit() else 1 for token in tokens)
    return "[number]" if digits >= 7 else match.group()
