"""Effectively-once consumption: the consumed positions are written in the same transaction as the effect.

A chain in the spirit of arroyo's strategies, made explicit:
    records -> skip what this consumer already applied (positions, row-locked) -> handler in one
    transaction -> positions advanced in that transaction -> commit -> Kafka offsets (lazily, CommitPolicy)
Error policy (DeadLetterPolicy):
    transient (database or broker down)  retried with exponential backoff, forever; nothing is skipped
    poison (the record's own fault:      the batch is bisected until each failing record is alone; it goes
      undecodable, fails its schema)     to the dead-letter topic (through the outbox, with its position,
                                         in one transaction) and the rest is processed
    anything else (a bug)                retried `max_attempts` times, then the process exits loudly
                                         (exit code 70) without committing: nothing is skipped, the records
                                         wait on Kafka until the bug is fixed
    positions gone back (PostgreSQL      the database holds an earlier position than this process committed:
      lost transactions it had           commits were lost (an asynchronous commit at a crash, a failover to a
      confirmed)                         replica behind). The consumer seeks Kafka back to the stored position
                                         and reads the lost records again, instead of carrying on past them;
                                         checked at every batch and, for a partition no new record comes to
                                         (the stream ended at the failover), every few seconds
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import orjson

from . import metrics
from .background import TRANSIENT_ERRORS
from .cloudevents_headers import header_text
from .outbox import OutboxMessage, enqueue

log = logging.getLogger(__name__)


class Record(Protocol):
    """What a handler needs of a Kafka record (aiokafka's ConsumerRecord has it)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...
    @property
    def timestamp(self) -> int: ...


Handler = Callable[[asyncpg.Connection, Sequence[Record]], Awaitable[None]]


class ConsumerHalted(RuntimeError):
    """A bug made a batch fail repeatedly; the consumer refuses to go on past it."""


@dataclass(frozen=True, slots=True)
class DeadLetterPolicy:
    topic: str
    poison: tuple[type[BaseException], ...] = ()
    max_attempts: int = 3
    exit_on_bug: bool = True

    def message(self, service: str, record: Record, exc: BaseException, at: datetime) -> OutboxMessage:
        # No payload is copied: the original stays on its topic at the given position.
        body = {
            "service": service,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "ce_id": header_text(record.headers, "ce_id"),
            "ce_source": header_text(record.headers, "ce_source"),
            "ce_type": header_text(record.headers, "ce_type"),
            "reason": type(exc).__name__,
            "detail": str(exc)[:500],
            "dead_lettered_at": at.isoformat(),
        }
        return OutboxMessage(self.topic, record.key, orjson.dumps(body))


@dataclass
class CommitPolicy:
    """Kafka offsets are only a hint here (positions in Postgres are the truth): commit at most this often."""

    min_interval_seconds: float = 1.0
    _last: float = 0.0

    def should_commit(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.min_interval_seconds:
            self._last = now
            return True
        return False


Positions = dict[tuple[str, int], int]


class PositionsRewound(Exception):
    """The stored positions are behind what this process committed: those records must be read again."""

    def __init__(self, positions: Positions) -> None:
        super().__init__(positions)
        self.positions = positions


class TransactionalBatchConsumer:
    def __init__(
        self,
        *,
        service: str,
        name: str,
        pool: asyncpg.Pool,
        schema: str,
        handler: Handler,
        dead_letter: DeadLetterPolicy,
        now: Callable[[], datetime],
        max_backoff_seconds: float = 5.0,
    ) -> None:
        self.service = service
        self.name = name
        self.pool = pool
        self.schema = schema
        self.handler = handler
        self.dead_letter = dead_letter
        self.now = now
        self.max_backoff_seconds = max_backoff_seconds
        self.applied_total = 0
        self.skipped_total = 0
        self.dead_lettered_total = 0
        self.rewound_total = 0
        self.halted: BaseException | None = None
        # The next offset this process committed per partition, and how to make Kafka read from an earlier one
        # (set by the subscriber: `utfall_platform.kafka.subscribe_transactional`).
        self.committed: Positions = {}
        self.rewind: Callable[[Positions], Awaitable[None]] | None = None
        # After a rewind, per partition, the offset this process had committed before it: a batch fetched
        # before the seek holds only records at or past it and is dropped (it would skip the lost ones).
        self.pending_rewind: Positions = {}
        self._batch = asyncio.Lock()  # a batch and a position check never interleave

    async def stored_positions(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        rows = await self.pool.fetch(
            f'SELECT topic, partition, next_offset FROM "{self.schema}".consumer_positions '
            "WHERE consumer = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))",
            self.name,
            [t for t, _ in partitions],
            [p for _, p in partitions],
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def process(self, records: Sequence[Record]) -> None:
        if self.halted is not None:
            raise ConsumerHalted("consumer halted after a bug; refusing to skip past it") from self.halted
        if not records:
            return
        async with self._batch:
            await self._process_in_order(list(records))

    async def _process_in_order(self, records: list[Record]) -> None:
        records = self._without_stale(records)
        if not records:
            return
        try:
            try:
                await self._process(records)
            except PositionsRewound as rewound:
                # The whole batch in hand is dropped: its other partitions are read again from where it began
                # there (what of it was applied is skipped by position), or their records would be skipped.
                dropped: Positions = {}
                for r in records:
                    key = (r.topic, r.partition)
                    dropped[key] = min(dropped.get(key, r.offset), r.offset)
                await self._read_again(rewound.positions, dropped)
        except ConsumerHalted as exc:
            self.halted = exc
            log.critical("%s: %s", self.name, exc, exc_info=exc.__cause__)
            if self.dead_letter.exit_on_bug:
                logging.shutdown()
                os._exit(70)  # crash loudly; the uncommitted records stay on Kafka
            raise

    def _without_stale(self, records: list[Record]) -> list[Record]:
        """Drop the records of a rewound partition that were fetched before the seek (all at or past the offset
        committed before it); the first batch holding an earlier one is the partition read again."""
        for key, before in list(self.pending_rewind.items()):
            offsets = [r.offset for r in records if (r.topic, r.partition) == key]
            if not offsets:
                continue
            if min(offsets) < before:
                del self.pending_rewind[key]
            else:
                records = [r for r in records if (r.topic, r.partition) != key]
        return records

    def forget(self, partitions: Sequence[tuple[str, int]]) -> None:
        """A partition (re)assigned starts where the database says; what this process knew of it is history."""
        for key in partitions:
            self.committed.pop(key, None)
            self.pending_rewind.pop(key, None)

    async def check_positions(self) -> None:
        """Between batches: has the database lost commits of a partition this process committed? A consumer
        finds out at its next batch of that partition; one that gets none (the stream ended when the database
        failed over) would otherwise never read the lost records again."""
        if not self.committed or self.rewind is None:
            return
        async with self._batch:
            before = dict(self.committed)  # read first: a position stored after it only moves forward
            stored = await self.stored_positions(list(before))
            behind = {
                key: stored.get(key, 0) for key, offset in before.items() if stored.get(key, 0) < offset
            }
            if behind:
                await self._read_again(behind)

    async def _process(self, records: list[Record]) -> None:
        attempt = 0
        backoff = 0.1
        topic = records[0].topic
        while True:
            try:
                started = time.perf_counter()
                await self._apply(records, self.handler)
                metrics.BATCH_SECONDS.labels(self.service, topic).observe(time.perf_counter() - started)
                metrics.BATCH_SIZE.labels(self.service, topic).observe(len(records))
                return
            except asyncio.CancelledError:
                raise
            except PositionsRewound:
                raise  # the whole batch in hand is dropped, whichever part of it found out (see `process`)
            except TRANSIENT_ERRORS as exc:
                metrics.TRANSIENT_RETRIES.labels(self.service, topic).inc()
                log.warning("%s: transient fault %r; retrying batch in %.1fs", self.name, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)
            except self.dead_letter.poison as exc:
                if len(records) == 1:
                    await self._dead_letter(records[0], exc)
                    return
                middle = len(records) // 2
                log.warning("%s: isolating a poison record among %d (%r)", self.name, len(records), exc)
                await self._process(records[:middle])
                await self._process(records[middle:])
                return
            except Exception as exc:
                attempt += 1
                if attempt < self.dead_letter.max_attempts:
                    log.warning(
                        "%s: batch failed (%r), attempt %d of %d",
                        self.name,
                        exc,
                        attempt,
                        self.dead_letter.max_attempts,
                    )
                    await asyncio.sleep(0.2 * attempt)
                    continue
                raise ConsumerHalted(f"batch at {topic} failed {attempt} times: {exc!r}") from exc

    async def _apply(self, records: list[Record], handler: Handler) -> None:
        partitions = sorted({(r.topic, r.partition) for r in records})
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f'INSERT INTO "{self.schema}".consumer_positions (consumer, topic, partition, next_offset) '
                "SELECT $1, t, p, 0 FROM unnest($2::text[], $3::int[]) AS u(t, p) ON CONFLICT DO NOTHING",
                self.name,
                [t for t, _ in partitions],
                [p for _, p in partitions],
            )
            # Row locks serialise two replicas that briefly both hold a partition during a rebalance.
            rows = await conn.fetch(
                f'SELECT topic, partition, next_offset FROM "{self.schema}".consumer_positions '
                "WHERE consumer = $1 AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[])) "
                "ORDER BY topic, partition FOR UPDATE",
                self.name,
                [t for t, _ in partitions],
                [p for _, p in partitions],
            )
            position = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
            rewound = {
                key: offset for key, offset in position.items() if offset < self.committed.get(key, offset)
            }
            if rewound:
                raise PositionsRewound(rewound)
            fresh = [r for r in records if r.offset >= position[(r.topic, r.partition)]]
            skipped = len(records) - len(fresh)
            if fresh:
                await handler(conn, fresh)
            advanced: dict[tuple[str, int], int] = {}
            for r in fresh:
                key = (r.topic, r.partition)
                advanced[key] = max(advanced.get(key, 0), r.offset + 1)
            if advanced:
                await conn.execute(
                    f'UPDATE "{self.schema}".consumer_positions AS cp SET next_offset = u.o, '
                    "updated_at = clock_timestamp() FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(t, p, o) "
                    "WHERE cp.consumer = $1 AND cp.topic = u.t AND cp.partition = u.p",
                    self.name,
                    [k[0] for k in advanced],
                    [k[1] for k in advanced],
                    list(advanced.values()),
                )
        self.committed.update(advanced)
        self.applied_total += len(fresh)
        self.skipped_total += skipped
        if fresh:
            metrics.MESSAGES_IN.labels(self.service, records[0].topic).inc(len(fresh))
        if skipped:
            metrics.MESSAGES_SKIPPED.labels(self.service, records[0].topic).inc(skipped)

    async def _read_again(self, positions: Positions, dropped: Positions | None = None) -> None:
        """Seek back to the stored positions, and each other partition of the dropped batch in hand to where that
        batch began in it: all of it comes again from Kafka."""
        log.error(
            "%s: the database lost commits this consumer made (positions %s are behind what it committed); "
            "reading those records again",
            self.name,
            {f"{t}/{p}": f"{o} < {self.committed[(t, p)]}" for (t, p), o in positions.items()},
        )
        if self.rewind is None:
            raise ConsumerHalted("stored positions went back and this consumer cannot seek: refusing to skip")
        await self.rewind({**(dropped or {}), **positions})
        for key in positions:
            self.pending_rewind[key] = max(self.pending_rewind.get(key, 0), self.committed.get(key, 0))
        self.committed.update(positions)
        self.rewound_total += 1

    async def _dead_letter(self, record: Record, exc: BaseException) -> None:
        log.error(
            "%s: dead-lettering %s/%d@%d: %r",
            self.name,
            record.topic,
            record.partition,
            record.offset,
            exc,
        )
        message = self.dead_letter.message(self.service, record, exc, self.now())

        async def write(conn: asyncpg.Connection, _: Sequence[Record]) -> None:
            await enqueue(conn, self.schema, [message])

        while True:
            try:
                await self._apply([record], write)
                break
            except TRANSIENT_ERRORS as transient:
                log.warning("%s: transient fault while dead-lettering: %r", self.name, transient)
                await asyncio.sleep(1.0)
        self.dead_lettered_total += 1
        metrics.DEAD_LETTERS.labels(self.service, self.dead_letter.topic, type(exc).__name__).inc()


def records_of(raw_message: Any) -> list[Any]:
    """FastStream gives a tuple of ConsumerRecords for a batch subscriber, one record otherwise."""
    return list(raw_message) if isinstance(raw_message, tuple | list) else [raw_message]
