"""A placement and its outcome fact reach contracts on two consumers at once, each in its own transaction.
Whichever commits second must see the other's row and pay: the race that a fault run under load found
(two payments missing when the reads were taken before the contract lock)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from utfall_contracts.consumers import apply_definition, care_events_handler, outcomes_handler
from utfall_platform.clock import SystemClock
from utfall_platform.db import create_pool

from ..helpers import FakeRecord, migrate_service, uid
from .test_contracts import definition, fact_record, placement_record

pytestmark = pytest.mark.asyncio(loop_scope="session")
CLOCK = SystemClock()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(world) -> AsyncIterator[asyncpg.Pool]:  # type: ignore[no-untyped-def]
    pool = await create_pool(world.database_url)
    await migrate_service(pool, "contracts")
    yield pool
    await pool.close()


async def ledger(pool: asyncpg.Pool, contract_id: str) -> list[str]:
    rows = await pool.fetch("SELECT kind FROM contracts.ledger WHERE contract_id = $1", contract_id)
    return [r["kind"] for r in rows]


@pytest.mark.parametrize("first", ["placement", "fact"])
async def test_placement_and_fact_in_concurrent_transactions_pay_once(pool, first: str) -> None:  # type: ignore[no-untyped-def]
    provider, contract_id, episode = uid("race-"), uid("contract-"), uid("ep-")
    subject = "v1:" + base64.b32encode(episode.encode()).decode().rstrip("=")
    async with pool.acquire() as conn, conn.transaction():
        await apply_definition(conn, definition(contract_id, provider), origin="test", clock=CLOCK)
    placement = FakeRecord("care.events.v1", 0, 1, *placement_record(provider, episode, subject))
    fact = FakeRecord(
        "outcomes.v1",
        0,
        1,
        *fact_record(provider, episode, subject, "planned_discharge", "achieved", 1, None),
    )
    steps = {
        "placement": lambda conn: care_events_handler(CLOCK)(conn, [placement]),
        "fact": lambda conn: outcomes_handler(CLOCK, version=1)(conn, [fact]),  # the race is after decoding
    }
    second = "fact" if first == "placement" else "placement"

    a = await pool.acquire()
    b = await pool.acquire()
    try:
        tx_a = a.transaction()
        await tx_a.start()
        await steps[first](a)  # holds its rows and the contract lock, uncommitted

        async def run_second() -> None:
            async with b.transaction():
                await steps[second](b)

        racing = asyncio.create_task(run_second())
        await asyncio.sleep(0.5)  # the second transaction has written its row and waits for the lock
        assert not racing.done(), "the second reconciliation must wait for the first to commit"
        await tx_a.commit()
        await asyncio.wait_for(racing, 10)
    finally:
        await pool.release(a)
        await pool.release(b)
    assert await ledger(pool, contract_id) == ["payment.triggered"]
