"""Swedish personal identity numbers (personnummer) and coordination numbers (samordningsnummer).

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
