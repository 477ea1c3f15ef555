"""Releases of the open comparisons, as pure functions: one measure's counts in; its released tables, the
page's views of them and the change list against the previous release out.

The tables of a release (`utfall_events.releases.TABLES`) publish the same episodes many ways: provider by
discharge year, provider over all years, national by year and over all years, and national breakdowns by
year. Each total is the sum of its parts in every table, so small cells are suppressed across all of them
together (`utfall_stats.linked`): no suppressed cell can be derived by subtraction from anything the release
publishes. Every view is then computed as the live API computes it (`results.compare`, `results.disclose`),
and any cell suppressed anywhere is suppressed everywhere it appears.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from utfall_events.releases import CellChangeV1, ReleasedCellV1
from utfall_stats.linked import Relation, suppress_linked

from .auth import PUBLIC
from .results import (
    SHOWN,
    TALLIES,
    ResultsQuery,
    build_cells,
    compare,
    comparison_query,
    disclose,
    funnel_of,
    row,
)

CellKey = tuple[Any, ...]  # (source, table, *dimension values)
ALL_YEARS = "all"
SOURCES = ("events", "self_reported")
SUPPRESSION = (
    "primary: fewer than min_cell closed episodes; complementary: across all tables of the release together "
    "(each source apart), until no suppressed cell can be computed from the published cells by any sum or "
    "difference"
)


@dataclass(frozen=True)
class MeasureCounts:
    """What a release reads of one measure, in one snapshot. `provider_year`: event-based counts per provider
    and discharge year; `reported_year`: the same from providers' aggregated submissions; `strata`: comparison
    strata and `reported`: fitting submissions per provider, per discharge year (`ALL_YEARS`: every year);
    `breakdowns`: event-based counts per dimension value and year; `errors`: data errors per provider."""

    measure_id: str
    measure_version: int
    provider_year: Sequence[Mapping[str, Any]]
    strata: Mapping[int | str, Sequence[Mapping[str, Any]]]
    breakdowns: Mapping[str, Sequence[Mapping[str, Any]]]
    errors: Mapping[str, int] = field(default_factory=dict)
    queries: Mapping[int | str, ResultsQuery] = field(default_factory=dict)  # windowed comparison queries
    reported_year: Sequence[Mapping[str, Any]] = ()
    reported: Mapping[int | str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)


def linked_cells(counts: MeasureCounts) -> tuple[dict[CellKey, int], list[Relation[CellKey]]]:
    """Every cell of the release's tables with its number of closed episodes, and how they add up: a
    provider's years to its all-years total, the providers of a year (and the values of each breakdown of
    that year) to the national figure of the year, and the years (and the providers' totals) to the
    national total; for event-based and self-reported figures apart (each has its own totals)."""
    closed: dict[CellKey, int] = {}
    # one entry per way a total is broken down: (total, how) -> its parts
    breakdown_of: dict[tuple[CellKey, str], list[CellKey]] = {}

    def add(key: CellKey, n: int, *part_of: tuple[CellKey, str]) -> None:
        if key not in closed:
            for whole in part_of:
                breakdown_of.setdefault(whole, []).append(key)
        closed[key] = closed.get(key, 0) + n

    for source, rows in (("events", counts.provider_year), ("self_reported", counts.reported_year)):
        everything: CellKey = (source, "national_all_years")
        for r in rows:
            n, provider, year = _closed(r), r["provider_id"], r["discharge_year"]
            add(
                (source, "provider_year", provider, year),
                n,
                ((source, "provider_all_years", provider), "year"),
                ((source, "national_year", year), "provider"),
            )
            add((source, "provider_all_years", provider), n, (everything, "provider"))
            add((source, "national_year", year), n, (everything, "year"))
            add(everything, n)
    for dim, rows in counts.breakdowns.items():
        for r in rows:
            year = r["discharge_year"]
            add(("events", f"{dim}_year", r[dim], year), _closed(r), (("events", "national_year", year), dim))
    relations = [Relation(total, tuple(parts)) for (total, _), parts in breakdown_of.items()]
    return closed, relations


def _closed(r: Mapping[str, Any]) -> int:
    return int(r["achieved"]) + int(r["not_achieved"]) + int(r["missing"])


@dataclass
class MeasureRelease:
    tables: dict[str, list[ReleasedCellV1]]
    views: dict[str, Any]
    cells: int
    suppressed: int


def build(counts: MeasureCounts, *, min_cell: int) -> MeasureRelease:
    closed, relations = linked_cells(counts)
    hidden = set(suppress_linked(closed, relations, min_cell=min_cell).cells)
    comparisons = {
        period: compare(
            strata,
            counts.reported.get(period, []),
            counts.errors,
            counts.queries.get(period) or comparison_query(counts.measure_id, _year(period), {}),
            principal=PUBLIC,
            min_cell=min_cell,
        )
        for period, strata in counts.strata.items()
    }
    breakdowns = {}
    for dim, rows in counts.breakdowns.items():
        q = ResultsQuery(counts.measure_id, "year", (dim,))
        by_period, period_dims = build_cells(rows, q, PUBLIC)
        table = disclose(by_period, period_dims, principal=PUBLIC, filters={}, min_cell=min_cell)
        breakdowns[dim] = {"rows": table.rows, "totals": table.totals}
    # A cell the per-table rules hid in any view is hidden in every view, and protected like the rest: a cell
    # hidden only there could otherwise be computed back from the other tables.
    placed = list(_placements(comparisons, breakdowns))
    also = {key for key, r in placed if r["status"] == "suppressed"} - hidden
    if also:
        hidden = set(suppress_linked(closed, relations, min_cell=min_cell, hidden=hidden | also).cells)
    for key, r in placed:
        if key in hidden and r["status"] != "suppressed":
            _suppress(r)
    for comparison in comparisons.values():
        comparison["funnel"] = funnel_of(comparison["providers"], comparison["total"])
    tables = _tables(counts, placed)
    years = sorted(p for p in comparisons if p != ALL_YEARS)
    views = {
        "comparisons": {str(p): c for p, c in comparisons.items()},
        "national": {
            "totals": [
                {**comparisons[y]["total"], "discharge_year": y} for y in years if comparisons[y]["total"]
            ]
        },
        "per_provider": {
            "rows": [{**p, "discharge_year": y} for y in years for p in comparisons[y]["providers"]]
        },
        "breakdowns": breakdowns,
    }
    cells = sum(len(t) for t in tables.values())
    return MeasureRelease(tables, views, cells, sum(c.suppressed for t in tables.values() for c in t))


def _year(period: int | str) -> int | None:
    return None if period == ALL_YEARS else int(period)


def _placements(
    comparisons: Mapping[int | str, dict[str, Any]], breakdowns: Mapping[str, dict[str, Any]]
) -> list[tuple[CellKey, dict[str, Any]]]:
    """Each shown row with the release cell it is."""
    out: list[tuple[CellKey, dict[str, Any]]] = []
    for period, comparison in comparisons.items():
        by_year = period != ALL_YEARS
        for p in comparison["providers"]:
            source = p["source"]
            key = (
                (source, "provider_year", p["provider_id"], period)
                if by_year
                else (source, "provider_all_years", p["provider_id"])
            )
            out.append((key, p))
        for source, total in (
            ("events", comparison["total"]),
            ("self_reported", comparison["self_reported_total"]),
        ):
            if total is not None:
                out.append(
                    ((source, "national_year", period) if by_year else (source, "national_all_years"), total)
                )
    for dim, table in breakdowns.items():
        for r in table["rows"]:
            out.append((("events", f"{dim}_year", r[dim], r["discharge_year"]), r))
        for t in table["totals"]:
            out.append((("events", "national_year", t["discharge_year"]), t))
    return out


def _suppress(r: dict[str, Any]) -> None:
    dims = {k: v for k, v in r.items() if k not in (*TALLIES, *SHOWN, "status", "exact", "source")}
    r.update(row(dims, None, status="suppressed", exact=False, source=r["source"]))
    if "risk_adjusted" in r:
        r["risk_adjusted"] = None
    r.pop("funnel", None)


def _tables(
    counts: MeasureCounts, placed: list[tuple[CellKey, dict[str, Any]]]
) -> dict[str, list[ReleasedCellV1]]:
    """The open-data tables: each cell once (a national figure shown in several views is one cell)."""
    cells: dict[CellKey, ReleasedCellV1] = {}
    for key, r in placed:
        if key in cells:
            continue
        source, table, *dims = key
        fields: dict[str, Any] = {}
        if table in ("provider_year", "provider_all_years"):
            fields["provider_id"] = dims[0]
        if table.endswith("_year") and table not in ("provider_year", "national_year"):
            fields["breakdown"] = table[: -len("_year")]
            fields["breakdown_value"] = None if dims[0] is None else str(dims[0])
        if table in ("provider_year", "national_year") or "breakdown" in fields:
            fields["discharge_year"] = dims[-1]
        shown = r["status"] != "suppressed"
        adjusted = r.get("risk_adjusted") or {}
        cells[key] = ReleasedCellV1(
            measure_id=counts.measure_id,
            measure_version=counts.measure_version,
            table=table,
            source=source,
            suppressed=not shown,
            **fields,
            **(
                {
                    "result": r["result"],
                    **{k: r[k] for k in ("achieved", "not_achieved", "missing", "pending", "closed")},
                    **{
                        k: r[k]
                        for k in ("windows_closed_share", "observed_rate", "itt_rate", "ci_low", "ci_high")
                    },
                    **{k: adjusted.get(k) for k in ("oe_ratio", "oe_low", "oe_high")},
                    "funnel_label": (r.get("funnel") or {}).get("label"),
                }
                if shown
                else {}
            ),
        )
    tables: dict[str, list[ReleasedCellV1]] = {}
    for key in sorted(cells, key=lambda k: tuple(str(x) for x in k)):
        tables.setdefault(key[1], []).append(cells[key])
    return tables


KEY_FIELDS = ("table", "source", "provider_id", "breakdown", "breakdown_value", "discharge_year")
VALUE_FIELDS = tuple(f for f in ReleasedCellV1.model_fields if f not in (*KEY_FIELDS, "measure_id"))


def changes(
    previous: Mapping[str, Sequence[ReleasedCellV1]] | None, current: Mapping[str, Sequence[ReleasedCellV1]]
) -> list[CellChangeV1]:
    """Cells added, removed or changed (any figure, or whether it is suppressed) since the previous release."""
    if previous is None:
        return []

    def index(tables: Mapping[str, Sequence[ReleasedCellV1]]) -> dict[tuple[Any, ...], ReleasedCellV1]:
        return {tuple(getattr(c, f) for f in KEY_FIELDS): c for cells in tables.values() for c in cells}

    before, after = index(previous), index(current)
    out = []
    for key in sorted(before.keys() | after.keys(), key=lambda k: tuple(str(x) for x in k)):
        named = {f: v for f, v in zip(KEY_FIELDS[1:], key[1:], strict=True) if v is not None}
        if key not in before:
            out.append(CellChangeV1(table=key[0], key=named, change="added"))
        elif key not in after:
            out.append(CellChangeV1(table=key[0], key=named, change="removed"))
        else:
            differ = [f for f in VALUE_FIELDS if getattr(before[key], f) != getattr(after[key], f)]
            if differ:
                out.append(CellChangeV1(table=key[0], key=named, change="changed", fields=differ))
    return out
