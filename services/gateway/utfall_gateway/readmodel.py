"""Every query the gateway's routes and page make of the read models (`*_read` views the services publish).
Routes decide who may see what and shape answers; `results.py` computes over what is fetched; the SQL lives
here, with one filter builder (`results_where`) for every results query."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from utfall_events.catalogue import is_register_fact_id, measure_of_fact
from utfall_events.vocabulary import EVENT_RETRACTED

from .domain.results import PERIOD_COLUMNS, STRATA, ResultsQuery

Pool = Any  # an asyncpg pool (the gateway's read-only role)
Row = Any  # an asyncpg record: read by column name

# --- outcome results and comparisons -------------------------------------------------------------------
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


# --- contracts ------------------------------------------------------------------------------------------
async def contract(pool: Pool, contract_id: str) -> Row | None:
    return await pool.fetchrow("SELECT * FROM contracts_read.contracts WHERE contract_id = $1", contract_id)


async def contracts(pool: Pool) -> list[Row]:
    return list(await pool.fetch("SELECT * FROM contracts_read.contracts ORDER BY contract_id"))


async def contract_versions(pool: Pool, contract_id: str) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT version, definition, origin, created_at FROM contracts_read.contract_versions "
            "WHERE contract_id = $1 ORDER BY version",
            contract_id,
        )
    )


async def participants(
    pool: Pool, contract_id: str, after: tuple[str, str], limit: int, provider_id: str | None
) -> list[Row]:
    """Up to `limit` participants after the (provider, episode) cursor; only one provider's when given."""
    args: list[Any] = [contract_id, after[0], after[1], limit]
    provider_clause = ""
    if provider_id is not None:
        args.append(provider_id)
        provider_clause = f" AND provider_id = ${len(args)}"
    return list(
        await pool.fetch(
            "SELECT * FROM contracts_read.participants WHERE contract_id = $1 AND (provider_id, episode_id) > "
            f"($2, $3){provider_clause} ORDER BY provider_id, episode_id LIMIT $4",
            *args,
        )
    )


async def participant_milestones(pool: Pool, contract_id: str, keys: Sequence[tuple[str, str]]) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT * FROM contracts_read.participant_milestones WHERE contract_id = $1 AND "
            "(provider_id, episode_id) IN (SELECT * FROM unnest($2::text[], $3::text[])) ORDER BY milestone_id",
            contract_id,
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
    )


async def ledger(
    pool: Pool, contract_ids: Sequence[str], after_seq: int, limit: int, provider_id: str | None
) -> list[Row]:
    args: list[Any] = [list(contract_ids), after_seq, limit]
    provider_clause = ""
    if provider_id is not None:
        args.append(provider_id)
        provider_clause = f" AND provider_id = ${len(args)}"
    return list(
        await pool.fetch(
            f"SELECT * FROM contracts_read.ledger WHERE contract_id = ANY($1::text[]) AND seq > $2{provider_clause} "
            "ORDER BY seq LIMIT $3",
            *args,
        )
    )


# --- one event's way through the services ------------------------------------------------------------------
async def receipt(pool: Pool, source: str, event_id: str) -> Row | None:
    return await pool.fetchrow(
        "SELECT * FROM ingest_read.event_receipts WHERE source = $1 AND event_id = $2", source, event_id
    )


async def projected_event(pool: Pool, source: str, event_id: str) -> Row | None:
    return await pool.fetchrow(
        "SELECT * FROM measures_read.event_status WHERE source = $1 AND event_id = $2", source, event_id
    )


async def facts_citing(pool: Pool, provider_id: str, episode_id: str, ref: list[dict[str, str]]) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT measure_id, measure_version, status, revision, evidence FROM measures_read.outcome_facts "
            "WHERE provider_id = $1 AND episode_id = $2 AND evidence @> $3::jsonb ORDER BY measure_id",
            provider_id,
            episode_id,
            ref,
        )
    )


async def ledger_between(pool: Pool, contract_id: str, start: Any, end: Any) -> list[Row]:
    """A contract's ledger entries determined in [start, end), oldest first (a statement's lines)."""
    return list(
        await pool.fetch(
            "SELECT * FROM contracts_read.ledger WHERE contract_id = $1 AND determined_at >= $2 "
            "AND determined_at < $3 ORDER BY seq",
            contract_id,
            start,
            end,
        )
    )


async def ledger_net_before(pool: Pool, contract_id: str, start: Any) -> dict[str, int]:
    """Net paid per provider before a moment (a statement's opening balances)."""
    rows = await pool.fetch(
        "SELECT provider_id, coalesce(sum(signed_amount_ore), 0) AS net FROM contracts_read.ledger "
        "WHERE contract_id = $1 AND determined_at < $2 GROUP BY provider_id",
        contract_id,
        start,
    )
    return {r["provider_id"]: int(r["net"]) for r in rows}


async def ledger_span(pool: Pool, contract_id: str) -> tuple[Any, Any] | None:
    """When a contract's first and last ledger entries were determined; None without entries."""
    row = await pool.fetchrow(
        "SELECT min(determined_at) AS first, max(determined_at) AS last FROM contracts_read.ledger "
        "WHERE contract_id = $1",
        contract_id,
    )
    return None if row is None or row["first"] is None else (row["first"], row["last"])


async def triggered_payment(pool: Pool, contract_id: str, payment_id: str) -> Row | None:
    return await pool.fetchrow(
        "SELECT * FROM contracts_read.ledger WHERE contract_id = $1 AND payment_id = $2 AND kind = 'payment.triggered'",
        contract_id,
        payment_id,
    )


async def command_result(pool: Pool, contract_id: str, command_id: str) -> Row | None:
    return await pool.fetchrow(
        "SELECT * FROM contracts_read.command_results WHERE contract_id = $1 AND command_id = $2",
        contract_id,
        command_id,
    )


async def disputes(pool: Pool, contract_id: str, provider_id: str | None) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT * FROM contracts_read.disputes WHERE contract_id = $1 AND ($2::text IS NULL OR provider_id = $2) "
            "ORDER BY raised_at, payment_id",
            contract_id,
            provider_id,
        )
    )


async def closed_periods(pool: Pool, contract_id: str) -> dict[str, Row]:
    rows = await pool.fetch(
        "SELECT * FROM contracts_read.closed_periods WHERE contract_id = $1 ORDER BY period_start",
        contract_id,
    )
    return {r["period"]: r for r in rows}


async def standing_payments(pool: Pool, contract_id: str, as_of_seq: int) -> list[Row]:
    """Triggered payments of a contract that stood after ledger entry `as_of_seq` (not reversed by then), with
    their evidence: what an assessor samples from."""
    return list(
        await pool.fetch(
            "SELECT t.* FROM contracts_read.ledger t WHERE t.contract_id = $1 AND t.kind = 'payment.triggered' "
            "AND t.seq <= $2 AND NOT EXISTS (SELECT 1 FROM contracts_read.ledger r WHERE r.payment_id = t.payment_id "
            "AND r.kind = 'payment.reversed' AND r.seq <= $2) ORDER BY t.payment_id",
            contract_id,
            as_of_seq,
        )
    )


async def last_seq(pool: Pool, contract_id: str) -> int:
    value = await pool.fetchval(
        "SELECT coalesce(max(seq), 0) FROM contracts_read.ledger WHERE contract_id = $1", contract_id
    )
    return int(value)


async def open_milestones(pool: Pool, contract_id: str) -> list[Row]:
    """Enrolled participants' milestones whose outcome is not determined yet, with what a forecast needs: the
    participant's care type, target group, start and (when discharged) end date."""
    return list(
        await pool.fetch(
            "SELECT pm.provider_id, pm.episode_id, pm.milestone_id, pm.measure_id, pm.price_ore, p.care_type, "
            "p.target_group, p.start_date, e.end_date FROM contracts_read.participant_milestones pm "
            "JOIN contracts_read.participants p ON p.contract_id = pm.contract_id AND p.provider_id = pm.provider_id "
            "AND p.episode_id = pm.episode_id "
            "LEFT JOIN measures_read.episodes e ON e.provider_id = pm.provider_id AND e.episode_id = pm.episode_id "
            "WHERE pm.contract_id = $1 AND pm.participant_status = 'enrolled' "
            "AND pm.outcome_status IN ('pending', 'no_outcome_yet') ORDER BY 1, 2, 3",
            contract_id,
        )
    )


async def participant_paid(pool: Pool, contract_id: str) -> dict[tuple[str, str], int]:
    rows = await pool.fetch(
        "SELECT provider_id, episode_id, paid_net_ore FROM contracts_read.participants "
        "WHERE contract_id = $1 AND paid_net_ore <> 0",
        contract_id,
    )
    return {(r["provider_id"], r["episode_id"]): int(r["paid_net_ore"]) for r in rows}


async def outcome_rates(pool: Pool, measure_ids: Sequence[str]) -> list[Row]:
    """Per measure, care type and target group: episodes achieved, and determined (achieved, not achieved or
    missing), over every provider."""
    return list(
        await pool.fetch(
            "SELECT measure_id, care_type, target_group, count(*) FILTER (WHERE status = 'achieved') AS achieved, "
            "count(*) FILTER (WHERE status IN ('achieved', 'not_achieved', 'missing')) AS determined "
            "FROM measures_read.outcome_facts WHERE measure_id = ANY($1::text[]) GROUP BY 1, 2, 3",
            list(measure_ids),
        )
    )


async def median_stays(pool: Pool) -> dict[tuple[str, str], int]:
    rows = await pool.fetch(
        "SELECT care_type, target_group, percentile_disc(0.5) WITHIN GROUP (ORDER BY length_of_stay_days) AS days "
        "FROM measures_read.episodes WHERE length_of_stay_days IS NOT NULL GROUP BY 1, 2"
    )
    return {(r["care_type"], r["target_group"]): int(r["days"]) for r in rows}


async def ledger_net_by_month(pool: Pool, contract_id: str) -> list[Row]:
    """Net paid per calendar month in Swedish time, milestone and provider (the actual side of planned against
    actual), with the payments among them under an open dispute."""
    return list(
        await pool.fetch(
            "SELECT date_trunc('month', l.determined_at AT TIME ZONE 'Europe/Stockholm')::date AS month, "
            "l.milestone_id, l.provider_id, sum(l.signed_amount_ore) AS net, "
            "count(d.payment_id) FILTER (WHERE l.kind = 'payment.triggered') AS open_disputes "
            "FROM contracts_read.ledger l LEFT JOIN contracts_read.disputes d ON d.payment_id = l.payment_id "
            "AND d.status = 'open' WHERE l.contract_id = $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            contract_id,
        )
    )


async def milestone_results(pool: Pool, contract_id: str) -> list[Row]:
    """Per milestone: participants enrolled, and those whose outcome is achieved."""
    return list(
        await pool.fetch(
            "SELECT milestone_id, count(*) AS engaged, count(*) FILTER (WHERE outcome_status = 'achieved') AS achieved "
            "FROM contracts_read.participant_milestones WHERE contract_id = $1 AND participant_status = 'enrolled' "
            "GROUP BY 1 ORDER BY 1",
            contract_id,
        )
    )


async def payments_citing(
    pool: Pool, provider_id: str, episode_id: str, ref: list[dict[str, str]]
) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT contract_id, payment_id, kind, milestone_id, amount_ore, determined_at FROM contracts_read.ledger "
            "WHERE provider_id = $1 AND episode_id = $2 AND evidence @> $3::jsonb ORDER BY seq",
            provider_id,
            episode_id,
            ref,
        )
    )


# --- measures -----------------------------------------------------------------------------------------------
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


# --- register verification ---------------------------------------------------------------------------------
async def verified_facts(
    pool: Pool, measure_id: str, *, provider_id: str | None, year: int | None
) -> list[Row]:
    """Each episode's verified fact of one measure, beside what its provider reported."""
    return list(
        await pool.fetch(
            "SELECT provider_id, episode_id, discharge_year, status, reported_status, evidence "
            "FROM measures_read.verified_facts WHERE measure_id = $1 AND ($2::text IS NULL OR provider_id = $2) "
            "AND ($3::int IS NULL OR discharge_year = $3)",
            measure_id,
            provider_id,
            year,
        )
    )


# --- signals of data errors and gaming ---------------------------------------------------------------------
async def events_by_type(pool: Pool) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT provider_id, type = $1 AS retraction, count(*) AS n FROM measures_read.event_status GROUP BY 1, 2",
            EVENT_RETRACTED,
        )
    )


async def reporting_lag(pool: Pool) -> list[Row]:
    return list(await pool.fetch("SELECT provider_id, lag_days, events FROM measures_read.reporting_lag"))


async def discharge_reasons(pool: Pool) -> list[Row]:
    """Per provider and discharge year: discharges, and those reported as planned."""
    return list(
        await pool.fetch(
            "SELECT provider_id, discharge_year, planned, discharges FROM measures_read.discharge_reasons"
        )
    )


async def followup_timing(pool: Pool) -> list[Row]:
    """Per provider and discharge year: 12-month follow-ups, and those that arrived in the last 30 days before
    their deadline."""
    return list(
        await pool.fetch(
            "SELECT provider_id, discharge_year, near_deadline, followups FROM measures_read.followup_timing"
        )
    )


async def followups_missing(pool: Pool) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT provider_id, count(*) FILTER (WHERE status = 'not_achieved') AS missing, "
            "count(*) FILTER (WHERE status IN ('achieved', 'not_achieved')) AS closed "
            "FROM measures_read.outcome_facts WHERE measure_id = 'followup_coverage_12m' GROUP BY 1"
        )
    )


async def payments_and_reversals(pool: Pool) -> list[Row]:
    """Per provider: payments triggered, and reversals grouped by their reason."""
    return list(
        await pool.fetch(
            "SELECT provider_id, kind, reason, count(*) AS n FROM contracts_read.ledger "
            "WHERE kind IN ('payment.triggered', 'payment.reversed') GROUP BY 1, 2, 3"
        )
    )


async def register_disagreements(pool: Pool) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT provider_id, count(*) AS compared, count(*) FILTER (WHERE status <> reported_status) AS differ "
            "FROM measures_read.verified_facts WHERE status IN ('achieved', 'not_achieved') "
            "AND reported_status IN ('achieved', 'not_achieved') GROUP BY 1"
        )
    )
