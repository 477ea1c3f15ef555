"""Kafka entrypoint for register holders that produce directly: each to its own
`registers.extracts.raw.v1.<register id>` (only its principal may write there), one part of an extract per
record: the JSON of `RegisterExtractV1`, with the header `utfall-extract-complete: false` on every part but the
last. The topic says which register sent it; the register's active keys say what it may vouch for.

Each part is taken exactly as over HTTP (`registers_service.take_extract`) in the consumer's transaction, and
answered on the register's own `registers.receipts.v1.<register id>` through the outbox in that same
transaction: the counts of every status, and a receipt with reasons for each refused row. A part that cannot
be read is answered with a problem document and takes nothing; it never stops the parts beside it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from utfall_events.auth import ApiKeyV1
from utfall_events.registers import RegisterExtractV1, RegisterReceiptsV1, RegisterRowReceiptV1
from utfall_events.topics import register_of_raw_topic, register_receipts_topic
from utfall_platform.clock import Clock
from utfall_platform.cloudevents_headers import header_text
from utfall_platform.consumer import Record
from utfall_platform.outbox import OutboxMessage, enqueue
from utfall_platform.problems import Problem, problem_document

from .domain.registers import RegisterScope, check_header, register_scope
from .domain.validation import PseudonymKey
from .registers_service import ExtractResult, take_extract

COMPLETE_HEADER = "utfall-extract-complete"
RECEIPTS_PER_MESSAGE = 1000  # a part's refusals split so that no answer nears the topic's message size


@dataclass(frozen=True, slots=True)
class Part:
    """One record read: its register, its position, whether it completes its extract, and the extract or the
    problem that refuses it."""

    register_id: str
    position: str
    complete: bool
    extract: RegisterExtractV1 | None
    problem: dict[str, Any] | None


def read_part(record: Record, keys: Iterable[ApiKeyV1], today: Any) -> Part | None:
    """Decode one record; None when its topic names no register (nothing to answer to)."""
    register_id = register_of_raw_topic(record.topic)
    if register_id is None:
        return None
    position = f"{record.topic}/{record.partition}/{record.offset}"
    complete = (header_text(record.headers, COMPLETE_HEADER) or "true").strip().lower() != "false"

    def refused(status: int, slug: str, detail: str, **extensions: Any) -> Part:
        problem = problem_document(status, slug, detail, instance=position, **extensions)
        return Part(register_id, position, complete, None, problem)

    scope = register_scope(keys, register_id)
    if not isinstance(scope, RegisterScope):
        return refused(403, "unknown-register", scope)
    try:
        raw = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError as exc:
        return refused(400, "invalid-json", f"The record is not valid JSON (at byte {exc.pos}).")
    header = check_header(raw, today=today, scope_municipality=scope.municipality_code)
    if not isinstance(header, RegisterExtractV1):
        return refused(
            422,
            "invalid-extract",
            "The extract's own fields are invalid; no row was taken.",
            errors=[r.as_dict() for r in header],
        )
    return Part(register_id, position, complete, header, None)


def receipts_messages(part: Part, result: ExtractResult | None, clock: Clock) -> list[OutboxMessage]:
    """The answer to one part, on its register's receipts topic, keyed by extract id (or position)."""
    refused = [RegisterRowReceiptV1.model_validate(r) for r in (result.receipts if result else [])]
    refused = [r for r in refused if r.status == "rejected"]
    chunks = [
        refused[i : i + RECEIPTS_PER_MESSAGE] for i in range(0, len(refused), RECEIPTS_PER_MESSAGE)
    ] or [[]]
    topic = register_receipts_topic(part.register_id).name
    key = (part.extract.extract_id if part.extract else part.position).encode()
    return [
        OutboxMessage(
            topic,
            key,
            RegisterReceiptsV1(
                register_id=part.register_id,
                position=part.position,
                extract_id=part.extract.extract_id if part.extract else None,
                complete=part.complete,
                coverage_published=bool(result and result.coverage_published),
                counts=result.counts if result else {},
                receipts=chunk,
                problem=part.problem,
                chunk=i,
                chunks=len(chunks),
                received_at=clock.now(),
            )
            .model_dump_json()
            .encode(),
        )
        for i, chunk in enumerate(chunks, start=1)
    ]


async def take_parts(
    conn: asyncpg.Connection,
    records: Sequence[Record],
    *,
    keys: Iterable[ApiKeyV1],
    clock: Clock,
    key: PseudonymKey,
) -> None:
    """Every part of a batch, in order, in the caller's transaction, each answered."""
    known = list(keys)
    messages: list[OutboxMessage] = []
    for record in records:
        part = read_part(record, known, clock.today())
        if part is None:
            continue
        result = None
        if part.extract is not None:
            try:
                result = await take_extract(
                    conn, part.register_id, part.extract, complete=part.complete, clock=clock, key=key
                )
            except Problem as refusal:  # the extract's own refusal, raised before anything is written
                part = Part(
                    part.register_id,
                    part.position,
                    part.complete,
                    part.extract,
                    problem_document(refusal.status, refusal.slug, refusal.detail, instance=part.position),
                )
        messages += receipts_messages(part, result, clock)
    await enqueue(conn, "ingest", messages)
