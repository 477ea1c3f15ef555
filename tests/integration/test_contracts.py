"""Contracts on real Kafka and Postgres, as a real process: the same outcomes replayed twice and across a
restart change nothing; SIGKILL in the middle of 10,000 outcome facts loses and doubles no payment."""

from __future__ import annotations

import asyncio
import base64
import random
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import orjson
import pytest

from utfall_contracts.domain.ledger import payment_id
from utfall_events.cloudevents import binary_headers
from utfall_events.contracts import ContractDefinitionV1
from utfall_events.outcomes import OUTCOME_FACT_TYPE, EpisodeDimensions, EventRef, OutcomeFactV1
from utfall_events.topics import CARE_EVENTS, CONTRACT_COMMANDS, OUTCOMES, PAYMENTS
from utfall_platform.local.stack import LocalStack

from ..builders import contract_definition
from ..helpers import produce, read_topic, uid, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")
MEASURES = ("planned_discharge", "no_replacement_12m", "education_or_work_12m", "living_at_home_12m")
PRICES = {
    "planned_discharge": 1000,
    "no_replacement_12m": 2000,
    "education_or_work_12m": 3000,
    "living_at_home_12m": 4000,
}


def definition(contract_id: str, provider: str) -> ContractDefinitionV1:
    prices = {m: PRICES[m] for m in MEASURES}
    return contract_definition(
        contract_id,
        [provider],
        prices,
        per_participant_cap_ore=10**9,
        total_cap_ore=10**12,
        name="integration",
    )


def placement_record(
    provider: str, episode: str, subject: str
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    data = {
        "subject_ref": subject,
        "provider_id": provider,
        "episode_id": episode,
        "birth_year": 2008,
        "sex": "male",
        "age_at_start": 15,
        "unit_id": "u",
        "municipality_code": "0180",
        "care_type": "hvb",
        "legal_basis": "SoL",
        "target_group": "behaviour",
        "start_date": "2024-01-10",
    }
    headers = binary_headers(
        event_id=f"start-{episode}",
        source=f"provider/{provider}",
        type_="se.utfall.placement.started.v1",
        time=datetime(2024, 1, 10, tzinfo=UTC),
        subject=episode,
        extra={},
    )
    return subject.encode(), orjson.dumps(data), headers


def fact_record(
    provider: str, episode: str, subject: str, measure: str, status: str, revision: int, previous: str | None
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    fact = OutcomeFactV1(
        fact_id=f"{provider}/{episode}/{measure}",
        measure_id=measure,
        measure_version=1,
        subject_ref=subject,
        episode_id=episode,
        status=status,
        previous_status=previous,
        revision=revision,  # type: ignore[arg-type]
        evidence=[EventRef(source=f"provider/{provider}", id=f"end-{episode}")],
        determined_at=datetime.now(UTC),
        episode=EpisodeDimensions(
            provider_id=provider,
            unit_id="u",
            municipality_code="0180",
            care_type="hvb",
            legal_basis="SoL",
            target_group="behaviour",
            sex="male",
            age_at_start=15,
            start_date=date(2024, 1, 10),
            end_date=date(2024, 9, 1),
        ),
    )
    headers = binary_headers(
        event_id=f"{fact.fact_id}#{revision}",
        source="utfall/measures",
        type_=OUTCOME_FACT_TYPE,
        time=fact.determined_at,
        subject=episode,
        extra={},
    )
    return subject.encode(), fact.model_dump_json().encode(), headers


class Scenario:
    def __init__(self, episodes: int) -> None:
        self.provider = uid("cp-")
        self.contract_id = uid("contract-")
        rng = random.Random(99)
        self.episodes = [
            (f"ep{i:05d}", "v1:" + base64.b32encode(f"{self.provider}/{i}".encode()).decode().rstrip("="))
            for i in range(episodes)
        ]
        # wave 1: every fact, achieved or not; wave 2: a tenth of the achieved ones turn not_achieved
        self.wave1 = {
            (e, m): rng.choice(["achieved", "achieved", "not_achieved", "pending"])
            for e, _ in self.episodes
            for m in MEASURES
        }
        self.wave2 = {
            k: "not_achieved" for k, v in self.wave1.items() if v == "achieved" and rng.random() < 0.1
        }

    def placements(self) -> list[Any]:
        return [placement_record(self.provider, e, s) for e, s in self.episodes]

    def facts(self, wave: int) -> list[Any]:
        subjects = dict(self.episodes)
        if wave == 1:
            return [
                fact_record(self.provider, e, subjects[e], m, st, 1, None)
                for (e, m), st in self.wave1.items()
            ]
        return [
            fact_record(self.provider, e, subjects[e], m, st, 2, "achieved")
            for (e, m), st in self.wave2.items()
        ]

    def expected_ledger(self, waves: int) -> Counter[tuple[str, str, int]]:
        subjects = dict(self.episodes)
        out: Counter[tuple[str, str, int]] = Counter()
        for (e, m), st in self.wave1.items():
            if st == "achieved":
                pid = payment_id(self.contract_id, subjects[e], self.provider, e, m.replace("_", "-"))
                out[(pid, "payment.triggered", PRICES[m])] += 1
                if waves == 2 and (e, m) in self.wave2:
                    out[(pid, "payment.reversed", PRICES[m])] += 1
        return out


async def ledger(world: Any, contract_id: str) -> Counter[tuple[str, str, int]]:
    conn = await asyncpg.connect(world.database_url)
    try:
        rows = await conn.fetch(
            "SELECT payment_id, kind, amount_ore FROM contracts.ledger WHERE contract_id = $1", contract_id
        )
    finally:
        await conn.close()
    return Counter((r["payment_id"], r["kind"], r["amount_ore"]) for r in rows)


# A contracts process of a new world reads the shared topics from their beginning: every earlier test's care
# events come first. On a slow machine late in a full run that took over 240 s; the waits allow 540.
BACKLOG_SECONDS = 540


async def settled(
    world: Any, contract_id: str, expected: Counter[Any], timeout: float = BACKLOG_SECONDS
) -> Counter[Any]:
    async def check() -> Counter[Any] | None:
        current = await ledger(world, contract_id)
        return current if sum(current.values()) >= sum(expected.values()) else None

    await wait_until(check, timeout=timeout, interval=0.5, what="the ledger to settle")
    await asyncio.sleep(2.0)  # anything extra would show up now
    return await ledger(world, contract_id)


async def payments_on_topic(world: Any, contract_id: str, n: int) -> list[Any]:
    return await read_topic(
        world.kafka,
        PAYMENTS,
        predicate=lambda r: r.key == contract_id.encode(),
        expect=n,
        timeout=120,
        settle=2.0,
    )


@pytest.fixture
async def contracts_process(world, tmp_path):  # type: ignore[no-untyped-def]
    stack = LocalStack(
        tmp_path,
        kafka=world.cluster,
        database_url=world.database_url,
        gateway_database_url=world.gateway_database_url,
        log_sink=(tmp_path / "contracts.log").open("w"),
        extra_env=world.env(),
    )
    stack.start_service("contracts")
    await asyncio.get_running_loop().run_in_executor(None, stack.wait_ready, ("contracts",))
    yield stack
    await asyncio.get_running_loop().run_in_executor(None, stack.stop_service, "contracts")


@pytest.mark.timeout(1200)
async def test_replays_and_restart_change_nothing(world, contracts_process) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario(200)
    await produce(
        world.kafka,
        CONTRACT_COMMANDS,
        [
            (
                scenario.contract_id.encode(),
                definition(scenario.contract_id, scenario.provider).model_dump_json().encode(),
                [],
            )
        ],
    )
    await produce(world.kafka, CARE_EVENTS, scenario.placements())
    await produce(world.kafka, OUTCOMES, scenario.facts(1))
    expected = scenario.expected_ledger(1)
    assert await settled(world, scenario.contract_id, expected) == expected
    await produce(world.kafka, OUTCOMES, scenario.facts(1))  # the same outcomes again
    await asyncio.get_running_loop().run_in_executor(None, contracts_process.restart, "contracts")
    await produce(world.kafka, OUTCOMES, scenario.facts(1))  # and again after a restart
    await asyncio.sleep(3)
    assert await ledger(world, scenario.contract_id) == expected
    published = await payments_on_topic(world, scenario.contract_id, sum(expected.values()))
    ids = [orjson.loads(r.value)["entry_id"] for r in published]
    assert len(ids) == len(set(ids)) == sum(expected.values())


@pytest.mark.timeout(1800)
async def test_sigkill_mid_stream_loses_and_doubles_nothing(
    world, contracts_process, record_property
) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario(2600)  # 10,400 outcome facts in wave 1
    await produce(
        world.kafka,
        CONTRACT_COMMANDS,
        [
            (
                scenario.contract_id.encode(),
                definition(scenario.contract_id, scenario.provider).model_dump_json().encode(),
                [],
            )
        ],
    )
    await produce(world.kafka, CARE_EVENTS, scenario.placements())
    facts = scenario.facts(1)
    assert len(facts) >= 10_000
    loop = asyncio.get_running_loop()
    kills = 0

    async def kill_when(fraction: float, expected_total: int, baseline: int = 0) -> None:
        nonlocal kills

        async def progressed() -> bool:
            done = sum((await ledger(world, scenario.contract_id)).values()) - baseline
            return done >= fraction * expected_total

        await wait_until(progressed, timeout=BACKLOG_SECONDS, interval=0.05, what="progress before the kill")
        contracts_process.kill("contracts")
        kills += 1
        await asyncio.sleep(0.5)
        contracts_process.start_service("contracts")
        await loop.run_in_executor(None, contracts_process.wait_ready, ("contracts",))

    wave1 = scenario.expected_ledger(1)
    producing = asyncio.create_task(produce(world.kafka, OUTCOMES, facts))
    await kill_when(0.3, sum(wave1.values()))
    await producing
    await kill_when(0.7, sum(wave1.values()))
    assert await settled(world, scenario.contract_id, wave1) == wave1

    wave2 = scenario.expected_ledger(2)
    await produce(world.kafka, OUTCOMES, scenario.facts(2))
    await kill_when(0.5, sum(wave2.values()) - sum(wave1.values()), baseline=sum(wave1.values()))
    final = await settled(world, scenario.contract_id, wave2)
    assert final == wave2
    assert all(count == 1 for count in final.values())  # no payment id doubled, none missing

    published = await payments_on_topic(world, scenario.contract_id, sum(wave2.values()))
    entry_ids = Counter(orjson.loads(r.value)["entry_id"] for r in published)
    duplicates = sum(c - 1 for c in entry_ids.values())
    record_property("sigkills", kills)
    record_property("outcome_facts", len(facts) + len(scenario.wave2))
    record_property("ledger_entries", sum(final.values()))
    record_property("duplicate_deliveries_on_payments_topic", duplicates)
    print(
        f"\n{kills} SIGKILLs over {len(facts) + len(scenario.wave2)} outcome facts: {sum(final.values())} ledger "
        f"entries, 0 missing, 0 doubled; payments.v1 duplicate deliveries: {duplicates}"
    )
    assert set(entry_ids) == {
        pid if kind == "payment.triggered" else _reversal(pid) for pid, kind, _ in final
    }
    assert duplicates == 0


def _reversal(pid: str) -> str:
    from utfall_contracts.domain.ledger import reversal_entry_id

    return reversal_entry_id(pid)
