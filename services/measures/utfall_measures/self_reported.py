"""Aggregated submissions arriving on `aggregates.v1`: the newest version of each key is kept."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from utfall_events.aggregates import AggregateSubmissionV1
from utfall_events.codec import decode_message
from utfall_platform.consumer import Record


async def handle_aggregates(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
    latest: dict[str, AggregateSubmissionV1] = {}
    for record in records:
        submission = decode_message(AggregateSubmissionV1, record.value)
        current = latest.get(submission.submission_key)
        if current is None or current.version < submission.version:
            latest[submission.submission_key] = submission
    for s in latest.values():
        quarter = int(s.period[-1]) if "-Q" in s.period else None
        await conn.execute(
            "INSERT INTO measures.aggregate_submissions AS a (submission_key, version, provider_id, measure_id, "
            "measure_version, period, discharge_year, discharge_quarter, target_group, care_type, legal_basis, sex, "
            "age_band, numerator, denominator, missing, method, channel, submitted_at) VALUES ($1, $2, $3, $4, $5, "
            "$6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) ON CONFLICT (submission_key) DO UPDATE "
            "SET version = EXCLUDED.version, numerator = EXCLUDED.numerator, denominator = EXCLUDED.denominator, "
            "missing = EXCLUDED.missing, method = EXCLUDED.method, channel = EXCLUDED.channel, "
            "submitted_at = EXCLUDED.submitted_at, measure_version = EXCLUDED.measure_version "
            "WHERE a.version < EXCLUDED.version",
            s.submission_key,
            s.version,
            s.provider_id,
            s.measure_id,
            s.measure_version,
            s.period,
            int(s.period[:4]),
            quarter,
            s.target_group,
            s.care_type,
            s.legal_basis,
            s.sex,
            s.age_band,
            s.numerator,
            s.denominator,
            s.missing,
            s.method,
            s.channel,
            s.submitted_at,
        )
