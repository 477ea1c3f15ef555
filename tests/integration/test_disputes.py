"""Disputes and closed periods on real Kafka and Postgres, with the contracts service as a real process that is
SIGKILLed while it decides them: every dispute and every resolution is one ledger entry and one `payments.v1`
message, an upheld dispute one reversal, whatever the kills; a command sent twice is applied once."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from utfall_events.ledger_commands import ClosePeriodV1, DisputePaymentV1, LedgerCommandV1, ResolveDisputeV1
from utfall_events.payments import PaymentV1
from utfall_events.periods import period_of
from utfall_events.topics import CARE_EVENTS, CONTRACT_COMMANDS, OUTCOMES, PAYMENTS

from ..helpers import produce, read_topic, wait_until
from .test_contracts import PRICES, Scenario, contracts_process, definition, fact_record, settled

__all__ = ["contracts_process"]  # the fixture, shared with test_contracts
pytestmark = pytest.mark.asyncio(loop_scope="session")


def command_record(command: Any) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return command.contract_id.encode(), LedgerCommandV1(command).model_dump_json().encode(), []


def dispute(contract_id: str, payment: str, command_id: str | None = None) -> DisputePaymentV1:
    return DisputePaymentV1(
        command_id=command_id or str(uuid.uuid4()),
        contract_id=contract_id,
        key_id="assessor-key",
        requested_at=datetime.now(UTC),
        payment_id=payment,
        role="assessor",
        reason="the discharge plan in the evidence is not signed by the social services",
    )


def resolution(contract_id: str, payment: str, upheld: bool) -> ResolveDisputeV1:
    return ResolveDisputeV1(
        command_id=str(uuid.uuid4()),
        contract_id=contract_id,
        key_id="commissioner-key",
        requested_at=datetime.now(UTC),
        payment_id=payment,
        resolution="upheld" if upheld else "dismissed",
        reason="checked against the case file" if upheld else "the plan was signed; a scan was missing",
    )


async def rows(world: Any, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(world.database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def count_kind(world: Any, contract_id: str, kind: str) -> int:
    found = await rows(
        world,
        "SELECT count(*) AS n FROM contracts.ledger WHERE contract_id = $1 AND kind = $2",
        contract_id,
        kind,
    )
    return int(found[0]["n"])


async def paid_for(world: Any, scenario: Scenario) -> Any:
    """The scenario's contract, placements and first outcomes sent; returns the ledger once it has settled."""
    contract = scenario.contract_id
    await produce(
        world.kafka,
        CONTRACT_COMMANDS,
        [(contract.encode(), definition(contract, scenario.provider).model_dump_json().encode(), [])],
    )
    await produce(world.kafka, CARE_EVENTS, scenario.placements())
    await produce(world.kafka, OUTCOMES, scenario.facts(1))
    paid = scenario.expected_ledger(1)
    assert await settled(world, contract, paid) == paid
    return paid


async def test_disputes_and_resolutions_survive_sigkill_exactly_once(
    world, contracts_process, record_property
) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario(400)
    contract = scenario.contract_id
    paid = await paid_for(world, scenario)
    triggered = sorted(pid for pid, kind, _ in paid if kind == "payment.triggered")
    rng = random.Random(7)
    disputed = rng.sample(triggered, 200)
    upheld = set(disputed[:100])
    loop = asyncio.get_running_loop()
    kills = 0

    async def kill_when(kind: str, at_least: int) -> None:
        nonlocal kills

        async def progressed() -> bool:
            return await count_kind(world, contract, kind) >= at_least

        await wait_until(progressed, timeout=240, interval=0.02, what=f"{at_least} {kind} before the kill")
        contracts_process.kill("contracts")
        kills += 1
        await asyncio.sleep(0.3)
        contracts_process.start_service("contracts")
        await loop.run_in_executor(None, contracts_process.wait_ready, ("contracts",))

    # Disputes, one at a time as people send them (one record per batch), with a retried command (same id)
    # and a second dispute of a payment already disputed (refused, not applied).
    commands = [dispute(contract, p) for p in disputed]
    retried = commands[10]
    sending = asyncio.create_task(
        produce(
            world.kafka,
            CONTRACT_COMMANDS,
            [command_record(c) for c in commands]
            + [command_record(retried), command_record(dispute(contract, disputed[11]))],
        )
    )
    await kill_when("payment.disputed", 60)
    await sending
    await kill_when("payment.disputed", 150)

    async def all_decided(n: int) -> bool:
        found = await rows(
            world, "SELECT count(*) AS n FROM contracts.command_results WHERE contract_id = $1", contract
        )
        return int(found[0]["n"]) >= n

    await wait_until(lambda: all_decided(201), timeout=240, interval=0.5, what="every dispute decided")

    resolutions = [resolution(contract, p, p in upheld) for p in disputed]
    sending = asyncio.create_task(
        produce(world.kafka, CONTRACT_COMMANDS, [command_record(c) for c in resolutions])
    )
    await kill_when("payment.dispute_resolved", 50)
    await sending
    await kill_when("payment.dispute_resolved", 140)
    await wait_until(lambda: all_decided(401), timeout=240, interval=0.5, what="every resolution decided")

    # An upheld milestone is not paid again when its outcome is determined afresh.
    subjects = dict(scenario.episodes)
    ledger_rows = await rows(
        world,
        "SELECT entry_id, payment_id, kind, amount_ore, signed_amount_ore, episode_id, measure_id, reason "
        "FROM contracts.ledger WHERE contract_id = $1",
        contract,
    )
    by_payment = {r["payment_id"]: r for r in ledger_rows if r["kind"] == "payment.triggered"}
    again = sorted(upheld)[:20]
    await produce(
        world.kafka,
        OUTCOMES,
        [
            fact_record(
                scenario.provider,
                by_payment[p]["episode_id"],
                subjects[by_payment[p]["episode_id"]],
                by_payment[p]["measure_id"],
                "achieved",
                3,
                "achieved",
            )
            for p in again
        ],
    )
    await asyncio.sleep(3)

    ledger_rows = await rows(
        world,
        "SELECT entry_id, payment_id, kind, amount_ore, signed_amount_ore, reason FROM contracts.ledger "
        "WHERE contract_id = $1",
        contract,
    )
    kinds = Counter((r["payment_id"], r["kind"]) for r in ledger_rows)
    assert all(n == 1 for n in kinds.values()), "a (payment id, kind) doubled"
    for p in disputed:
        assert kinds[(p, "payment.disputed")] == 1 and kinds[(p, "payment.dispute_resolved")] == 1
        assert kinds[(p, "payment.reversed")] == (1 if p in upheld else 0)
    assert sum(1 for (_, kind) in kinds if kind == "payment.triggered") == len(triggered)  # none paid again
    reversals = [r for r in ledger_rows if r["kind"] == "payment.reversed"]
    assert all("upheld" in r["reason"] for r in reversals)
    expected_net = sum(a for (p, kind, a) in paid if kind == "payment.triggered" and p not in upheld)
    assert sum(r["signed_amount_ore"] for r in ledger_rows) == expected_net
    totals = await rows(
        world, "SELECT paid_net_ore FROM contracts.contract_totals WHERE contract_id = $1", contract
    )
    assert totals[0]["paid_net_ore"] == expected_net
    results = await rows(
        world, "SELECT outcome, detail FROM contracts.command_results WHERE contract_id = $1", contract
    )
    assert Counter(r["outcome"] for r in results) == {"applied": 400, "refused": 1}
    assert any("already disputed" in r["detail"] for r in results if r["outcome"] == "refused")
    disputes = await rows(world, "SELECT status FROM contracts.disputes WHERE contract_id = $1", contract)
    assert Counter(r["status"] for r in disputes) == {"upheld": 100, "dismissed": 100}

    published = await read_topic(
        world.kafka,
        PAYMENTS,
        predicate=lambda r: r.key == contract.encode(),
        expect=len(ledger_rows),
        timeout=120,
    )
    messages = [PaymentV1.model_validate(orjson.loads(r.value)) for r in published]
    entry_ids = Counter(m.entry_id for m in messages)
    duplicates = sum(c - 1 for c in entry_ids.values())
    assert duplicates == 0
    assert set(entry_ids) == {r["entry_id"] for r in ledger_rows}
    assert sum(m.signed_amount_ore for m in messages) == expected_net
    resolved = [m for m in messages if m.kind == "payment.dispute_resolved"]
    assert all(
        m.dispute and m.dispute.resolution == ("upheld" if m.payment_id in upheld else "dismissed")
        for m in resolved
    )
    record_property("sigkills", kills)
    record_property("disputes", len(disputed))
    print(
        f"\n{kills} SIGKILLs over {len(disputed)} disputes and {len(resolutions)} resolutions: "
        f"{len(ledger_rows)} ledger entries, 0 doubled, 0 missing, payments.v1 duplicates {duplicates}; "
        f"net {expected_net} öre"
    )
    assert kills == 4
    assert PRICES  # the prices the scenario paid


async def test_a_commissioner_closes_only_ended_periods_once(world, contracts_process) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario(20)
    contract = scenario.contract_id
    assert await paid_for(world, scenario)
    now = datetime.now(UTC)
    current = period_of(now, "quarter")
    previous = period_of(current.start - timedelta(days=1), "quarter")
    closes = [
        ClosePeriodV1(
            command_id=str(uuid.uuid4()),
            contract_id=contract,
            key_id="commissioner",
            requested_at=now,
            period=p,
        )
        for p in (previous.label, previous.label, current.label, f"{now.year}-01")
    ]
    await produce(world.kafka, CONTRACT_COMMANDS, [command_record(c) for c in closes])

    async def decided() -> list[Any] | None:
        found = await rows(
            world,
            "SELECT command_id, outcome, detail FROM contracts.command_results WHERE contract_id = $1",
            contract,
        )
        return found if len(found) == 4 else None

    results = {
        r["command_id"]: r for r in await wait_until(decided, timeout=60, interval=0.3, what="decisions")
    }
    assert results[closes[0].command_id]["outcome"] == "applied"
    assert "already closed" in results[closes[1].command_id]["detail"]
    assert "has not ended" in results[closes[2].command_id]["detail"]
    assert "not a period of this contract" in results[closes[3].command_id]["detail"]
    closed = await rows(world, "SELECT * FROM contracts.closed_periods WHERE contract_id = $1", contract)
    assert [r["period"] for r in closed] == [previous.label]
    assert closed[0]["closing_balance_ore"] == 0  # every payment of this test was determined this quarter
