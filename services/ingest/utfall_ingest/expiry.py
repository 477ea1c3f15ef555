"""Held events whose placement.started (or, for a retraction, whose target) never came are dead-lettered
after `hold_days`."""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg

from utfall_platform.clock import Clock
from utfall_platform.outbox import enqueue

from . import metrics, store
from .domain.validation import Reason, Rejection
from .messages import rejected_message

log = logging.getLogger(__name__)


async def expire_held(pool: asyncpg.Pool, clock: Clock, hold_days: int) -> int:
    now = clock.now()
    async with pool.acquire() as conn, conn.transaction():
        rows = await store.expire_held(conn, now - timedelta(days=hold_days))
        if not rows:
            return 0
        no_start = Reason(
            "/subject",
            "unknown_episode",
            f"no placement.started for this episode arrived within {hold_days} days",
        )
        no_target = Reason(
            "/data/retracted_event_id",
            "unknown_event",
            f"no event with this id arrived from this source within {hold_days} days",
        )
        by_channel: dict[str, list[Rejection]] = {}
        for source, event_id, event_type, awaited, channel in rows:
            rejection = Rejection(event_id, source, event_type, (no_target if awaited else no_start,))
            by_channel.setdefault(channel, []).append(rejection)
        for channel, rejections in by_channel.items():
            await store.save_rejections(conn, rejections, channel=channel, now=now)
            await enqueue(conn, "ingest", [rejected_message(r, channel=channel, at=now) for r in rejections])
    metrics.HELD_EXPIRED.inc(len(rows))
    log.warning("dead-lettered %d held events whose episode start or retracted event never came", len(rows))
    return len(rows)
