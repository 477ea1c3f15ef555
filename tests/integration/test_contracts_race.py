"""A contract, a placement and its outcome fact reach contracts on three consumers, each in its own transaction.
Whichever of two commits second must see the other's rows and pay. Two races were found this way: a placement
and its fact under load (two payments missing when the reads were taken before the contract lock), and a new
contract and its placements (129 of 200 never enrolled, when neither waited for the other)."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from utfall_contracts.consumers import care_events_handler, commands_handler, outcomes_handler
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


STEPS = ("definition", "placement", "fact")


@pytest.mark.parametrize("order", list(itertools.permutations(STEPS)), ids="-".join)
async def test_contract_placement_and_fact_pay_once_whichever_two_race(pool, order: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    """The first step commits; the second holds its transaction open while the third runs beside it. The third
    must wait for the second and then see its rows, whatever the two are: a new contract and a placement (or a
    fact) missed each other once, and the contract never enrolled the placement."""
    provider, contract_id, episode = uid("race-"), uid("contract-"), uid("ep-")
    subject = "v1:" + base64.b32encode(episode.encode()).decode().rstrip("=")
    command = FakeRecord(
        "contracts.commands.v1",
        0,
        1,
        contract_id.encode(),
        definition(contract_id, provider).model_dump_json().encode(),
        [],
    )
    placement = FakeRecord("care.events.v1", 0, 1, *placement_record(provider, episode, subject))
    fact = FakeRecord(
        "outcomes.v1",
        0,
        1,
        *fact_record(provider, episode, subject, "planned_discharge", "achieved", 1, None),
    )
    steps = {
        "definition": lambda conn: commands_handler(CLOCK)(conn, [command]),
        "placement": lambda conn: care_events_handler(CLOCK)(conn, [placement]),
        "fact": lambda conn: outcomes_handler(CLOCK, version=1)(conn, [fact]),  # the race is after decoding
    }
    committed, holding, waiting = order
    async with pool.acquire() as conn, conn.transaction():
        await steps[committed](conn)

    a = await pool.acquire()
    b = await pool.acquire()
    try:
        tx_a = a.transaction()
        await tx_a.start()
        await steps[holding](a)  # holds its rows and its locks, uncommitted

        async def run_waiting() -> None:
            async with b.transaction():
                await steps[waiting](b)

        racing = asyncio.create_task(run_waiting())
        await asyncio.sleep(0.5)  # the waiting transaction has written its rows and waits for a lock
        assert not racing.done(), "the waiting reconciliation must wait for the holding one to commit"
        await tx_a.commit()
        await asyncio.wait_for(racing, 10)
    finally:
        await pool.release(a)
        await pool.release(b)
    assert await ledger(pool, contract_id) == ["payment.triggered"]
