"""Outcome results and comparisons: counts from the measures read model, then intervals and disclosure
control applied for the reader (pure functions over fetched counts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from utfall_stats.disclosure import suppress
from utfall_stats.risk import StratumCount, indirect_standardisation
from utfall_stats.wilson import wilson_interval

from . import metrics as gateway_metrics
from .auth import Principal

DIMENSIONS: tuple[str, ...] = (
    "provider_id",
    "unit_id",
    "municipality_code",
    "county_code",
    "target_group",
    "care_type",
    "legal_basis",
    "sex",
    "age_band",
)
PERIODS: dict[str, tuple[str, ...]] = {
    "year": ("discharge_year",),
    "quarter": ("discharge_year", "discharge_quarter"),
}
COUNTS = ("achieved", "not_achieved", "missing", "pending")


@dataclass(frozen=True)
class ResultsQuery:
    measure_id: str
    period: str = "year"
    group_by: tuple[str, ...] = ()
    filters: tuple[tuple[str, str], ...] = ()
    year: int | None = None
    quarter: int | None = None

    @property
    def period_columns(self) -> tuple[str, ...]:
        return PERIODS[self.period]


def _where(q: ResultsQuery, first_param: int = 1, fixed: tuple[str, ...] = ()) -> tuple[str, list[Any]]:
    """The WHERE of a results query: the measure, the whitelisted filters, the period; `fixed` adds clauses
    without parameters."""
    clauses = ["measure_id = $1", *fixed]
    args: list[Any] = [q.measure_id]
    for name, value in q.filters:
        assert name in DIMENSIONS  # whitelisted: column names are never taken from input
        args.append(value)
        clauses.append(f"{name} = ${len(args)}")
    if q.year is not None:
        args.append(q.year)
        clauses.append(f"discharge_year = ${len(args)}")
    if q.quarter is not None:
        args.append(q.quarter)
        clauses.append(f"discharge_quarter = ${len(args)}")
    return " AND ".join(clauses), args


async def fetch_counts(conn: asyncpg.Connection | asyncpg.Pool, q: ResultsQuery) -> list[asyncpg.Record]:
    columns = [*q.period_columns, *q.group_by]
    for c in columns:
        assert c in DIMENSIONS or c in ("discharge_year", "discharge_quarter")
    where, args = _where(q, 1)
    select_cols = ", ".join(columns)
    sql = (
        f"SELECT {select_cols}, "
        "count(*) FILTER (WHERE status = 'achieved') AS achieved, "
        "count(*) FILTER (WHERE status = 'not_achieved') AS not_achieved, "
        "count(*) FILTER (WHERE status = 'missing') AS missing, "
        "count(*) FILTER (WHERE status = 'pending') AS pending "
        f"FROM measures_read.outcome_facts WHERE {where} GROUP BY {select_cols} ORDER BY {select_cols}"
    )
    return list(await conn.fetch(sql, *args))


@dataclass
class Cell:
    key: tuple[Any, ...]
    dims: dict[str, Any]
    counts: dict[str, int]
    source: str = "events"
    own: bool = False

    @property
    def closed(self) -> int:
        return self.counts["achieved"] + self.counts["not_achieved"] + self.counts["missing"]


def rates(counts: dict[str, int]) -> dict[str, float | None]:
    achieved, not_achieved, missing = counts["achieved"], counts["not_achieved"], counts["missing"]
    observed_n = achieved + not_achieved
    itt_n = observed_n + missing
    interval = wilson_interval(achieved, observed_n)
    return {
        "observed_rate": achieved / observed_n if observed_n else None,
        "itt_rate": achieved / itt_n if itt_n else None,
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
    }


def row(
    cell_dims: dict[str, Any],
    counts: dict[str, int] | None,
    *,
    status: str,
    exact: bool,
    source: str = "events",
) -> dict[str, Any]:
    out: dict[str, Any] = dict(cell_dims)
    out["source"] = source
    if counts is None:
        out.update({k: None for k in (*COUNTS, "closed", "observed_rate", "itt_rate", "ci_low", "ci_high")})
    else:
        out.update(counts)
        out["closed"] = counts["achieved"] + counts["not_achieved"] + counts["missing"]
        out.update(rates(counts))
    out["status"] = status
    out["exact"] = exact
    return out


def is_own(principal: Principal, dims: dict[str, Any], filters: dict[str, str]) -> bool:
    if principal.role == "operator":
        return True
    if principal.role == "provider" and principal.provider_id:
        return dims.get("provider_id", filters.get("provider_id")) == principal.provider_id
    if principal.role == "municipality" and principal.municipality_code:
        return dims.get("municipality_code", filters.get("municipality_code")) == principal.municipality_code
    return False


@dataclass
class Table:
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: list[dict[str, Any]] = field(default_factory=list)


def disclose(
    cells_by_period: dict[tuple[Any, ...], list[Cell]],
    period_dims: dict[tuple[Any, ...], dict[str, Any]],
    *,
    principal: Principal,
    filters: dict[str, str],
    min_cell: int,
) -> Table:
    """Apply primary and complementary suppression per period and source (each a breakdown with its own
    published total), sparing the reader's own cells, which it sees exactly and which count as known when
    checking what subtraction reveals."""
    table = Table()
    for period_key in sorted(cells_by_period, key=lambda k: tuple(str(x) for x in k)):
        period_cells = cells_by_period[period_key]
        for source in sorted({c.source for c in period_cells}):
            cells = [c for c in period_cells if c.source == source]
            known = frozenset(c.key for c in cells if c.own)
            result = suppress({c.key: c.closed for c in cells}, min_cell=min_cell, known=known)
            total_counts = {k: sum(c.counts[k] for c in cells) for k in COUNTS}
            all_own = bool(cells) and all(c.own for c in cells)
            for cell in cells:
                if cell.own or cell.key not in result.cells:
                    table.rows.append(
                        row(cell.dims, cell.counts, status="ok", exact=cell.own, source=cell.source)
                    )
                else:
                    table.rows.append(
                        row(cell.dims, None, status="suppressed", exact=False, source=cell.source)
                    )
            if all_own or not result.total_suppressed:
                table.totals.append(
                    row(period_dims[period_key], total_counts, status="ok", exact=all_own, source=source)
                )
            else:
                table.totals.append(
                    row(period_dims[period_key], None, status="suppressed", exact=False, source=source)
                )
    flag_differences(table.rows)
    return table


def flag_differences(rows: list[dict[str, Any]]) -> int:
    """Where a cell has both event-based and self-reported figures and both are shown, say whether they differ
    (non-overlapping 95% intervals). Returns how many differ."""
    by_dims: dict[tuple[tuple[str, Any], ...], dict[str, dict[str, Any]]] = {}
    for r in rows:
        dims = tuple(
            sorted((k, v) for k, v in r.items() if k in (*DIMENSIONS, "discharge_year", "discharge_quarter"))
        )
        by_dims.setdefault(dims, {})[r["source"]] = r
    differing = 0
    for pair in by_dims.values():
        events, own = pair.get("events"), pair.get("self_reported")
        if events is None or own is None:
            continue
        visible = (
            events["status"] == "ok"
            and own["status"] == "ok"
            and events["observed_rate"] is not None
            and own["observed_rate"] is not None
        )
        for r in (events, own):
            r["both_sources"] = True
        if not visible:
            continue
        differs = events["ci_high"] < own["ci_low"] or own["ci_high"] < events["ci_low"]
        difference = own["observed_rate"] - events["observed_rate"]
        for r in (events, own):
            r["source_difference"] = {"self_reported_minus_events": difference, "differs": differs}
        differing += differs
    if differing:
        gateway_metrics.SOURCE_DIFFERENCES.inc(differing)
    return differing


SELF_REPORTED_DIMS = ("provider_id", "target_group", "care_type", "legal_basis", "sex", "age_band")
OPTIONAL_SELF_REPORTED = ("care_type", "legal_basis", "sex", "age_band")


async def self_reported_cells(
    conn: asyncpg.Connection | asyncpg.Pool, q: ResultsQuery, principal: Principal
) -> tuple[dict[tuple[Any, ...], list[Cell]], dict[tuple[Any, ...], dict[str, Any]]]:
    """Aggregated submissions fitting this query. A submission fits when it is broken down by exactly the
    optional dimensions the query groups or filters by (so totals and breakdowns never double count), for the
    same kind of period."""
    used = set(q.group_by) | {name for name, _ in q.filters}
    if not used <= set(SELF_REPORTED_DIMS):
        return {}, {}
    fixed = tuple(f"{name} IS {'NOT ' if name in used else ''}NULL" for name in OPTIONAL_SELF_REPORTED)
    fixed += ("discharge_quarter IS NULL" if q.period == "year" else "discharge_quarter IS NOT NULL",)
    where, args = _where(q, fixed=fixed)
    columns = [*q.period_columns, *q.group_by]
    select_cols = ", ".join(columns)
    records = await conn.fetch(
        f"SELECT {select_cols}, sum(achieved) AS achieved, sum(not_achieved) AS not_achieved, "
        f"sum(missing) AS missing, 0 AS pending FROM measures_read.self_reported WHERE {where} "
        f"GROUP BY {select_cols} ORDER BY {select_cols}",
        *args,
    )
    return build_cells(records, q, principal, source="self_reported")


def merge_cells(
    *parts: tuple[dict[tuple[Any, ...], list[Cell]], dict[tuple[Any, ...], dict[str, Any]]],
) -> tuple[dict[tuple[Any, ...], list[Cell]], dict[tuple[Any, ...], dict[str, Any]]]:
    cells: dict[tuple[Any, ...], list[Cell]] = {}
    periods: dict[tuple[Any, ...], dict[str, Any]] = {}
    for by_period, dims in parts:
        for key, items in by_period.items():
            cells.setdefault(key, []).extend(items)
        periods.update(dims)
    return cells, periods


def build_cells(
    records: Sequence[asyncpg.Record], q: ResultsQuery, principal: Principal, source: str = "events"
) -> tuple[dict[tuple[Any, ...], list[Cell]], dict[tuple[Any, ...], dict[str, Any]]]:
    filters = dict(q.filters)
    by_period: dict[tuple[Any, ...], list[Cell]] = {}
    period_dims: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        period_key = tuple(r[c] for c in q.period_columns)
        period_dims[period_key] = {c: r[c] for c in q.period_columns}
        dims = {**period_dims[period_key], **{c: r[c] for c in q.group_by}}
        cell = Cell((*tuple(r[c] for c in q.group_by), source), dims, {k: int(r[k]) for k in COUNTS}, source)
        cell.own = is_own(principal, dims, filters)
        by_period.setdefault(period_key, []).append(cell)
    return by_period, period_dims


STRATA = ("age_band", "sex", "legal_basis", "target_group")


async def _self_reported_providers(
    conn: asyncpg.Connection | asyncpg.Pool, measure_id: str, year: int | None, filters: dict[str, str]
) -> list[Cell]:
    """Providers' yearly aggregated submissions fitting the comparison's filters (see self_reported_cells)."""
    if not set(filters) <= set(SELF_REPORTED_DIMS):
        return []
    clauses = ["measure_id = $1", "discharge_quarter IS NULL"]
    args: list[Any] = [measure_id]
    for name in OPTIONAL_SELF_REPORTED:
        clauses.append(f"{name} IS {'NOT ' if name in filters else ''}NULL")
    for name, value in sorted(filters.items()):
        args.append(value)
        clauses.append(f"{name} = ${len(args)}")
    if year is not None:
        args.append(year)
        clauses.append(f"discharge_year = ${len(args)}")
    rows = await conn.fetch(
        "SELECT provider_id, sum(achieved) AS achieved, sum(not_achieved) AS not_achieved, sum(missing) AS missing "
        f"FROM measures_read.self_reported WHERE {' AND '.join(clauses)} GROUP BY provider_id ORDER BY provider_id",
        *args,
    )
    return [
        Cell(
            (r["provider_id"], "self_reported"),
            {"provider_id": r["provider_id"]},
            {
                "achieved": int(r["achieved"]),
                "not_achieved": int(r["not_achieved"]),
                "missing": int(r["missing"]),
                "pending": 0,
            },
            "self_reported",
        )
        for r in rows
    ]


async def comparison(
    conn: asyncpg.Connection | asyncpg.Pool,
    measure_id: str,
    *,
    year: int | None,
    filters: dict[str, str],
    principal: Principal,
    min_cell: int,
) -> dict[str, Any]:
    """Providers side by side: suppressed counts, observed and ITT rates with Wilson intervals, and
    risk-adjusted observed/expected by indirect standardisation on age band, sex, legal basis and target
    group."""
    q = ResultsQuery(measure_id, "year", ("provider_id", *STRATA), tuple(sorted(filters.items())), year)
    where, args = _where(q, 1)
    records = await conn.fetch(
        "SELECT provider_id, age_band, sex, legal_basis, target_group, "
        "count(*) FILTER (WHERE status = 'achieved') AS achieved, "
        "count(*) FILTER (WHERE status = 'not_achieved') AS not_achieved, "
        "count(*) FILTER (WHERE status = 'missing') AS missing, "
        "count(*) FILTER (WHERE status = 'pending') AS pending "
        f"FROM measures_read.outcome_facts WHERE {where} GROUP BY 1, 2, 3, 4, 5",
        *args,
    )
    per_provider: dict[str, dict[str, int]] = {}
    strata: list[StratumCount] = []
    for r in records:
        counts = per_provider.setdefault(r["provider_id"], dict.fromkeys(COUNTS, 0))
        for k in COUNTS:
            counts[k] += int(r[k])
        strata.append(
            StratumCount(
                r["provider_id"],
                tuple(r[s] for s in STRATA),
                int(r["achieved"]),
                int(r["achieved"]) + int(r["not_achieved"]),
            )
        )
    adjusted = indirect_standardisation(strata)
    errors = {
        r["provider_id"]: int(r["n"])
        for r in await conn.fetch(
            "SELECT provider_id, sum(episodes) AS n FROM measures_read.data_errors GROUP BY 1"
        )
    }
    cells = [Cell((p, "events"), {"provider_id": p}, c) for p, c in sorted(per_provider.items())]
    cells += await _self_reported_providers(conn, measure_id, year, filters)
    for cell in cells:
        cell.own = is_own(principal, cell.dims, {})
    cells.sort(key=lambda c: (c.dims["provider_id"], c.source))
    table = disclose({(): cells}, {(): {}}, principal=principal, filters={}, min_cell=min_cell)
    rows_by_key = {(r["provider_id"], r["source"]): r for r in table.rows}
    providers = []
    for cell in cells:
        out = rows_by_key[(cell.dims["provider_id"], cell.source)]
        standardised = adjusted.get(cell.dims["provider_id"]) if cell.source == "events" else None
        if out["status"] == "ok" and standardised is not None:
            out["risk_adjusted"] = {
                "observed": standardised.observed,
                "expected": round(standardised.expected, 3),
                "oe_ratio": standardised.oe_ratio,
                "oe_low": standardised.oe_low,
                "oe_high": standardised.oe_high,
                "adjusted_rate": standardised.adjusted_rate,
            }
        else:
            out["risk_adjusted"] = None
        out["data_errors"] = errors.get(cell.dims["provider_id"], 0) if cell.source == "events" else None
        providers.append(out)
    totals = {t["source"]: t for t in table.totals}
    return {
        "measure_id": measure_id,
        "year": year,
        "filters": filters,
        "providers": providers,
        "total": totals.get("events"),
        "self_reported_total": totals.get("self_reported"),
        "min_cell": min_cell,
        "risk_adjustment": {"method": "indirect standardisation", "strata": list(STRATA)},
    }
