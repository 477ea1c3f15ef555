"""Ingest's Postgres adapter for aggregated submissions: every version of every submission key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from utfall_platform import locks


async def lock_provider(conn: asyncpg.Connection, provider_id: str) -> None:
    """A provider's submissions are versioned one transaction at a time."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))", provider_id, locks.AGGREGATE_PROVIDER
    )


async def latest(conn: asyncpg.Connection, submission_key: str) -> tuple[int, Any] | None:
    """The newest version of a submission key and its figures."""
    row = await conn.fetchrow(
        "SELECT version, figures FROM ingest.aggregate_submissions WHERE submission_key = $1 "
        "ORDER BY version DESC LIMIT 1",
        submission_key,
    )
    return (row["version"], row["figures"]) if row else None


async def save(
    conn: asyncpg.Connection,
    submission_key: str,
    version: int,
    provider_id: str,
    figures: dict[str, Any],
    channel: str,
    now: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO ingest.aggregate_submissions (submission_key, version, provider_id, figures, channel, "
        "submitted_at) VALUES ($1, $2, $3, $4, $5, $6)",
        submission_key,
        version,
        provider_id,
        figures,
        channel,
        now,
    )


async def of_provider(pool: asyncpg.Pool, provider_id: str) -> list[asyncpg.Record]:
    """A provider's submissions, every version, newest first per key."""
    return list(
        await pool.fetch(
            "SELECT submission_key, version, figures, channel, submitted_at FROM ingest.aggregate_submissions "
            "WHERE provider_id = $1 ORDER BY submission_key, version DESC",
            provider_id,
        )
    )
