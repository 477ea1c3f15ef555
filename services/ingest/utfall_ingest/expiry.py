"""Held events whose placement.started (or, for a retraction, whose target) never came are dead-lettered
after `hold_days`."""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg

from utfall_platform.clock import Clock
from utfall_platform.outbox import enqueue

from . import metrics
from .domain.validation import Reason, Rejection
from .messages import rejected_message
from .store import save_rejections

log = logging.getLogger(__name__)


async def expire_held(pool: asyncpg.Pool, clock: Clock, hold_days: int) -> int:
    now = clock.now()
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            "DELETE FROM ingest.held_events WHERE held_at < $1 RETURNING source, event_id, type, awaits_event_id",
            now - timedelta(days=hold_days),
        )
        if not rows:
            return 0
        received = await conn.fetch(
            "DELETE FROM ingest.received_events WHERE (source, event_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[])) RETURNING source, event_id, channel",
            [r["source"] for r in rows],
            [r["event_id"] for r in rows],
        )
        channels = {(r["source"], r["event_id"]): r["channel"] for r in received}
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
        for r in rows:
            rejection = Rejection(
                r["event_id"], r["source"], r["type"], (no_target if r["awaits_event_id"] else no_start,)
            )
            by_channel.setdefault(channels.get((r["source"], r["event_id"]), "http"), []).append(rejection)
        for channel, rejections in by_channel.items():
            await save_rejections(conn, rejections, channel=channel, now=now)
            await enqueue(conn, "ingest", [rejected_message(r, channel=channel, at=now) for r in rejections])
    metrics.HELD_EXPIRED.inc(len(rows))
    log.warning("dead-lettered %d held events whose episode start or retracted event never came", len(rows))
    return len(rows)
