"""Aggregated submissions arriving on `aggregates.v1`: the newest version of each key is kept."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from utfall_events.aggregates import AggregateSubmissionV1
from utfall_events.codec import decode_message
from utfall_platform.consumer import Record

from . import store


async def handle_aggregates(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
    latest: dict[str, AggregateSubmissionV1] = {}
    for record in records:
        submission = decode_message(AggregateSubmissionV1, record.value)
        current = latest.get(submission.submission_key)
        if current is None or current.version < submission.version:
            latest[submission.submission_key] = submission
    await store.keep_newest_submissions(conn, latest.values())
