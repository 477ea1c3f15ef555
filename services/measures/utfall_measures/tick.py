"""The periodic tick: pending facts whose window (plus grace) has closed are re-evaluated, so `pending`
turns `missing` (or `not_achieved` for coverage) without any new event."""

from __future__ import annotations

import logging

import asyncpg

from utfall_platform.clock import Clock

from . import metrics as measures_metrics
from .projection import refold

log = logging.getLogger(__name__)


async def close_windows(pool: asyncpg.Pool, clock: Clock, batch: int = 2000) -> int:
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            subjects = await conn.fetch(
                "SELECT DISTINCT subject_ref FROM measures.facts WHERE status = 'pending' AND closes_on < $1 "
                "LIMIT $2",
                clock.today(),
                batch,
            )
            if not subjects:
                return total
            result = await refold(
                conn, {r["subject_ref"] for r in subjects}, today=clock.today(), now=clock.now()
            )
            total += result.published
        if len(subjects) < batch:
            return total


async def sample_gauges(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch("SELECT measure_id, status, count(*) AS n FROM measures.facts GROUP BY 1, 2")
    for r in rows:
        measures_metrics.FACTS.labels(r["measure_id"], r["status"]).set(r["n"])
    for r in await pool.fetch("SELECT error, sum(episodes) AS n FROM measures_read.data_errors GROUP BY 1"):
        measures_metrics.DATA_ERRORS.labels(r["error"]).set(r["n"])


async def tick(pool: asyncpg.Pool, clock: Clock) -> None:
    closed = await close_windows(pool, clock)
    if closed:
        log.info("tick: %d facts changed as windows closed", closed)
    await sample_gauges(pool)
