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


async def test_lost_commits_are_read_again_not_skipped(world) -> None:  # type: ignore[no-untyped-def]
    pool = await create_pool(world.database_url)
    try:
        await migrate_service(pool, "contracts")
        applied: list[int] = []

        async def handler(conn: asyncpg.Connection, batch: Any) -> None:
            applied.extend(r.offset for r in batch)

        name, topic = uid("rewind-"), uid("t-")
        consumer = TransactionalBatchConsumer(
            service="contracts",
            name=name,
            pool=pool,
            schema="contracts",
            handler=handler,
            dead_letter=DeadLetterPolicy("contracts.deadletter.v1", exit_on_bug=False),
            now=SystemClock().now,
        )
        seeks: list[dict[tuple[str, int], int]] = []

        async def seek(positions: dict[tuple[str, int], int]) -> None:
            seeks.append(positions)

        consumer.rewind = seek
        await consumer.process(records(topic, range(0, 5)))
        assert applied == [0, 1, 2, 3, 4]

        # PostgreSQL comes back without the last transactions it had confirmed: the position is 3 again
        await pool.execute(
            "UPDATE contracts.consumer_positions SET next_offset = 3 WHERE consumer = $1", name
        )
        await consumer.process(records(topic, range(5, 8)))  # Kafka's fetch position is already past them
        assert applied == [0, 1, 2, 3, 4], "nothing may be applied past the lost records"
        assert seeks == [{(topic, 0): 3}] and consumer.rewound_total == 1
        await consumer.process(records(topic, range(3, 8)))  # read again from where the database stands
        assert applied == [0, 1, 2, 3, 4, 3, 4, 5, 6, 7]
        stored = await consumer.stored_positions([(topic, 0)])
        assert stored == {(topic, 0): 8}

        # a consumer that cannot seek stops loudly rather than skip
        consumer.rewind = None
        await pool.execute(
            "UPDATE contracts.consumer_positions SET next_offset = 6 WHERE consumer = $1", name
        )
        with pytest.raises(ConsumerHalted):
            await consumer.process(records(topic, range(8, 9)))
        assert applied[-1] == 7
    finally:
        await pool.close()
