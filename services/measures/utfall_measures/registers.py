"""Measures' Kafka entrypoint for `registers.v1`: a thin handler. Register rows are kept (the latest
extract's version of each), coverage claims are kept, and every subject they can change is re-folded in
the same transaction, so its verified facts follow."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from pydantic import TypeAdapter, ValidationError

from utfall_events.codec import UndecodableRecord, describe
from utfall_events.registers import RegisterCoverageV1, RegisterMessageV1, RegisterRecordV1
from utfall_platform.clock import Clock
from utfall_platform.consumer import Record

from . import register_store
from .domain.verification import VERIFIABLE
from .projection import refold

_MESSAGE: TypeAdapter[RegisterRecordV1 | RegisterCoverageV1] = TypeAdapter(RegisterMessageV1)
LONGEST_WINDOW_MONTHS = max(m.window_months or 0 for m in VERIFIABLE)
REFOLD_CHUNK = 2000  # subjects per refold: bounded memory when a national register's coverage arrives


def decode(record: Record) -> RegisterRecordV1 | RegisterCoverageV1:
    try:
        return _MESSAGE.validate_json(record.value or b"")
    except ValidationError as exc:
        raise UndecodableRecord(f"not a valid register message: {describe(exc)}") from None


def registers_handler(clock: Clock):  # type: ignore[no-untyped-def]
    async def handle(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        messages = [decode(r) for r in records]  # an undecodable record raises: isolated, dead-lettered
        rows = [m for m in messages if isinstance(m, RegisterRecordV1)]
        claims = [m for m in messages if isinstance(m, RegisterCoverageV1)]
        subjects = await register_store.store_records(conn, rows)
        await register_store.store_coverage(conn, claims)
        subjects |= set(
            await register_store.subjects_covered_by(
                conn, claims, longest_window_months=LONGEST_WINDOW_MONTHS
            )
        )
        ordered = sorted(subjects)
        for i in range(0, len(ordered), REFOLD_CHUNK):
            await refold(conn, ordered[i : i + REFOLD_CHUNK], today=clock.today(), now=clock.now())

    return handle
