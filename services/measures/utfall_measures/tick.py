"""The periodic tick: pending facts whose window (plus grace) has closed are re-evaluated, so `pending`
turns `missing` (or `not_achieved` for coverage) without any new event."""

from __future__ import annotations

import logging

import asyncpg

from utfall_platform.clock import Clock

from . import metrics as measures_metrics
from . import store
from .projection import refold

log = logging.getLogger(__name__)


async def close_windows(pool: asyncpg.Pool, clock: Clock, batch: int = 2000) -> int:
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            subjects = await store.subjects_with_closed_windows(conn, clock.today(), batch)
            if not subjects:
                return total
            result = await refold(conn, subjects, today=clock.today(), now=clock.now())
            total += result.published
        if len(subjects) < batch:
            return total


async def sample_gauges(pool: asyncpg.Pool) -> None:
    for r in await store.fact_counts(pool):
        measures_metrics.FACTS.labels(r["measure_id"], r["status"]).set(r["n"])
    for r in await store.data_error_counts(pool):
        measures_metrics.DATA_ERRORS.labels(r["error"]).set(r["n"])


async def tick(pool: asyncpg.Pool, clock: Clock) -> None:
    closed = await close_windows(pool, clock)
    if closed:
        log.info("tick: %d facts changed as windows closed", closed)
    await sample_gauges(pool)
