"""Upgrading a contracts database written before "first determined, first paid": the migration lists every
contract, and the service's first start re-entitles and re-allocates them (one transaction each), so the
stored ledger meets the rule without anyone replaying a topic."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import orjson
import pytest

from utfall_contracts.consumers import reallocate_pending
from utfall_contracts.domain.ledger import payment_id
from utfall_platform.clock import FixedClock
from utfall_platform.db import create_pool

from ..helpers import migrate_service, uid
from .test_contracts_repository import contract

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_an_old_ledger_is_reallocated_on_first_start(infra, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ..infra import new_world

    world = await new_world(infra, "upgrade")
    migrations = Path(str(resources.files("utfall_contracts").joinpath("migrations")))
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(migrations / "0001_init.sql", old / "0001_init.sql")
    pool = await create_pool(world.database_url)
    try:
        await migrate_service(pool, "contracts", old)
        provider = uid("p-")
        definition = contract(provider, total_cap_ore=100, per_participant_cap_ore=1000)
        cid = definition.contract_id
        now = datetime(2026, 1, 1, tzinfo=UTC)
        await pool.execute(
            "INSERT INTO contracts.contract_versions VALUES ($1, 1, $2, 'x', 'test', $3)",
            cid,
            definition.model_dump(mode="json"),
            now,
        )
        # The old state: e0 paid in full, e1 blocked by the total cap (the old rule paid by arrival).
        for i in range(2):
            episode = f"e{i}"
            await pool.execute(
                "INSERT INTO contracts.placements VALUES ($1, $2, $3, $4, $5, '0180', 'hvb', 'SoL', 'behaviour', "
                "15, '2024-05-01', $6)",
                f"provider/{provider}",
                f"start-{episode}",
                provider,
                episode,
                f"v1:{episode.upper()}",
                now,
            )
            await pool.execute(
                "INSERT INTO contracts.fact_status VALUES ($1, $2, 'planned_discharge', 1, $3, 'achieved', 1, "
                "$4::text::jsonb, $5)",
                provider,
                episode,
                f"v1:{episode.upper()}",
                orjson.dumps([{"source": f"provider/{provider}", "id": f"end-{episode}"}]).decode(),
                now,
            )
            await pool.execute(
                "INSERT INTO contracts.participants VALUES ($1, $2, $3, $4, 'enrolled', 1, '0180', 'hvb', 'SoL', "
                "'behaviour', 15, '2024-05-01', $5, $5)",
                cid,
                provider,
                episode,
                f"v1:{episode.upper()}",
                now,
            )
        paid_id = payment_id(cid, "v1:E0", provider, "e0", "m-planned_discharge")
        await pool.execute(
            "INSERT INTO contracts.milestone_state VALUES ($1, $2, 'e0', 'm-planned_discharge', 1, $3, 100, false, "
            "NULL, $4), ($1, $2, 'e1', 'm-planned_discharge', 0, NULL, 0, true, $4, $4)",
            cid,
            provider,
            paid_id,
            now,
        )
        await pool.execute("INSERT INTO contracts.contract_totals VALUES ($1, 100)", cid)
        await pool.execute(
            "INSERT INTO contracts.ledger (entry_id, payment_id, kind, occurrence, contract_id, contract_version, "
            "milestone_id, measure_id, measure_version, subject_ref, provider_id, episode_id, amount_ore, "
            "signed_amount_ore, capped, evidence, determined_at) VALUES ($1, $1, 'payment.triggered', 1, $2, 1, "
            "'m-planned_discharge', 'planned_discharge', 1, 'v1:E0', $3, 'e0', 100, 100, false, '[]', $4)",
            paid_id,
            cid,
            provider,
            now,
        )

        await migrate_service(pool, "contracts")
        assert await pool.fetchval(
            "SELECT count(*) FROM contracts.pending_reallocation WHERE contract_id = $1", cid
        )
        async with pool.acquire() as conn:
            done = await reallocate_pending(conn, clock=FixedClock(now))
        assert cid in done
        assert not await pool.fetchval("SELECT count(*) FROM contracts.pending_reallocation")
        totals = await pool.fetchrow("SELECT * FROM contracts.contract_totals WHERE contract_id = $1", cid)
        assert (totals["paid_net_ore"], totals["entitled_ore"]) == (100, 200)
        states = await pool.fetch(
            "SELECT episode_id, active_amount_ore, entitled_ore, order_date FROM contracts.milestone_state "
            "WHERE contract_id = $1 ORDER BY episode_id",
            cid,
        )
        assert [s["entitled_ore"] for s in states] == [100, 100]
        assert all(s["order_date"] == date(9999, 12, 31) for s in states)  # facts from before outcome dates
        # Without outcome dates the first payment id decides; the ledger now stands where the rule says.
        first = min(
            ("e0", "e1"), key=lambda e: payment_id(cid, f"v1:{e.upper()}", provider, e, "m-planned_discharge")
        )
        assert {s["episode_id"]: s["active_amount_ore"] for s in states} == {
            "e0": 100 if first == "e0" else 0,
            "e1": 100 if first == "e1" else 0,
        }
        net = await pool.fetchval(
            "SELECT sum(signed_amount_ore) FROM contracts.ledger WHERE contract_id = $1", cid
        )
        assert net == 100
    finally:
        await pool.close()
