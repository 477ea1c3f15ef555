"""Register extracts: check each row, decide which version of it counts, publish what changed to
`registers.v1` through the outbox, all in the caller's transaction. An extract's coverage is published
once the extract is complete (its last part arrived), so no outcome is verified on half an extract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import BaseModel

from utfall_events.registers import (
    RegisterCoverageV1,
    RegisterExclusionV1,
    RegisterExtractV1,
    RegisterPlacementV1,
    RegisterRecordV1,
    RegisterStatusV1,
)
from utfall_events.topics import REGISTERS
from utfall_platform.clock import Clock
from utfall_platform.outbox import OutboxMessage, enqueue
from utfall_platform.problems import Problem

from . import register_store
from .domain.registers import (
    RECEIPT_WORDS,
    CheckedRecord,
    RowRejection,
    StoredVersion,
    check_row,
    conflict_reason,
    receipt_for,
)
from .domain.validation import PseudonymKey, safe_text

_BODIES: dict[str, type[BaseModel]] = {
    "placement": RegisterPlacementV1,
    "status": RegisterStatusV1,
    "exclusion": RegisterExclusionV1,
}


@dataclass(frozen=True, slots=True)
class ExtractResult:
    receipts: list[dict[str, Any]]
    counts: dict[str, int]
    coverage_published: bool


def _record_message(
    register_id: str, extract: RegisterExtractV1, row: CheckedRecord, clock: Clock
) -> OutboxMessage:
    record = RegisterRecordV1(
        register_id=register_id,
        record_id=row.record_id,
        extract_id=extract.extract_id,
        as_of=extract.as_of,
        subject_ref=row.subject_ref,
        kind=row.kind,
        received_at=clock.now(),
        **{row.kind: _BODIES[row.kind].model_validate(row.body)},
    )
    return OutboxMessage(REGISTERS, row.subject_ref.encode(), record.model_dump_json().encode())


async def take_extract(
    conn: asyncpg.Connection,
    register_id: str,
    extract: RegisterExtractV1,
    *,
    complete: bool,
    clock: Clock,
    key: PseudonymKey,
    pre_rejected: Sequence[RowRejection] = (),
) -> ExtractResult:
    now, today = clock.now(), clock.today()
    await register_store.lock_register(conn, register_id)
    coverage = extract.coverage.model_dump(mode="json")
    stored = await register_store.extract(conn, register_id, extract.extract_id)
    if stored is not None and (stored["as_of"] != extract.as_of or stored["coverage"] != coverage):
        raise Problem(
            409,
            "extract-changed",
            f"Extract {extract.extract_id} was received before with another as_of or coverage; a changed "
            "extract needs a new extract_id.",
        )
    checked: list[tuple[int, CheckedRecord]] = []
    receipts: dict[int, dict[str, Any]] = {}
    refused = {r.row: r for r in pre_rejected}
    for index, raw in enumerate(extract.records, start=1):
        if index in refused:
            receipts[index] = _rejected(index, refused[index])
            continue
        result = check_row(raw, key=key, as_of=extract.as_of, today=today, pointer=f"/records/{index - 1}")
        if isinstance(result, CheckedRecord):
            checked.append((index, result))
        else:
            record_id = raw.get("record_id") if isinstance(raw, dict) else None
            receipts[index] = _rejected(index, RowRejection(index, record_id, tuple(result)))
    seen = await register_store.versions(conn, register_id, sorted({r.record_id for _, r in checked}))
    messages: list[OutboxMessage] = []
    new_versions: list[tuple[str, StoredVersion, str]] = []
    for index, row in checked:
        version = StoredVersion(extract.extract_id, extract.as_of, row.digest)
        status = receipt_for(seen.get(row.record_id, ()), version)
        if status == "conflict":
            reason = conflict_reason(f"/records/{index - 1}/record_id", row.record_id)
            receipts[index] = _rejected(index, RowRejection(index, row.record_id, (reason,)))
            continue
        receipts[index] = {
            "row": index,
            "record_id": row.record_id,
            "status": status,
            "detail": RECEIPT_WORDS[status],
        }
        if status == "duplicate":
            continue
        seen.setdefault(row.record_id, []).append(version)
        new_versions.append((row.record_id, version, status))
        if status in ("accepted", "correction"):
            messages.append(_record_message(register_id, extract, row, clock))
    await register_store.save_versions(conn, register_id, new_versions, now)
    publish_coverage = complete and (stored is None or not stored["complete"])
    await register_store.save_extract(
        conn, register_id, extract.extract_id, extract.as_of, coverage, complete, now
    )
    if publish_coverage:
        message = RegisterCoverageV1(
            register_id=register_id,
            extract_id=extract.extract_id,
            as_of=extract.as_of,
            received_at=now,
            **extract.coverage.model_dump(),
        )
        messages.append(
            OutboxMessage(REGISTERS, f"coverage:{register_id}".encode(), message.model_dump_json().encode())
        )
    await enqueue(conn, "ingest", messages)
    ordered = [receipts[i] for i in sorted(receipts)]
    for rejection in pre_rejected:
        if rejection.row == 0:
            ordered.insert(0, _rejected(0, rejection))
    counts: dict[str, int] = {}
    for r in ordered:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return ExtractResult(ordered, counts, publish_coverage)


def _rejected(index: int, rejection: RowRejection) -> dict[str, Any]:
    return {
        "row": index,
        "record_id": safe_text(rejection.record_id, 64),  # the sender's own id, echoed only when harmless
        "status": "rejected",
        "detail": RECEIPT_WORDS["rejected"],
        "reasons": [r.as_dict() for r in rejection.reasons],
    }
