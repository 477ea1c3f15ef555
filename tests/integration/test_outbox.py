"""The transactional outbox relay on real Kafka and Postgres: every row published once, rows a crashed
predecessor already committed to Kafka are not sent again, and rows whose id was handed out again (a
restored database) are not mistaken for sent ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from utfall_platform.db import create_pool
from utfall_platform.outbox import (
    OUTBOX_ID_HEADER,
    OUTBOX_SCHEMA_HEADER,
    OutboxMessage,
    OutboxRelay,
    enqueue,
    platform_ddl,
)

from ..helpers import header, produce, read_topic, uid, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")
SCHEMA = "relaytest"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def topic(world) -> str:  # type: ignore[no-untyped-def]
    name = uid("outbox.test.")
    admin = AIOKafkaAdminClient(**world.kafka.client_options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    return name


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(world) -> AsyncIterator[asyncpg.Pool]:  # type: ignore[no-untyped-def]
    pool = await create_pool(world.database_url)
    async with pool.acquire() as conn:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
        await conn.execute(platform_ddl(SCHEMA))
    yield pool
    await pool.close()


def relay(
    world, pool: asyncpg.Pool, kind: type[OutboxRelay] = OutboxRelay, idle_poll: float = 0.2
) -> OutboxRelay:  # type: ignore[no-untyped-def]
    return kind(
        pool=pool,
        dsn=world.database_url,
        schema=SCHEMA,
        kafka=world.kafka,
        idle_poll_seconds=idle_poll,
        instance=world.instance,
    )


@asynccontextmanager
async def relaying(world, pool: asyncpg.Pool) -> AsyncIterator[OutboxRelay]:  # type: ignore[no-untyped-def]
    r = relay(world, pool)
    task = asyncio.create_task(r.run())
    try:
        yield r
    finally:
        await r.stop()
        await asyncio.wait_for(task, 30)


async def drained(pool: asyncpg.Pool) -> bool:
    return int(await pool.fetchval(f'SELECT count(*) FROM "{SCHEMA}".outbox')) == 0


def messages(topic: str, run: str, n: int) -> list[OutboxMessage]:
    return [
        OutboxMessage(topic, f"k{i % 7}".encode(), f"{run}:{i}".encode(), [("run", run.encode())])
        for i in range(n)
    ]


async def test_every_row_is_published_once_in_order_per_key(world, pool, topic) -> None:  # type: ignore[no-untyped-def]
    run = uid("run-")
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, SCHEMA, messages(topic, run, 120))
    async with relaying(world, pool) as r:
        await wait_until(lambda: drained(pool), what="an empty outbox")
        assert r.published_total == 120
    records = await read_topic(world.kafka, topic, predicate=lambda x: header(x, "run") == run)
    values = [x.value.decode() for x in records]
    assert sorted(values) == sorted(f"{run}:{i}" for i in range(120))
    for key in {x.key for x in records}:
        same_key = [int(x.value.decode().split(":")[1]) for x in records if x.key == key]
        assert same_key == sorted(same_key)


async def test_rows_already_on_kafka_are_not_sent_again_but_rows_reusing_an_id_are(
    world, pool, topic
) -> None:  # type: ignore[no-untyped-def]
    run = uid("run-")
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, SCHEMA, messages(topic, run, 30))
    rows = await pool.fetch(f'SELECT id, key, value FROM "{SCHEMA}".outbox ORDER BY id')
    identity = relay(world, pool).identity.encode()
    # A predecessor that died after its Kafka commit: the first 20 rows are on Kafka, still owed in Postgres.
    # The next 5 ids are on Kafka with other values: what a restored database's reused ids look like.
    on_kafka = [(r["key"], r["value"], str(r["id"])) for r in rows[:20]]
    on_kafka += [(r["key"], b"older:" + r["value"], str(r["id"])) for r in rows[20:25]]
    await produce(
        world.kafka,
        topic,
        [
            (
                key,
                value,
                [("run", run.encode()), (OUTBOX_ID_HEADER, rid.encode()), (OUTBOX_SCHEMA_HEADER, identity)],
            )
            for key, value, rid in on_kafka
        ],
    )
    async with relaying(world, pool) as r:
        await wait_until(lambda: drained(pool), what="an empty outbox")
        assert r.published_total == 10
    records = await read_topic(world.kafka, topic, predicate=lambda x: header(x, "run") == run)
    values = sorted(x.value.decode() for x in records)
    expected = [f"{run}:{i}" for i in range(30)] + [f"older:{run}:{i}" for i in range(20, 25)]
    assert values == sorted(expected)


async def test_an_outbox_from_before_deletion_loses_its_sent_at_column(world) -> None:  # type: ignore[no-untyped-def]
    """Rows were once marked sent, now they are deleted: an older outbox table upgrades in place on start,
    keeping the rows it owes."""
    schema = uid("oldbox_").replace("-", "_")
    conn = await asyncpg.connect(world.database_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(
            f'CREATE TABLE "{schema}".outbox (id bigserial PRIMARY KEY, topic text NOT NULL, key bytea, '
            "value bytea NOT NULL, headers text[] NOT NULL DEFAULT '{}', "
            "created_at timestamptz NOT NULL DEFAULT clock_timestamp(), sent_at timestamptz); "
            f'CREATE INDEX outbox_unsent ON "{schema}".outbox (id) WHERE sent_at IS NULL; '
            f"INSERT INTO \"{schema}\".outbox (topic, value) VALUES ('t', 'owed')"
        )
        await conn.execute(platform_ddl(schema))
        await conn.execute(platform_ddl(schema))  # idempotent, as on every start
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'outbox'",
            schema,
        )
        assert "sent_at" not in {r["column_name"] for r in columns}
        assert await conn.fetchval(f"SELECT to_regclass('\"{schema}\".outbox_unsent')") is None
        assert await conn.fetchval(f'SELECT value FROM "{schema}".outbox') == b"owed"
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


async def test_a_row_committed_during_a_relay_round_is_relayed_at_once(world, pool, topic) -> None:  # type: ignore[no-untyped-def]
    """The relay sleeps until a NOTIFY (or its idle poll). A row committed while a round is under way (after
    its SELECT) notifies during the round: that wake-up must not be lost, or the row waits for the idle poll,
    or for the next writer. Here the idle poll is an hour, so a lost wake-up fails the test instead of
    costing a second of latency (the p99 of the latency benchmark at 500 events/s, and most of its p50)."""
    run = uid("run-")
    late = OutboxMessage(topic, b"late", f"{run}:late".encode(), [("run", run.encode())])
    written_during_round = asyncio.Event()

    class RelayWithAWriterBesideIt(OutboxRelay):
        async def _relay_once(self, producer):  # type: ignore[no-untyped-def]
            sent = await super()._relay_once(producer)
            if sent and not written_during_round.is_set():
                async with pool.acquire() as conn, conn.transaction():
                    await enqueue(conn, SCHEMA, [late])
                written_during_round.set()
                # the NOTIFY reaches the listener before this round ends
                await wait_until(lambda: _set(self._wakeup), what="the NOTIFY of the late row", timeout=10)
            return sent

    async def _set(event: asyncio.Event) -> bool:
        return event.is_set()

    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, SCHEMA, messages(topic, run, 3))
    r = relay(world, pool, RelayWithAWriterBesideIt, idle_poll=3600)
    task = asyncio.create_task(r.run())
    try:
        await wait_until(lambda: drained(pool), what="an empty outbox, the late row too", timeout=20)
        assert written_during_round.is_set() and r.published_total == 4
    finally:
        await r.stop()
        await asyncio.wait_for(task, 30)
    records = await read_topic(world.kafka, topic, predicate=lambda x: header(x, "run") == run)
    assert sorted(x.value.decode() for x in records) == sorted(
        [f"{run}:late", *(f"{run}:{i}" for i in range(3))]
    )
