"""When PostgreSQL loses transactions it had confirmed (an asynchronous commit at a crash, a failover to a
replica that was behind), the stored positions go back. The consumer must read the lost records again, not
carry on past them: this was the cause of the fault test's rare missing payments (the contracts consumer's
commits lost at a PostgreSQL crash restart, its Kafka fetch position already beyond them)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from utfall_platform.clock import SystemClock
from utfall_platform.consumer import ConsumerHalted, DeadLetterPolicy, TransactionalBatchConsumer
from utfall_platform.db import create_pool

from ..helpers import FakeRecord, migrate_service, uid


def records(topic: str, offsets: range) -> list[FakeRecord]:
    return [FakeRecord(topic=topic, partition=0, offset=o, key=b"k", value=b"v", headers=[]) for o in offsets]


def recording_consumer(
    pool: asyncpg.Pool, name: str
) -> tuple[TransactionalBatchConsumer, list[int], list[dict[tuple[str, int], int]]]:
    """A consumer that records the offsets it applies and the seeks it asks of Kafka."""
    applied: list[int] = []
    seeks: list[dict[tuple[str, int], int]] = []

    async def handler(conn: asyncpg.Connection, batch: Any) -> None:
        applied.extend(r.offset for r in batch)

    async def seek(positions: dict[tuple[str, int], int]) -> None:
        seeks.append(positions)

    consumer = TransactionalBatchConsumer(
        service="contracts",
        name=name,
        pool=pool,
        schema="contracts",
        handler=handler,
        dead_letter=DeadLetterPolicy("contracts.deadletter.v1", exit_on_bug=False),
        now=SystemClock().now,
    )
    consumer.rewind = seek
    return consumer, applied, seeks


async def test_lost_commits_are_read_again_not_skipped(world) -> None:  # type: ignore[no-untyped-def]
    pool = await create_pool(world.database_url)
    try:
        await migrate_service(pool, "contracts")
        consumer, applied, seeks = recording_consumer(pool, name := uid("rewind-"))
        topic = uid("t-")
        await consumer.process(records(topic, range(0, 5)))
        assert applied == [0, 1, 2, 3, 4]

        # PostgreSQL comes back without the last transactions it had confirmed: the position is 3 again
        await pool.execute(
            "UPDATE contracts.consumer_positions SET next_offset = 3 WHERE consumer = $1", name
        )
        # Kafka's fetch position is already past them; the batch also holds another partition, not rewound
        other = [
            FakeRecord(topic=topic, partition=1, offset=o, key=b"k", value=b"v", headers=[]) for o in (0, 1)
        ]
        await consumer.process([*records(topic, range(5, 8)), *other])
        assert applied == [0, 1, 2, 3, 4], "nothing may be applied past the lost records"
        # the other partition's records were dropped with the batch: it is read again from where they began
        assert seeks == [{(topic, 0): 3, (topic, 1): 0}] and consumer.rewound_total == 1
        await consumer.process(
            [*records(topic, range(3, 8)), *other]
        )  # read again from where the database stands
        assert applied == [0, 1, 2, 3, 4, 3, 4, 5, 6, 7, 0, 1]
        stored = await consumer.stored_positions([(topic, 0), (topic, 1)])
        assert stored == {(topic, 0): 8, (topic, 1): 2}

        # a consumer that cannot seek stops loudly rather than skip
        consumer.rewind = None
        await pool.execute(
            "UPDATE contracts.consumer_positions SET next_offset = 6 WHERE consumer = $1", name
        )
        with pytest.raises(ConsumerHalted):
            await consumer.process(records(topic, range(8, 9)))
        assert applied[-1] == 1 and len(applied) == 12
    finally:
        await pool.close()


async def test_an_idle_consumer_finds_lost_commits_and_drops_what_it_fetched_before_the_seek(world) -> None:  # type: ignore[no-untyped-def]
    """No new record may ever come to the partition (the stream ended when the database failed over): the
    periodic check finds the lost positions. A batch fetched before the seek (past the lost records) is dropped,
    not applied over the gap."""
    pool = await create_pool(world.database_url)
    try:
        await migrate_service(pool, "contracts")
        consumer, applied, seeks = recording_consumer(pool, name := uid("idle-"))
        topic = uid("t-")
        await consumer.check_positions()  # nothing committed yet: nothing to check
        await consumer.process(records(topic, range(0, 6)))
        await consumer.check_positions()
        assert seeks == [], "positions as committed: no seek"

        await pool.execute(
            "UPDATE contracts.consumer_positions SET next_offset = 2 WHERE consumer = $1", name
        )
        await consumer.check_positions()
        assert seeks == [{(topic, 0): 2}] and consumer.rewound_total == 1
        await consumer.process(records(topic, range(6, 9)))  # fetched before the seek: dropped
        assert applied == [0, 1, 2, 3, 4, 5]
        await consumer.process(records(topic, range(2, 9)))  # read again from the stored position
        assert applied == [0, 1, 2, 3, 4, 5, 2, 3, 4, 5, 6, 7, 8]
        assert await consumer.stored_positions([(topic, 0)]) == {(topic, 0): 9}
        await consumer.check_positions()
        assert len(seeks) == 1

        # a position row lost whole (its first commit lost) reads the partition from the start
        await pool.execute("DELETE FROM contracts.consumer_positions WHERE consumer = $1", name)
        await consumer.check_positions()
        assert seeks[-1] == {(topic, 0): 0}
        # a partition assigned afresh starts where the database says: nothing of the past is held against it
        consumer.forget([(topic, 0)])
        await consumer.process(records(topic, range(0, 2)))
        assert applied[-2:] == [0, 1]
    finally:
        await pool.close()
