"""Held events whose placement.started never came are dead-lettered after `hold_days`."""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg

from utfall_platform.clock import Clock
from utfall_platform.outbox import enqueue

from . import metrics
from .domain.validation import Reason, Rejection
from .messages import rejected_message

log = logging.getLogger(__name__)


async def expire_held(pool: asyncpg.Pool, clock: Clock, hold_days: int) -> int:
    now = clock.now()
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "DELETE FROM ingest.held_events WHERE held_at < $1 RETURNING source, event_id, type",
            now - timedelta(days=hold_days),
        )
        if not rows:
            return 0
        await conn.execute(
            "DELETE FROM ingest.received_events WHERE (source, event_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))",
            [r["source"] for r in rows],
            [r["event_id"] for r in rows],
        )
        reason = Reason(
            "/subject",
            "unknown_episode",
            f"no placement.started for this episode arrived within {hold_days} days",
        )
        rejections = [Rejection(r["event_id"], r["source"], r["type"], (reason,)) for r in rows]
        from .store import save_rejections

        await save_rejections(conn, rejections, channel="http", now=now)
        await enqueue(conn, "ingest", [rejected_message(r, channel="http", at=now) for r in rejections])
    metrics.HELD_EXPIRED.inc(len(rows))
    log.warning("dead-lettered %d held events with no placement.started", len(rows))
    return len(rows)
