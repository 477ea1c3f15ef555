"""Aggregated submissions, validated as pure functions: JSON rows or a CSV sheet in, figures or
field-pointed reasons out. A resubmission of the same key supersedes the previous version."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pydantic import ValidationError

from utfall_events.aggregates import CSV_COLUMNS, AggregateFiguresV1
from utfall_events.catalogue import known_version
from utfall_events.personnummer import redact

from .validation import Reason, reasons_of

_INTEGER = re.compile(r"^\s*-?\d+\s*$")
INT_FIELDS = ("measure_version", "numerator", "denominator", "missing")
OPTIONAL = ("care_type", "legal_basis", "sex", "age_band")


@dataclass(frozen=True, slots=True)
class RowRejection:
    row: int
    reasons: tuple[Reason, ...]


def period_end(period: str) -> date:
    """The last day of a year (2024) or quarter (2024-Q3)."""
    year = int(period[:4])
    quarter = 4 if len(period) == 4 else int(period[-1])
    if quarter == 4:
        return date(year, 12, 31)
    return date(year, quarter * 3 + 1, 1) - timedelta(days=1)


def check_figures(
    raw: Any, *, provider_id: str, today: date, pointer: str = ""
) -> AggregateFiguresV1 | list[Reason]:
    try:
        figures = AggregateFiguresV1.model_validate(raw)
    except ValidationError as exc:
        return reasons_of(exc, pointer)
    reasons: list[Reason] = []
    if figures.provider_id != provider_id:
        reasons.append(
            Reason(
                f"{pointer}/provider_id",
                "provider_mismatch",
                "provider_id must be the provider the API key belongs to",
            )
        )
    if not known_version(figures.measure_id, figures.measure_version):
        reasons.append(
            Reason(
                f"{pointer}/measure_id",
                "unknown_measure",
                "no such measure id and version in the catalogue (GET /v1/measures)",
            )
        )
    if period_end(figures.period) >= today:
        reasons.append(Reason(f"{pointer}/period", "open_period", "the period has not ended yet"))
    if reasons:
        return reasons
    return figures.model_copy(update={"method": redact(figures.method)})


def parse_csv(text: str) -> tuple[list[dict[str, Any]], list[RowRejection]]:
    """Rows of a CSV sheet (header line required) as JSON-like dicts; counts must be whole numbers."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_COLUMNS if c not in header and c not in (*OPTIONAL, "missing")]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if missing or unknown:
        header_reasons = [
            Reason(f"/header/{c}", "missing_column", "required column is missing") for c in missing
        ]
        header_reasons += [
            Reason("/header", "unknown_column", "unknown column (see the CSV template)") for _ in unknown[:1]
        ]
        return [], [RowRejection(0, tuple(header_reasons))]
    rows: list[dict[str, Any]] = []
    rejected: list[RowRejection] = []
    for number, record in enumerate(reader, start=1):
        values = {k.strip(): (v or "").strip() for k, v in record.items() if k is not None}
        row: dict[str, Any] = {}
        reasons: list[Reason] = []
        for name, value in values.items():
            if name in OPTIONAL and value == "":
                continue
            if name == "missing" and value == "":
                continue
            if name in INT_FIELDS:
                if not _INTEGER.match(value):
                    reasons.append(
                        Reason(f"/{number}/{name}", "not_a_whole_number", "must be a whole number")
                    )
                    continue
                row[name] = int(value)
            else:
                row[name] = value
        if reasons:
            rejected.append(RowRejection(number, tuple(reasons)))
            rows.append({"__rejected__": True})
        else:
            rows.append(row)
    return rows, rejected


@dataclass(frozen=True, slots=True)
class Versioning:
    status: str  # accepted | unchanged
    version: int
    supersedes: int | None


def next_version(latest: tuple[int, dict[str, Any]] | None, figures: AggregateFiguresV1) -> Versioning:
    """A resubmission of a key becomes a new version that supersedes the previous; identical figures change
    nothing."""
    if latest is None:
        return Versioning("accepted", 1, None)
    version, previous = latest
    if previous == figures.model_dump(mode="json"):
        return Versioning("unchanged", version, None)
    return Versioning("accepted", version + 1, version)
