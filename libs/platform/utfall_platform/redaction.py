"""Personnummer detection and redaction: the last line of defence for logs and free text."""

from __future__ import annotations

import re

# 10 or 12 digits, optionally with - or + before the last four, not part of a longer digit run.
PERSONNUMMER_PATTERN = re.compile(r"(?<!\d)(?:\d{2})?\d{6}[-+]?\d{4}(?!\d)")


def luhn_ok(ten_digits: str) -> bool:
    total = 0
    for index, char in enumerate(ten_digits):
        digit = int(char) * (2 if index % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def looks_like_personnummer(text: str) -> bool:
    """True when any 10- or 12-digit run in the text passes the Luhn check."""
    for match in PERSONNUMMER_PATTERN.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if luhn_ok(digits[-10:]):
            return True
    return False


def redact(text: str) -> str:
    """Replace every 10- or 12-digit identity-number-shaped run, checksum or not."""
    return PERSONNUMMER_PATTERN.sub("[redacted]", text)
