"""Aggregated submissions: every validation rule, CSV parsing, and the supersede rule."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from utfall_events.aggregates import AggregateFiguresV1
from utfall_ingest.domain.aggregates import check_figures, next_version, parse_csv, period_end
from utfall_ingest.domain.validation import Reason

TODAY = date(2026, 11, 24)


def figures(**change: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "provider_id": "kommunens-hvb",
        "measure_id": "planned_discharge",
        "measure_version": 1,
        "period": "2025",
        "target_group": "behaviour",
        "numerator": 12,
        "denominator": 20,
        "missing": 3,
        "method": "Journalgenomgång av samtliga avslut",
    }
    base.update(change)
    return base


def codes(result: object) -> set[tuple[str, str]]:
    assert isinstance(result, list), result
    return {(r.field, r.code) for r in result if isinstance(r, Reason)}


def check(raw: Any, provider: str = "kommunens-hvb") -> object:
    return check_figures(raw, provider_id=provider, today=TODAY)


def test_valid_submission() -> None:
    result = check(figures(care_type="hvb", sex="female", age_band="16-17"))
    assert isinstance(result, AggregateFiguresV1)
    assert result.key() == "kommunens-hvb/planned_discharge/1/2025/behaviour/hvb/*/female/16-17"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"measure_id": "happiness"}, ("/measure_id", "unknown_measure")),
        ({"measure_version": 7}, ("/measure_id", "unknown_measure")),
        ({"numerator": 21}, ("", "value_error")),
        ({"numerator": -1}, ("/numerator", "greater_than_equal")),
        ({"denominator": 2.5}, ("/denominator", "int_type")),
        ({"missing": "3"}, ("/missing", "int_type")),
        ({"period": "2026"}, ("/period", "open_period")),
        ({"period": "2026-Q4"}, ("/period", "open_period")),
        ({"period": "2025-Q5"}, ("/period", "string_pattern_mismatch")),
        ({"target_group": "teenagers"}, ("/target_group", "literal_error")),
        ({"care_type": "boat"}, ("/care_type", "literal_error")),
        ({"sex": "x"}, ("/sex", "literal_error")),
        ({"age_band": "10-20"}, ("/age_band", "literal_error")),
        ({"provider_id": "someone-else"}, ("/provider_id", "provider_mismatch")),
        ({"colour": "red"}, ("/colour", "extra_forbidden")),
    ],
)
def test_each_rule(change: dict[str, Any], expected: tuple[str, str]) -> None:
    assert expected in codes(check(figures(**change)))


def test_closed_periods() -> None:
    assert period_end("2026-Q3") == date(2026, 9, 30)
    assert period_end("2024-Q1") == date(2024, 3, 31)
    assert period_end("2025") == date(2025, 12, 31)
    assert isinstance(check(figures(period="2026-Q3")), AggregateFiguresV1)


def test_csv_sheet() -> None:
    text = (
        "provider_id,measure_id,measure_version,period,target_group,care_type,numerator,denominator,missing,method\n"
        "kommunens-hvb,planned_discharge,1,2025,behaviour,hvb,10,14,2,journal\n"
        "kommunens-hvb,planned_discharge,1,2025,other,,3.5,14,0,journal\n"
        "kommunens-hvb,planned_discharge,1,2025,other,,three,14,,journal\n"
    )
    rows, rejected = parse_csv(text)
    assert rows[0]["numerator"] == 10 and "care_type" in rows[0] and "sex" not in rows[0]
    assert [(r.row, r.reasons[0].code, r.reasons[0].field) for r in rejected] == [
        (2, "not_a_whole_number", "/2/numerator"),
        (3, "not_a_whole_number", "/3/numerator"),
    ]
    assert isinstance(check(rows[0]), AggregateFiguresV1)


def test_csv_header_must_be_known() -> None:
    _, rejected = parse_csv("provider,measure\nx,y\n")
    assert rejected[0].row == 0 and {r.code for r in rejected[0].reasons} >= {
        "missing_column",
        "unknown_column",
    }


def test_supersede_rule() -> None:
    first = AggregateFiguresV1.model_validate(figures())
    assert next_version(None, first).version == 1
    again = next_version((1, first.model_dump(mode="json")), first)
    assert (again.status, again.version) == ("unchanged", 1)
    corrected = AggregateFiguresV1.model_validate(figures(numerator=13))
    after = next_version((1, first.model_dump(mode="json")), corrected)
    assert (after.status, after.version, after.supersedes) == ("accepted", 2, 1)
    assert corrected.key() == first.key()
