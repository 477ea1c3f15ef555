"""Outcome results, comparisons and the measure catalogue, from `measures_read`: one filter builder
(`results_where`) for every results query."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from utfall_events.catalogue import is_register_fact_id, measure_of_fact

from ..domain.results import PERIOD_COLUMNS, STRATA, ResultsQuery
from . import Pool, Row

_STATUS_COUNTS = (
    "count(*) FILTER (WHERE status = 'achieved') AS achieved, "
    "count(*) FILTER (WHERE status = 'not_achieved') AS not_achieved, "
    "count(*) FILTER (WHERE status = 'missing') AS missing, "
    "count(*) FILTER (WHERE status = 'pending') AS pending"
)


_REPORTED_COUNTS = (
    "sum(achieved) AS achieved, sum(not_achieved) AS not_achieved, sum(missing) AS missing, 0 AS pending"
)


# The last day of a submission's discharge period (a year, or the quarter it names).
_PERIOD_END = "(make_date(discharge_year, coalesce(discharge_quarter * 3, 12), 1) + interval '1 month' - interval '1 day')"


def _window_params(q: ResultsQuery, args: list[Any]) -> tuple[str, str, str] | None:
    if q.window is None:
        return None
    args += [q.window.months, q.window.grace_days, q.window.today]
    return f"${len(args) - 2}::int", f"${len(args) - 1}::int", f"${len(args)}::date"


def _windows_closed(q: ResultsQuery, args: list[Any]) -> str:
    """How many of the episodes counted have their outcome window closed (results.Window)."""
    window = _window_params(q, args)
    if window is None:
        return "count(*) AS windows_closed"
    months, grace, today = window
    return (
        f"count(*) FILTER (WHERE {months} IS NULL OR "
        f"(end_date + make_interval(months => {months}, days => {grace}))::date < {today}) AS windows_closed"
    )


def _reported_windows_closed(q: ResultsQuery, args: list[Any]) -> str:
    """Submissions have no discharge dates: all their episodes' windows have closed once the period's last
    day's has."""
    window = _window_params(q, args)
    closed = "achieved + not_achieved + missing"
    if window is None:
        return f"sum({closed}) AS windows_closed"
    months, grace, today = window
    return (
        f"sum(CASE WHEN {months} IS NULL OR ({_PERIOD_END} + make_interval(months => {months}, days => {grace}))"
        f"::date < {today} THEN {closed} ELSE 0 END) AS windows_closed"
    )


def results_where(q: ResultsQuery, fixed: tuple[str, ...] = ()) -> tuple[str, list[Any]]:
    """The WHERE of a results query: the measure, the whitelisted filters, the period; `fixed` adds clauses
    without parameters."""
    clauses = ["measure_id = $1", *fixed]
    args: list[Any] = [q.measure_id]
    for name, value in q.filters:
        assert name in q.filterable  # whitelisted: column names are never taken from input
        args.append(value)
        clauses.append(f"{name} = ${len(args)}")
    if q.year is not None:
        args.append(q.year)
        clauses.append(f"discharge_year = ${len(args)}")
    if q.quarter is not None:
        args.append(q.quarter)
        clauses.append(f"discharge_quarter = ${len(args)}")
    return " AND ".join(clauses), args


def _grouping(q: ResultsQuery) -> str:
    columns = [*q.period_columns, *q.group_by]
    assert all(c in q.filterable or c in PERIOD_COLUMNS for c in columns)  # whitelisted, as above
    return ", ".join(columns)


def _facts_of(q: ResultsQuery) -> tuple[str, ResultsQuery]:
    """Where a measure's outcomes are counted: a verified measure (`<id>@register`) from the verified facts,
    which hold the base measure's id; every other from the outcome facts."""
    if is_register_fact_id(q.measure_id):
        return "measures_read.verified_outcomes", dataclasses.replace(
            q, measure_id=measure_of_fact(q.measure_id)
        )
    return "measures_read.outcome_facts", q


async def outcome_counts(pool: Pool, q: ResultsQuery) -> list[Row]:
    """Closed and pending episodes by status, per period and grouping, from the outcome facts."""
    relation, q = _facts_of(q)
    where, args = results_where(q)
    columns = _grouping(q)
    windows = _windows_closed(q, args)
    return list(
        await pool.fetch(
            f"SELECT {columns}, {_STATUS_COUNTS}, {windows} FROM {relation} WHERE {where} "
            f"GROUP BY {columns} ORDER BY {columns}",
            *args,
        )
    )


async def self_reported_counts(pool: Pool, q: ResultsQuery, fixed: tuple[str, ...]) -> list[Row]:
    """Providers' aggregated submissions, per period and grouping; `fixed` picks the breakdown that fits."""
    where, args = results_where(q, fixed)
    columns = _grouping(q)
    windows = _reported_windows_closed(q, args)
    return list(
        await pool.fetch(
            f"SELECT {columns}, {_REPORTED_COUNTS}, {windows} FROM measures_read.self_reported WHERE {where} "
            f"GROUP BY {columns} ORDER BY {columns}",
            *args,
        )
    )


async def comparison_strata(pool: Pool, q: ResultsQuery) -> list[Row]:
    """Counts per provider and risk stratum (what indirect standardisation takes)."""
    relation, q = _facts_of(q)
    where, args = results_where(q)
    columns = ", ".join(("provider_id", *STRATA))
    windows = _windows_closed(q, args)
    return list(
        await pool.fetch(
            f"SELECT {columns}, {_STATUS_COUNTS}, {windows} FROM {relation} WHERE {where} GROUP BY {columns}",
            *args,
        )
    )


async def data_errors_by_provider(pool: Pool) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT provider_id, sum(episodes) AS n FROM measures_read.data_errors GROUP BY 1"
    )
    return {r["provider_id"]: int(r["n"]) for r in rows}


async def catalogue(pool: Pool) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in await pool.fetch("SELECT * FROM measures_read.measure_catalogue ORDER BY id, version")
    ]


async def current_measure_titles(pool: Pool) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT id, title_sv, title_en FROM measures_read.measure_catalogue WHERE is_current ORDER BY id"
        )
    )


async def discharge_years(pool: Pool) -> list[int]:
    rows = await pool.fetch(
        "SELECT DISTINCT discharge_year AS y FROM measures_read.outcome_facts ORDER BY 1 DESC"
    )
    return [r["y"] for r in rows]


async def provider_has_episodes(pool: Pool, provider_id: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT 1 FROM measures_read.episodes WHERE provider_id = $1 LIMIT 1", provider_id
        )
    )


async def data_errors(pool: Pool, provider_id: str) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT error, episodes FROM measures_read.data_errors WHERE provider_id = $1", provider_id
    )
    return {r["error"]: int(r["episodes"]) for r in rows}


async def length_of_stay_days(
    pool: Pool, groups: Sequence[str], filters: dict[str, str], year: int | None
) -> list[Row]:
    """Per group: the number of ended episodes and their lengths of stay, sorted. `groups` and the filter
    names are dimension columns the caller has checked against its allow-list."""
    clauses: list[str] = ["length_of_stay_days IS NOT NULL"]
    args: list[Any] = []
    for name, value in sorted(filters.items()):
        args.append(value)
        clauses.append(f"{name} = ${len(args)}")
    if year is not None:
        args.append(year)
        clauses.append(f"discharge_year = ${len(args)}")
    cols = ", ".join(groups) if groups else "'all'::text AS all_episodes"
    group_sql = f"GROUP BY {', '.join(groups)}" if groups else ""
    return list(
        await pool.fetch(
            f"SELECT {cols}, count(*) AS n, array_agg(length_of_stay_days ORDER BY length_of_stay_days) AS days "
            f"FROM measures_read.episodes WHERE {' AND '.join(clauses)} {group_sql}",
            *args,
        )
    )
