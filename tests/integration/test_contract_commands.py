"""Contract commands from hostile or careless operators (issue 16): every command the gateway once took and the
contracts service then crash-looped on is refused with 422 where it enters; the same record put straight on
`contracts.commands.v1` is dead-lettered with its reasons while the next valid command is applied and payments
go on. Only decoding is bad input: a pydantic error raised by our own code stops the consumer loudly."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
import pytest_asyncio
from pydantic import ValidationError

from utfall_contracts.app import create_app as create_contracts
from utfall_contracts.settings import ContractsSettings
from utfall_events.payments import PaymentV1
from utfall_events.topics import CONTRACT_COMMANDS, CONTRACTS_DEADLETTER
from utfall_gateway.app import create_app as create_gateway
from utfall_gateway.settings import GatewaySettings
from utfall_platform.clock import SystemClock
from utfall_platform.consumer import ConsumerHalted, DeadLetterPolicy, TransactionalBatchConsumer
from utfall_platform.db import create_pool

from ..helpers import (
    FakeRecord,
    create_key,
    migrate_service,
    produce,
    read_topic,
    register_provider,
    running,
    uid,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session", autouse=True)
async def registered_provider(world) -> None:  # type: ignore[no-untyped-def]
    """The provider the commands name is registered, as an operator would have done before."""
    await register_provider(world.kafka, "hvb-eken")


def valid_command(provider: str = "hvb-eken") -> dict[str, Any]:
    return {
        "contract_id": uid("cmd-"),
        "name": "Kommandotest",
        "commissioner_municipality": "0180",
        "funder": "fund",
        "provider_ids": [provider],
        "cohort": {"care_types": ["hvb"], "enrolment_from": "2024-01-01", "enrolment_to": "2026-12-31"},
        "milestones": [{"milestone_id": "m1", "measure_id": "planned_discharge", "price_ore": 100_000}],
        "per_participant_cap_ore": 100_000,
        "total_cap_ore": 1_000_000,
    }


def _set(command: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(command)
    *parents, last = path.split(".")
    target: Any = changed
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[int(last) if last.isdigit() else last] = value
    return changed


# Each was accepted (202) before issue 16; the first made the contracts service crash-loop.
HOSTILE = {
    "price beyond 64 bits": ("milestones.0.price_ore", 50_000_000_000_000_000_000),
    "cap beyond any budget": ("total_cap_ore", 10**14),
    "unknown municipality": ("commissioner_municipality", "0000"),
    "unknown cohort municipality": ("cohort.municipalities", ["9999"]),
    "enrolment year 0070": ("cohort.enrolment_from", "0070-01-01"),
    "enrolment year 7519": ("cohort.enrolment_to", "7519-01-01"),
    "control characters in the name": ("name", "Avtal\u0000\u001b[31m"),
    "empty provider id": ("provider_ids", [""]),
    "personnummer as provider id": ("provider_ids", ["200804122380"]),
    "participant cap above the total cap": ("per_participant_cap_ore", 2_000_000),
    "unknown measure": ("milestones.0.measure_id", "happiness"),
    "negative price": ("milestones.0.price_ore", -1),
}


async def test_invalid_commands_are_refused_at_the_gateway_with_problem_details(world) -> None:  # type: ignore[no-untyped-def]
    operator = await create_key(world.kafka, "operator")
    auth = {"authorization": f"Bearer {operator}"}
    async with running(create_gateway(world.settings(GatewaySettings))) as gateway:

        async def keys_loaded() -> bool:
            return (await gateway.get("/v1/admin/keys", headers=auth)).status_code == 200

        await wait_until(keys_loaded, what="the operator key to reach the gateway")
        for what, (path, value) in HOSTILE.items():
            response = await gateway.post(
                "/v1/admin/contracts", json=_set(valid_command(), path, value), headers=auth
            )
            assert response.status_code == 422, (what, response.text)
            assert response.headers["content-type"].startswith("application/problem+json"), what
            problem = response.json()
            assert problem["errors"], what
            assert "200804122380" not in response.text
        accepted = await gateway.post("/v1/admin/contracts", json=valid_command(), headers=auth)
        assert accepted.status_code == 202, accepted.text


async def test_invalid_commands_on_the_topic_are_dead_lettered_and_valid_ones_still_apply(
    world, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    marker = uid("inv-")
    hostile = [
        (marker.encode(), orjson.dumps(_set(valid_command(), path, value)), [])
        for path, value in HOSTILE.values()
        if not isinstance(value, int) or value < 2**63  # orjson cannot write the 64-bit overflow itself
    ]
    overflow = orjson.dumps(valid_command()).replace(b"100000,", b"50000000000000000000,", 1)
    hostile.append((marker.encode(), overflow, []))
    hostile.append((marker.encode(), b"{not json", []))
    good = valid_command()
    settings = world.settings(ContractsSettings, contracts_dir=tmp_path)
    async with running(create_contracts(settings)) as contracts:
        await produce(world.kafka, CONTRACT_COMMANDS, hostile)
        await produce(
            world.kafka, CONTRACT_COMMANDS, [(good["contract_id"].encode(), orjson.dumps(good), [])]
        )
        letters = await read_topic(
            world.kafka,
            CONTRACTS_DEADLETTER,
            predicate=lambda r: r.key == marker.encode(),
            expect=len(hostile),
            timeout=60,
        )
        conn = await asyncpg.connect(world.database_url)
        try:

            async def stored() -> bool:
                return bool(
                    await conn.fetchval(
                        "SELECT count(*) FROM contracts.contract_versions WHERE contract_id = $1",
                        good["contract_id"],
                    )
                )

            await wait_until(stored, timeout=60, what="the valid command after the invalid ones")
        finally:
            await conn.close()
        assert (await contracts.get("/ready")).status_code == 200
    bodies = [orjson.loads(r.value) for r in letters]
    assert len(bodies) == len(hostile)
    assert {b["reason"] for b in bodies} == {"InvalidCommand"}
    assert all(
        b["topic"] == CONTRACT_COMMANDS and "not a valid ContractDefinitionV1" in b["detail"] for b in bodies
    )
    assert any("price_ore" in b["detail"] for b in bodies)
    assert not any("200804122380" in b["detail"] for b in bodies)


async def test_a_validation_error_raised_by_our_own_code_halts_the_consumer(world) -> None:  # type: ignore[no-untyped-def]
    """A handler that builds an invalid PaymentV1 is a bug: the consumer stops, nothing is dead-lettered."""
    pool = await create_pool(world.database_url)
    try:
        await migrate_service(pool, "contracts")

        async def buggy(conn: asyncpg.Connection, records: Any) -> None:
            PaymentV1.model_validate({"payment_id": "not even close"})

        consumer = TransactionalBatchConsumer(
            service="contracts",
            name=uid("buggy-"),
            pool=pool,
            schema="contracts",
            handler=buggy,
            dead_letter=DeadLetterPolicy(
                CONTRACTS_DEADLETTER, poison=create_contracts_poison(), exit_on_bug=False
            ),
            now=SystemClock().now,
        )
        record = FakeRecord(topic=uid("t-"), partition=0, offset=0, key=b"k", value=b"{}", headers=[])
        with pytest.raises(ConsumerHalted) as halted:
            await consumer.process([record])
        assert isinstance(halted.value.__cause__, ValidationError)
        assert consumer.dead_lettered_total == 0
        with pytest.raises(ConsumerHalted):
            await consumer.process([record])  # and it refuses to skip past the bug
    finally:
        await pool.close()


def create_contracts_poison() -> tuple[type[BaseException], ...]:
    """The contracts service's own poison classes, read from its wiring."""
    from utfall_contracts import app

    return app.POISON


async def test_the_admin_cli_confirms_that_the_contract_was_stored(
    world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    import yaml
    from utfall_admin.cli import main as admin

    command = valid_command()
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(command, allow_unicode=True))
    monkeypatch.setenv("UTFALL_DATABASE_URL", world.database_url)
    for name, value in world.kafka.env().items():  # the operator's own Kafka access
        monkeypatch.setenv(name, value)
    settings = world.settings(ContractsSettings, contracts_dir=tmp_path / "none")
    async with running(create_contracts(settings)):
        await asyncio.get_running_loop().run_in_executor(
            None, admin, ["contracts", "load", str(path), "--wait", "60"]
        )
    out = capsys.readouterr().out
    assert f"sent contract {command['contract_id']}" in out
    assert f"stored contract {command['contract_id']} as version 1" in out
