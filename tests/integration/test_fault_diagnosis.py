"""The fault test's diagnosis of a payment that differs runs against the real schemas: it used to name a column
that measures.facts lacks, so it crashed exactly when a payment differed (issue 17, item 7)."""

from __future__ import annotations

import asyncpg
import pytest

from utfall_platform.db import create_pool

from ..faults import _diagnose
from ..helpers import migrate_service

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_diagnosis_of_a_differing_payment_runs_on_the_real_schemas(world) -> None:  # type: ignore[no-untyped-def]
    pool = await create_pool(world.database_url)
    try:
        for service in ("measures", "contracts"):
            await migrate_service(pool, service)
    finally:
        await pool.close()
    conn = await asyncpg.connect(world.database_url)
    try:
        diagnosis = await _diagnose(conn, "c-diag", "v1:SUBJECT|provider-x|episode-1|planned_discharge")
    finally:
        await conn.close()
    assert diagnosis["payment"].endswith("planned_discharge")
    assert diagnosis["measures.facts"] == [] and diagnosis["contracts.ledger"] == []
    assert diagnosis["measures.outbox unsent"] == [{"n": "0"}]
