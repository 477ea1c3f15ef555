"""Ingest's Postgres adapter for register extracts: their coverage, and every version of every row seen."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

from utfall_platform import locks
from utfall_platform.bulk import BulkInsert

from .domain.registers import StoredVersion

_INSERT_ROWS = BulkInsert(
    "ingest.register_rows",
    (
        ("register_id", "text"),
        ("record_id", "text"),
        ("extract_id", "text"),
        ("as_of", "date"),
        ("digest", "text"),
        ("receipt", "text"),
    ),
    constants=(("received_at", "timestamptz"),),
    conflict=("register_id", "record_id", "extract_id"),
)


async def lock_register(conn: asyncpg.Connection, register_id: str) -> None:
    """One extract at a time per register: which version of a row counts is then decided without a race."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))", register_id, locks.INGEST_REGISTER
    )


async def extract(conn: asyncpg.Connection, register_id: str, extract_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT as_of, coverage, complete FROM ingest.register_extracts WHERE register_id = $1 AND extract_id = $2",
        register_id,
        extract_id,
    )


async def save_extract(
    conn: asyncpg.Connection,
    register_id: str,
    extract_id: str,
    as_of: date,
    coverage: dict[str, Any],
    complete: bool,
    now: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO ingest.register_extracts (register_id, extract_id, as_of, coverage, complete, received_at) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (register_id, extract_id) DO UPDATE SET "
        "complete = register_extracts.complete OR EXCLUDED.complete",
        register_id,
        extract_id,
        as_of,
        coverage,
        complete,
        now,
    )


async def versions(
    conn: asyncpg.Connection, register_id: str, record_ids: Sequence[str]
) -> dict[str, list[StoredVersion]]:
    rows = await conn.fetch(
        "SELECT record_id, extract_id, as_of, digest FROM ingest.register_rows "
        "WHERE register_id = $1 AND record_id = ANY($2::text[])",
        register_id,
        list(record_ids),
    )
    out: dict[str, list[StoredVersion]] = {}
    for r in rows:
        out.setdefault(r["record_id"], []).append(StoredVersion(r["extract_id"], r["as_of"], r["digest"]))
    return out


async def save_versions(
    conn: asyncpg.Connection,
    register_id: str,
    rows: Sequence[tuple[str, StoredVersion, str]],
    now: datetime,
) -> None:
    """(record id, version, receipt) of each new version."""
    await _INSERT_ROWS.write(
        conn,
        (
            {
                "register_id": register_id,
                "record_id": record_id,
                "extract_id": v.extract_id,
                "as_of": v.as_of,
                "digest": v.digest,
                "receipt": receipt,
            }
            for record_id, v, receipt in rows
        ),
        now,
    )


__all__ = ["extract", "lock_register", "save_extract", "save_versions", "versions"]
