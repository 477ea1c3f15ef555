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


def _where(q: ResultsQuery, first_param: int) -> tuple[str, list[Any]]:
    clauses = ["measure_id = $1"]
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
    """Apply primary and complementary suppression per period (the breakdown), sparing the reader's own
    cells, which it sees exactly and which count as known when checking what subtraction reveals."""
    table = Table()
    for period_key in sorted(cells_by_period, key=lambda k: tuple(str(x) for x in k)):
        cells = cells_by_period[period_key]
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
                table.rows.append(row(cell.dims, None, status="suppressed", exact=False, source=cell.source))
        if all_own or not result.total_suppressed:
            table.totals.append(row(period_dims[period_key], total_counts, status="ok", exact=all_own))
        else:
            table.totals.append(row(period_dims[period_key], None, status="suppressed", exact=False))
    return table


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
    cells = [Cell((p,), {"provider_id": p}, c) for p, c in sorted(per_provider.items())]
    for cell in cells:
        cell.own = is_own(principal, cell.dims, {})
    table = disclose({(): cells}, {(): {}}, principal=principal, filters={}, min_cell=min_cell)
    providers = []
    for cell, out in zip(cells, table.rows, strict=True):
        standardised = adjusted.get(cell.dims["provider_id"])
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
        out["data_errors"] = errors.get(cell.dims["provider_id"], 0)
        providers.append(out)
    return {
        "measure_id": measure_id,
        "year": year,
        "filters": filters,
        "providers": providers,
        "total": table.totals[0] if table.totals else None,
        "min_cell": min_cell,
        "risk_adjustment": {"method": "indirect standardisation", "strata": list(STRATA)},
    }
