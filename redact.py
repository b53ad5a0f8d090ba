"""Masking of phone numbers and other personal data before anything is logged or stored."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# A phone number or card-like run: 7+ digits, allowing spaces, dots, dashes and brackets between them.
_DIGIT_RUN = re.compile(r"\+?\d(?:[\s().-]{0,2}\d){6,}")


def mask_number(number: str | None) -> str:
    """'+13125550111' -> '+1*******11': enough to tell calls apart in a log, not enough to dial."""
    if not number:
        return "unknown"
    digits = number.strip()
    if len(digits) <= 4:
        return "*" * len(digits)
    return digits[:2] + "*" * (len(digits) - 4) + digits[-2:]


def redact_text(text: str) -> str:
    """Replace emails and long digit runs (phones, cards, account numbers) in free text."""
    text = _EMAIL.sub("[email]", text)
    return _DIGIT_RUN.sub("[number]", text)
