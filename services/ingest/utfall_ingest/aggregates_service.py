"""Aggregated submissions: validate rows, version them per key (a resubmission supersedes), publish to
`aggregates.v1` through the outbox, all in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from utfall_events.aggregates import AggregateFiguresV1, AggregateSubmissionV1
from utfall_events.auth import PersonV1
from utfall_events.topics import AGGREGATES
from utfall_platform.clock import Clock
from utfall_platform.outbox import OutboxMessage, enqueue

from . import aggregate_store
from .domain.aggregates import RowRejection, check_figures, next_version
from .domain.validation import Reason


async def submit(
    conn: asyncpg.Connection,
    rows: list[Any],
    *,
    provider_id: str,
    channel: str,
    clock: Clock,
    pre_rejected: Sequence[RowRejection] = (),
    submitted_by: str | None = None,
    person: PersonV1 | None = None,
) -> list[dict[str, Any]]:
    now, today = clock.now(), clock.today()
    await aggregate_store.lock_provider(conn, provider_id)
    receipts: list[dict[str, Any]] = []
    messages: list[OutboxMessage] = []
    rejected_rows = {r.row: r for r in pre_rejected}
    for index, raw in enumerate(rows, start=1):
        pointer = f"/{index - 1}" if channel == "json" else f"/{index}"
        if index in rejected_rows or (isinstance(raw, dict) and raw.get("__rejected__")):
            reasons = rejected_rows[index].reasons if index in rejected_rows else ()
            receipts.append(_rejected(index, reasons))
            continue
        result = check_figures(raw, provider_id=provider_id, today=today, pointer=pointer)
        if not isinstance(result, AggregateFiguresV1):
            receipts.append(_rejected(index, tuple(result)))
            continue
        key = result.key()
        versioning = next_version(await aggregate_store.latest(conn, key), result)
        if versioning.status == "unchanged":
            receipts.append(
                {"row": index, "status": "unchanged", "submission_key": key, "version": versioning.version}
            )
            continue
        version = versioning.version
        await aggregate_store.save(
            conn, key, version, provider_id, result.model_dump(mode="json"), channel, now
        )
        submission = AggregateSubmissionV1(
            **result.model_dump(),
            submission_key=key,
            version=version,
            supersedes=versioning.supersedes,
            submitted_at=now,
            channel=channel,
            submitted_by=submitted_by,
            person=person,
        )
        messages.append(OutboxMessage(AGGREGATES, key.encode(), submission.model_dump_json().encode()))
        receipts.append(
            {
                "row": index,
                "status": "accepted",
                "submission_key": key,
                "version": version,
                "supersedes": submission.supersedes,
            }
        )
    await enqueue(conn, "ingest", messages)
    for row in pre_rejected:
        if row.row == 0:
            receipts.insert(0, _rejected(0, row.reasons))
    return receipts


def _rejected(row: int, reasons: tuple[Reason, ...]) -> dict[str, Any]:
    return {"row": row, "status": "rejected", "reasons": [r.as_dict() for r in reasons]}
