"""One event's way through the services: its receipt at ingest, its projection in measures, the facts
that cite it."""

from __future__ import annotations

from . import Pool, Row


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
