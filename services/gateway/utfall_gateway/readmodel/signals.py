"""What the signals of data errors and gaming are computed from."""

from __future__ import annotations

from utfall_events.vocabulary import EVENT_RETRACTED

from . import Pool, Row


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
