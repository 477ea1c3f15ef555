"""Swedish personal identity numbers (personnummer) and coordination numbers (samordningsnummer): parsing
(ingest), building (synthetic data, tests), and finding and redacting them in text (logs, free text, problem
details, identifiers).

Twelve digits YYYYMMDDNNNC (an optional hyphen before NNNC). C is the Luhn check digit over the last
ten digits. A samordningsnummer adds 60 to the day. The second-to-last digit is odd for men and even
for women. Nothing here logs or echoes the number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

_SHAPE = re.compile(r"^(\d{4})(\d{2})(\d{2})-?(\d{3})(\d)$")


class InvalidPersonNumber(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class PersonNumber:
    digits: str  # 12 digits, no separator; lives only in ingest's memory
    birth_date: date
    sex: Literal["female", "male"]
    coordination_number: bool

    def __repr__(self) -> str:  # never print the number, even in a traceback
        return f"PersonNumber(birth_year={self.birth_date.year}, sex={self.sex})"

    __str__ = __repr__


def luhn_check_digit(nine_digits: str) -> int:
    total = 0
    for index, char in enumerate(nine_digits):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product - 9 if product > 9 else product
    return (10 - total % 10) % 10


def parse_person_number(text: str, *, today: date) -> PersonNumber:
    match = _SHAPE.match(text)
    if match is None:
        raise InvalidPersonNumber("format", "must be 12 digits YYYYMMDDNNNC, optionally with a hyphen")
    year, month, day, serial, check = match.groups()
    day_number = int(day)
    coordination = day_number > 60
    if coordination:
        day_number -= 60
    try:
        born = date(int(year), int(month), day_number)
    except ValueError:
        raise InvalidPersonNumber(
            "impossible_date", "the birth date in the number is not a real calendar date"
        ) from None
    if int(year) < 1900:
        raise InvalidPersonNumber("impossible_date", "the birth year in the number is before 1900")
    if born > today:
        raise InvalidPersonNumber("future_birth_date", "the birth date in the number is in the future")
    ten = f"{year[2:]}{month}{day}{serial}"
    if luhn_check_digit(ten) != int(check):
        raise InvalidPersonNumber("checksum", "the check digit does not match (Luhn)")
    sex: Literal["female", "male"] = "male" if int(serial[-1]) % 2 == 1 else "female"
    return PersonNumber(f"{year}{month}{day}{serial}{check}", born, sex, coordination)


def age_on(born: date, on: date) -> int:
    """Whole years of age on a day."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def make_person_number(born: date, serial: int, *, female: bool, coordination: bool = False) -> str:
    """Build a valid number (for synthetic data and tests)."""
    serial = serial % 1000
    if female != (serial % 2 == 0):
        serial = (serial + 1) % 1000
    day = born.day + (60 if coordination else 0)
    nine = f"{born.year % 100:02d}{born.month:02d}{day:02d}{serial:03d}"
    return f"{born.year:04d}{born.month:02d}{day:02d}{serial:03d}{luhn_check_digit(nine)}"


# --- Finding numbers in text -------------------------------------------------------------------------------
# Written forms: 10 or 12 digits, with nothing, a hyphen, a plus (over 100 years old), or white space (people
# write "080412 2380") before the last four; never part of a longer digit run.
SEPARATORS = ("", "-", "+", " ", "\u00a0", "\t", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2212")
_SEPARATOR = "[-+\\s\u2010-\u2014\u2212]"
PERSONNUMMER_PATTERN = re.compile(rf"(?<!\d)(?:\d{{2}})?\d{{6}}{_SEPARATOR}?\d{{4}}(?!\d)")

# Machine identifiers whose digit runs are noise: UUIDs, and hex digests (16+ hex characters with a letter).
_MACHINE_ID = (
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?<![0-9a-fA-F])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{16,}(?![0-9a-fA-F])"
)
_SCAN = re.compile(rf"(?P<machine>{_MACHINE_ID})|(?P<number>{PERSONNUMMER_PATTERN.pattern})")
# Any run that could hold one; text without it is clean (the common case, checked in one C-level scan).
_CANDIDATE = re.compile(rf"\d{{6}}{_SEPARATOR}?\d{{4}}")


def luhn_ok(ten_digits: str) -> bool:
    return luhn_check_digit(ten_digits[:9]) == int(ten_digits[9])


def _plausible_date(digits: str) -> bool:
    month, day = int(digits[-8:-6]), int(digits[-6:-4])
    if len(digits) == 12 and digits[:2] not in ("18", "19", "20"):
        return False
    return 1 <= month <= 12 and (1 <= day <= 31 or 61 <= day <= 91)


def _numbers(text: str) -> list[re.Match[str]]:
    if _CANDIDATE.search(text) is None:
        return []
    return [m for m in _SCAN.finditer(text) if m.group("number") is not None]


def _digits(match: re.Match[str]) -> str:
    return re.sub(r"\D", "", match.group("number"))


def find_personnummer(text: str) -> list[str]:
    """Runs that are identity numbers: a calendar date (or date + 60) and a valid Luhn digit, in any written
    form. Digits inside UUIDs and hex digests (payment ids, subject refs) are skipped: about one UUID in 14,000
    ends in twelve digits that pass both checks by chance."""
    found = []
    for match in _numbers(text):
        digits = _digits(match)
        if _plausible_date(digits) and luhn_ok(digits[-10:]):
            found.append(match.group("number"))
    return found


def looks_like_personnummer(text: str) -> bool:
    return bool(find_personnummer(text))


def redact(text: str) -> str:
    """Replace every run that could be an identity number, with or without a valid check digit (a mistyped
    number is still personal data); leave machine identifiers (UUIDs, digests) and runs that hold no calendar
    date (offsets, timestamps, amounts) as they are."""
    if _CANDIDATE.search(text) is None:
        return text

    def replace(match: re.Match[str]) -> str:
        if match.group("number") is not None and _plausible_date(_digits(match)):
            return "[redacted]"
        return match.group(0)

    return _SCAN.sub(replace, text)
