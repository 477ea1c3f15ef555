"""Personnummer and samordningsnummer rules (hypothesis over dates, serials, sexes)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utfall_events.personnummer import (
    SEPARATORS,
    InvalidPersonNumber,
    age_on,
    find_personnummer,
    luhn_check_digit,
    make_person_number,
    parse_person_number,
    redact,
)

TODAY = date(2026, 11, 24)
births = st.dates(min_value=date(1990, 1, 1), max_value=TODAY)


@given(born=births, serial=st.integers(0, 999), female=st.booleans(), coordination=st.booleans())
def test_round_trip(born: date, serial: int, female: bool, coordination: bool) -> None:
    number = make_person_number(born, serial, female=female, coordination=coordination)
    parsed = parse_person_number(number, today=TODAY)
    assert parsed.birth_date == born
    assert parsed.sex == ("female" if female else "male")
    assert parsed.coordination_number is coordination
    hyphenated = parse_person_number(number[:8] + "-" + number[8:], today=TODAY)
    assert hyphenated.digits == number


@given(born=births, serial=st.integers(0, 999), wrong=st.integers(1, 9))
def test_any_other_check_digit_is_rejected(born: date, serial: int, wrong: int) -> None:
    number = make_person_number(born, serial, female=True)
    bad = number[:-1] + str((int(number[-1]) + wrong) % 10)
    with pytest.raises(InvalidPersonNumber) as caught:
        parse_person_number(bad, today=TODAY)
    assert caught.value.code == "checksum"


@pytest.mark.parametrize("text", ["20080230", "20081301", "20080100", "20080192", "20080431"])
def test_impossible_calendar_dates(text: str) -> None:
    nine = text[2:] + "123"
    number = text + "123" + str(luhn_check_digit(nine))
    with pytest.raises(InvalidPersonNumber) as caught:
        parse_person_number(number, today=TODAY)
    assert caught.value.code == "impossible_date"


def test_samordningsnummer_day_plus_60_and_leap_day() -> None:
    leap = make_person_number(date(2008, 2, 29), 12, female=False, coordination=True)
    assert leap[6:8] == "89"
    assert parse_person_number(leap, today=TODAY).birth_date == date(2008, 2, 29)


@given(days=st.integers(1, 3000))
def test_future_birth_dates_are_rejected(days: int) -> None:
    born = TODAY + timedelta(days=days)
    number = make_person_number(born, 5, female=True)
    with pytest.raises(InvalidPersonNumber) as caught:
        parse_person_number(number, today=TODAY)
    assert caught.value.code == "future_birth_date"


@pytest.mark.parametrize(
    "text", ["", "2008041212", "20080412+1234", "2008-04-12-1234", "abcdefghijkl", "2008041212345"]
)
def test_shapes_other_than_twelve_digits(text: str) -> None:
    with pytest.raises(InvalidPersonNumber) as caught:
        parse_person_number(text, today=TODAY)
    assert caught.value.code == "format"


def test_the_number_never_shows_in_repr_or_errors() -> None:
    number = make_person_number(date(2009, 6, 1), 44, female=True)
    parsed = parse_person_number(number, today=TODAY)
    assert number not in repr(parsed) and number not in str(parsed)
    try:
        parse_person_number(number[:-1] + str((int(number[-1]) + 1) % 10), today=TODAY)
    except InvalidPersonNumber as exc:
        assert number[:8] not in str(exc)


@pytest.mark.parametrize(
    ("born", "on", "age"),
    [
        (date(2008, 4, 12), date(2024, 4, 11), 15),
        (date(2008, 4, 12), date(2024, 4, 12), 16),
        (date(2008, 2, 29), date(2025, 2, 28), 16),
        (date(2008, 2, 29), date(2025, 3, 1), 17),
    ],
)
def test_whole_years_of_age(born: date, on: date, age: int) -> None:
    assert age_on(born, on) == age


@settings(max_examples=200)
@given(born=st.dates(min_value=date(1920, 1, 1), max_value=date(2020, 12, 31)), serial=st.integers(0, 999))
def test_the_leak_detector_finds_a_number_in_any_text_around_it(born: date, serial: int) -> None:
    number = make_person_number(born, serial, female=serial % 2 == 0)
    for text in (f'{{"pnr": "{number}"}}', f"pnr={number[2:8]}-{number[8:]} ", f"fel person {number}."):
        assert find_personnummer(text)


def test_the_leak_detector_skips_digit_runs_inside_uuids_and_hex_digests() -> None:
    # Both pass the date and Luhn checks on their own; inside machine identifiers they are noise.
    lucky_uuid = "9b1d4a0e-1c2f-5a3b-8e4d-199001011239"
    lucky_digest = "v1:" + "ab" * 20 + "9001011239" + "cd" * 7
    assert find_personnummer("199001011239") == ["199001011239"]
    assert find_personnummer(lucky_uuid) == []
    assert find_personnummer(lucky_digest) == []


def _find_without_prefilter(text: str) -> list[str]:
    from utfall_events import personnummer

    found = []
    for match in personnummer._SCAN.finditer(text):
        if match.group("number") is None:
            continue
        digits = "".join(c for c in match.group("number") if c.isdigit())
        if personnummer._plausible_date(digits) and personnummer.luhn_ok(digits[-10:]):
            found.append(match.group("number"))
    return found


@settings(max_examples=400)
@given(
    parts=st.lists(
        st.one_of(
            st.text(alphabet="0123456789abcdef-+ #\u00a0\u2013", max_size=20),
            st.uuids().map(str),
            st.builds(lambda b, s: make_person_number(b, s, female=False), births, st.integers(0, 999)),
        ),
        max_size=6,
    )
)
def test_the_prefilter_never_hides_a_number(parts: list[str]) -> None:
    """Text without a 10-digit run is skipped in one scan; that gives the same answer as the full search,
    also for numbers glued to UUIDs and digests."""
    text = "".join(parts)
    assert find_personnummer(text) == _find_without_prefilter(text)


written_forms = st.builds(
    lambda born, serial, separator, century: (
        (number := make_person_number(born, serial, female=serial % 2 == 0))[0 if century else 2 : 8]
        + separator
        + number[8:]
    ),
    st.dates(min_value=date(1920, 1, 1), max_value=date(2020, 12, 31)),
    st.integers(0, 999),
    st.sampled_from(SEPARATORS),
    st.booleans(),
)
surroundings = st.sampled_from(
    ["{}", "reason: {}.", '{{"x": "{}"}}', "fel person {} igen", "({})", "a\n{}\nb"]
)


@settings(max_examples=400)
@given(written=written_forms, around=surroundings)
def test_every_written_form_is_found_and_redacted(written: str, around: str) -> None:
    """10 or 12 digits with no separator, a hyphen, a plus, a space (also non-breaking), a tab or a dash
    before the last four: found by the leak scans and replaced in free text, logs and problem details."""
    text = around.format(written)
    assert find_personnummer(text) == [written]
    redacted = redact(text)
    assert written not in redacted and "[redacted]" in redacted
    assert not any(c.isdigit() for c in redacted)


@settings(max_examples=300)
@given(
    machine_id=st.one_of(
        st.uuids().map(str),
        st.binary(min_size=8, max_size=32).map(bytes.hex).filter(lambda h: any(c in "abcdef" for c in h)),
    ),
    around=surroundings,
)
def test_machine_identifiers_stay_intact(machine_id: str, around: str) -> None:
    """UUIDs (payment ids, consumer member ids) and hex digests (subject refs, key hashes) are never redacted,
    even where their digits would pass as a number."""
    text = around.format(machine_id)
    assert redact(text) == text
    assert find_personnummer(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "aiokafka-0.12.0-1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed",  # a consumer member id
        "partition 3 offset 1234567890 at 1764720000",  # offsets and epoch seconds hold no calendar date
        "amount_ore 4500000000",
        "199001011239abcdef0123",  # glued to a digest
    ],
)
def test_ordinary_numbers_in_logs_stay_intact(text: str) -> None:
    assert redact(text) == text
