"""Measures' Kafka entrypoint: a thin handler over care.events.v1 batches."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from utfall_platform import metrics
from utfall_platform.clock import Clock
from utfall_platform.consumer import Record

from .projection import decode, refold, store_events


def care_events_handler(clock: Clock):  # type: ignore[no-untyped-def]
    async def handle(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        incoming = [decode(r) for r in records]  # an undecodable record raises: it is isolated, dead-lettered
        new = await store_events(conn, incoming)
        if not new:
            return
        now = clock.now()
        await refold(
            conn,
            {i.event.subject_ref for i in new},
            today=clock.today(),
            now=now,
            new_events=[i.event for i in new],
        )
        for item in new:
            if item.ingested_at is not None:
                metrics.EVENT_TO_READ_MODEL.labels("measures").observe(
                    max(0.0, (now - item.ingested_at).total_seconds())
                )

    return handle
