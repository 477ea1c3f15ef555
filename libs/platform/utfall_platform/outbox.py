"""Transactional outbox: rows written in the same transaction as the state they describe, relayed to Kafka.

Publishing is exactly-once as seen by read_committed consumers:
- one relay per schema at a time (a Postgres advisory lock held on a dedicated connection), using a
  transactional producer whose fixed transactional id fences any zombie predecessor;
- each relay batch is one Kafka transaction, then its rows are deleted from the outbox (sent);
- a crash between the Kafka commit and the Postgres delete leaves rows in the outbox that are already on Kafka.
  On start the relay reads the tail of every partition it writes (only it writes those topics), collects
  the `utfall-outbox-id` headers it finds, and deletes those rows instead of sending them again.

The outbox holds only what is owed: every row in it is unsent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner, murmur2

from . import metrics
from .background import record_failure
from .bulk import BulkInsert
from .kafka_access import KafkaAccess
from .locks import session_lock

log = logging.getLogger(__name__)
_random_partitioner = DefaultPartitioner()


@functools.lru_cache(maxsize=65_536)
def _key_hash(key: bytes) -> int:
    return int(murmur2(key)) & 0x7FFFFFFF


def cached_key_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's default partitioner (Java's murmur2, so Java producers agree on where a key goes) with the
    hash cached: the pure-Python murmur2 was 5-7 % of measures' and ingest's profiled CPU, and a relay batch
    repeats its keys (the eight facts of an episode share their subject's key)."""
    if key is None:
        return int(_random_partitioner(key, all_partitions, available))
    return all_partitions[_key_hash(key) % len(all_partitions)]


OUTBOX_ID_HEADER = "utfall-outbox-id"
OUTBOX_SCHEMA_HEADER = "utfall-outbox"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()


def platform_ddl(schema: str) -> str:
    """Tables every service schema has: the outbox and the consumers' positions."""
    return f"""
    CREATE TABLE IF NOT EXISTS "{schema}".outbox (
        id bigserial PRIMARY KEY,
        topic text NOT NULL,
        key bytea,
        value bytea NOT NULL,
        headers text[] NOT NULL DEFAULT '{{}}',
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    -- Sent rows were once marked, now they are deleted: the column and its index are gone (idempotent).
    DROP INDEX IF EXISTS "{schema}".outbox_unsent;
    ALTER TABLE "{schema}".outbox DROP COLUMN IF EXISTS sent_at;
    -- A queue table: every row is inserted, relayed and deleted within seconds. Under default autovacuum
    -- throttling the dead rows outgrew the live ones by far (the measures outbox passed 100,000 pages in the
    -- full benchmark) and every relay query waded through them; vacuum it early and unthrottled.
    ALTER TABLE "{schema}".outbox SET (
        autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 2000,
        autovacuum_vacuum_cost_delay = 0
    );
    CREATE TABLE IF NOT EXISTS "{schema}".consumer_positions (
        consumer text NOT NULL,
        topic text NOT NULL,
        partition int NOT NULL,
        next_offset bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (consumer, topic, partition)
    );
    CREATE OR REPLACE FUNCTION "{schema}".outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('{schema}_outbox', ''); RETURN NULL; END $$;
    DROP TRIGGER IF EXISTS outbox_notify ON "{schema}".outbox;
    CREATE TRIGGER outbox_notify AFTER INSERT ON "{schema}".outbox
        FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".outbox_notify();
    """


def _encode_headers(headers: Iterable[tuple[str, bytes]]) -> list[str]:
    # name and value flattened into one text[]: [n1, v1, n2, v2, ...]; header values are always text here
    flat: list[str] = []
    for name, value in headers:
        flat.append(name)
        flat.append(value.decode("utf-8"))
    return flat


_ENQUEUE: dict[str, BulkInsert] = {}


def _enqueue_statement(schema: str) -> BulkInsert:
    if schema not in _ENQUEUE:
        _ENQUEUE[schema] = BulkInsert(
            f"{schema}.outbox",
            (("topic", "text"), ("key", "bytea"), ("value", "bytea"), ("headers", "text")),
            select={"headers": "coalesce(string_to_array(x.headers, chr(31)), '{}')"},
        )
    return _ENQUEUE[schema]


async def enqueue(conn: asyncpg.Connection, schema: str, messages: Sequence[OutboxMessage]) -> None:
    """Write messages to the outbox inside the caller's transaction (one set-based insert)."""
    if not messages:
        return
    await _enqueue_statement(schema).write(
        conn,
        (
            {
                "topic": m.topic,
                "key": m.key,
                "value": m.value,
                "headers": "\x1f".join(_encode_headers(m.headers)) if m.headers else None,
            }
            for m in messages
        ),
    )


class OutboxRelay:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        dsn: str,
        schema: str,
        kafka: KafkaAccess,
        batch_size: int = 2000,
        idle_poll_seconds: float = 1.0,
        linger_ms: int = 5,
        instance: str = "",
    ) -> None:
        self.pool = pool
        self.dsn = dsn
        self.schema = schema
        self.kafka = kafka
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self.linger_ms = linger_ms
        # One writer per (deployment, schema): the id fences a zombie predecessor; the header marks its rows.
        # The transactional id starts with `utfall-<service>-`, the prefix the service's ACL allows.
        self.identity = f"{instance}/{schema}" if instance else schema
        self.transactional_id = f"utfall-{schema}-outbox" + (f"-{instance}" if instance else "")
        # The relay's leader lock keeps its earlier name, so an old and a new replica exclude each other too.
        self.lock_name = f"utfall-outbox-{self.identity.replace('/', '-')}"
        self._wakeup = asyncio.Event()
        self._stopping = False
        self.is_leader = False
        self.published_total = 0

    async def run(self) -> None:
        """Relay until cancelled; transient faults (broker or database down) are retried with backoff."""
        backoff = 0.2
        while not self._stopping:
            try:
                await self._lead()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Transient or not, a fresh round (new connection, new producer, recovery of what was in
                # flight) is what a process restart would do, without taking the consumers down with it.
                self.is_leader = False
                record_failure(self.schema, "outbox-relay", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _lead(self) -> None:
        lock_conn: asyncpg.Connection = await asyncpg.connect(self.dsn)
        try:
            lock_key = session_lock(self.lock_name)
            while not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key):
                await asyncio.sleep(1.0)  # another replica relays; stand by
            await lock_conn.add_listener(f"{self.schema}_outbox", self._on_notify)
            producer = AIOKafkaProducer(
                **self.kafka.client_options(),
                transactional_id=self.transactional_id,
                enable_idempotence=True,
                acks="all",
                linger_ms=self.linger_ms,
                max_batch_size=256 * 1024,
                compression_type="lz4",
                request_timeout_ms=15000,
                partitioner=cached_key_partitioner,
            )
            await producer.start()
            try:
                self.is_leader = True
                await self._recover()
                while not self._stopping:
                    # Cleared before the round, not after it: a NOTIFY of a row committed during the round
                    # stays set and starts the next round at once. Cleared after, it was lost, and the row
                    # waited for the next writer or the idle poll (most of the pipeline's median latency).
                    self._wakeup.clear()
                    sent = await self._relay_once(producer)
                    if sent < self.batch_size:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wakeup.wait(), self.idle_poll_seconds)
                    if lock_conn.is_closed():
                        raise ConnectionError("outbox lock connection lost")
            finally:
                self.is_leader = False
                await producer.stop()
        finally:
            with contextlib.suppress(Exception):
                await lock_conn.close()

    def _on_notify(self, *_: Any) -> None:
        self._wakeup.set()

    async def _relay_once(self, producer: AIOKafkaProducer) -> int:
        rows = await self.pool.fetch(
            f'SELECT id, topic, key, value, headers FROM "{self.schema}".outbox ORDER BY id LIMIT $1',
            self.batch_size,
        )
        if not rows:
            await self._observe_backlog()
            return 0
        schema_header = (OUTBOX_SCHEMA_HEADER, self.identity.encode())
        async with producer.transaction():
            futures = []
            for row in rows:
                flat = row["headers"] or []
                headers = [(flat[i], flat[i + 1].encode()) for i in range(0, len(flat), 2)]
                headers.append((OUTBOX_ID_HEADER, str(row["id"]).encode()))
                headers.append(schema_header)
                futures.append(
                    await producer.send(row["topic"], value=row["value"], key=row["key"], headers=headers)
                )
            await asyncio.gather(*futures)
        ids = [row["id"] for row in rows]
        # Sent rows are deleted (one write, no dead rows to vacuum later): the outbox holds only what is owed.
        await self.pool.execute(f'DELETE FROM "{self.schema}".outbox WHERE id = ANY($1::bigint[])', ids)
        self.published_total += len(rows)
        for topic in {row["topic"] for row in rows}:
            metrics.OUTBOX_PUBLISHED.labels(self.schema, topic).inc(
                sum(1 for r in rows if r["topic"] == topic)
            )
        await self._observe_backlog()
        return len(rows)

    async def _observe_backlog(self) -> None:
        row = await self.pool.fetchrow(
            f"SELECT count(*) AS n, extract(epoch FROM clock_timestamp() - min(created_at)) AS age "
            f'FROM "{self.schema}".outbox'
        )
        metrics.OUTBOX_BACKLOG.labels(self.schema).set(row["n"] if row else 0)
        metrics.OUTBOX_OLDEST_AGE.labels(self.schema).set(float(row["age"] or 0) if row else 0)

    async def _recover(self) -> None:
        """Delete the rows that a crashed predecessor already committed to Kafka."""
        pending = await self.pool.fetch(f'SELECT DISTINCT topic FROM "{self.schema}".outbox')
        if not pending:
            return
        topics = [r["topic"] for r in pending]
        found = await read_outbox_ids_at_tail(self.kafka, topics, self.identity, self.batch_size + 16)
        if not found:
            return
        # The id alone is not proof: after a database restore, ids are handed out again. A row counts as sent
        # only when the record under its id also carries its value.
        candidates = await self.pool.fetch(
            f'SELECT id, value FROM "{self.schema}".outbox WHERE id = ANY($1::bigint[])', sorted(found)
        )
        sent = [r["id"] for r in candidates if found[r["id"]] == _digest(r["value"])]
        if len(sent) < len(candidates):
            log.warning(
                "outbox relay %s: %d rows share an id with a record on Kafka but not its value; sending them",
                self.schema,
                len(candidates) - len(sent),
            )
        if sent:
            await self.pool.execute(f'DELETE FROM "{self.schema}".outbox WHERE id = ANY($1::bigint[])', sent)
            log.warning("outbox relay %s: recovered %d rows already on Kafka", self.schema, len(sent))

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()


def _digest(value: bytes) -> bytes:
    return hashlib.blake2b(value, digest_size=16).digest()


async def read_outbox_ids_at_tail(
    kafka: KafkaAccess, topics: list[str], identity: str, depth: int
) -> dict[int, bytes]:
    """The outbox ids of the last `depth` committed records of every partition of the topics, each with a
    digest of the record's value."""
    consumer = AIOKafkaConsumer(
        **kafka.client_options(), enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    found: dict[int, bytes] = {}
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(consumer.partitions_for_topic(topic) or [])
            ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        begins = await consumer.beginning_offsets(partitions)
        remaining = {}
        for tp in partitions:
            start = max(begins[tp], ends[tp] - depth)
            if ends[tp] > start:
                consumer.seek(tp, start)
                remaining[tp] = ends[tp]
        deadline = time.monotonic() + 30
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(*remaining.keys(), timeout_ms=500)
            for records in batch.values():
                for record in records:
                    headers = dict(record.headers or ())
                    if headers.get(OUTBOX_SCHEMA_HEADER) == identity.encode() and OUTBOX_ID_HEADER in headers:
                        found[int(headers[OUTBOX_ID_HEADER])] = _digest(record.value or b"")
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
        if remaining:
            raise TimeoutError(f"could not read the tail of {sorted(map(str, remaining))}")
    finally:
        await consumer.stop()
    return found
