"""Scale-out on the real stack: two replicas of ingest, measures and contracts and two gateways. While a seeded
stream flows (over HTTP, spread over both ingest replicas as a load balancer would, and over a provider's raw
topic), one replica of each service is SIGKILLed and restarted and others are paused past their session
timeout, so every consumer group rebalances; afterwards the facts equal the reference computation
(tests/reference.py) and the ledger its payments: 0 lost, 0 doubled, 0 duplicate deliveries. Both gateways
answer the same. The long variant runs with `make soak`."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
import pytest_asyncio

from utfall_platform.local.stack import SERVICES, LocalStack
from utfall_synthetic.cohort import PROVIDERS

from ..faults import FaultReport, contract_yaml, run_scenario
from ..helpers import create_key, uid
from ..infra import World

pytestmark = pytest.mark.asyncio(loop_scope="session")

# ingest, measures-2, contracts-2 and gateway are never killed: each must have done its share at the end
REPLICA_FAULTS = [
    "kill:ingest-2",
    "pause:measures-2",
    "kill:contracts",
    "kill:measures",
    "kill:gateway-2",
    "pause:contracts-2",
]
MAIN_TOPIC = {"ingest": "care.events.raw.v1", "measures": "care.events.v1", "contracts": "outcomes."}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def replica_stack(tmp_path_factory, artifacts):  # type: ignore[no-untyped-def]
    """Its own Kafka and PostgreSQL: on the shared ones this world's measures would also fold every earlier
    test's care events, and synthetic cohorts of different seeds share some personnummer (a re-placement in
    another cohort is a re-placement here), so its facts could not equal the reference of its own cohort."""
    base = tmp_path_factory.mktemp("replicas")
    sink = (artifacts / f"replicas-{base.name}.log").open("w")
    contracts_dir = base / "contracts"
    contracts_dir.mkdir()
    stack = LocalStack(base / "stack", durable=False, log_sink=sink)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, stack.start_infrastructure)
    world = World(uid("replicas_"), stack.cluster, stack.database_url, stack.gateway_database_url)
    contract_id = uid("replicas-")
    (contracts_dir / "replicas.yaml").write_text(
        contract_yaml(contract_id, [f"{p.provider_id}-{world.name[-6:]}" for p in PROVIDERS])
    )
    stack.extra_env = {**world.env(), "UTFALL_CONTRACTS_DIR": str(contracts_dir)}
    for kind in SERVICES:
        stack.add_replica(kind)
    try:
        for name in stack.services:
            stack.start_service(name)
        await loop.run_in_executor(None, stack.wait_ready, tuple(stack.services), 180.0)
        stack.world = world  # type: ignore[attr-defined]
        stack.contract_id = contract_id  # type: ignore[attr-defined]
        yield stack
    finally:
        await loop.run_in_executor(None, stack.stop)
        sink.close()


async def consumed(url: str, topic_prefix: str) -> float:
    """Records a replica consumed from topics starting with the prefix, by its /metrics."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{url}/metrics")).text
    total = 0.0
    for line in text.splitlines():
        match = re.match(r'utfall_messages_consumed_total\{.*topic="([^"]+)".*\} ([0-9.e+]+)', line)
        if match and match.group(1).startswith(topic_prefix):
            total += float(match.group(2))
    return total


def assert_nothing_lost_or_doubled(report: FaultReport) -> None:
    assert report.lost_events == 0
    assert report.fact_mismatches == 0
    assert report.missing_payments == 0
    assert report.doubled_payment_ids == 0
    assert report.duplicate_deliveries == 0
    assert report.ledger_entries_not_on_topic == 0 and report.topic_entries_not_in_ledger == 0
    assert report.ledger_entries > 0


async def both_gateways_agree(stack: Any) -> dict[str, Any]:
    operator = await create_key(stack.world.kafka, "operator")
    answers = []
    for name in ("gateway", "gateway-2"):
        async with httpx.AsyncClient(
            base_url=stack.services[name].url, timeout=30, headers={"authorization": f"Bearer {operator}"}
        ) as http:
            contract = (await http.get(f"/v1/contracts/{stack.contract_id}")).json()
            answers.append({k: contract[k] for k in ("paid_net_ore", "participants", "payments_triggered")})
    assert answers[0] == answers[1], answers
    return answers[0]


async def test_two_replicas_of_every_service_survive_kills_and_rebalances(
    replica_stack, artifacts, record_property
) -> None:  # type: ignore[no-untyped-def]
    report = await run_scenario(
        replica_stack,
        None,
        subjects=800,
        seed=53,
        rate=200,
        faults=REPLICA_FAULTS,
        artifacts=artifacts,
        settle_seconds=300,
    )
    print("\n" + json.dumps(report.__dict__, indent=1))
    for key, value in report.__dict__.items():
        record_property(key, value)
    assert report.faults == REPLICA_FAULTS
    assert_nothing_lost_or_doubled(report)
    agreed = await both_gateways_agree(replica_stack)
    # the replicas that were never killed did their share (a group of one would leave them idle)
    shares = {
        name: await consumed(replica_stack.services[name].url, MAIN_TOPIC[name.split("-")[0]])
        for name in ("ingest", "measures-2", "contracts-2")
    }
    print(f"records consumed by the replicas never killed: {shares}; gateways agree on {agreed}")
    assert all(n > 0 for n in shares.values()), shares


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_soak_two_replicas_with_kills_and_rebalances(replica_stack, artifacts, record_property) -> None:  # type: ignore[no-untyped-def]
    faults = [
        *REPLICA_FAULTS,
        "kill:ingest",
        "kill:measures-2",
        "kill:contracts-2",
        "kill:gateway",
        "pause:measures",
        "kill:contracts",
    ]
    report = await run_scenario(
        replica_stack, None, subjects=10_000, seed=2027, rate=500, faults=faults, artifacts=artifacts
    )
    print("\n" + json.dumps(report.__dict__, indent=1))
    for key, value in report.__dict__.items():
        record_property(key, value)
    assert report.events >= 40_000
    assert_nothing_lost_or_doubled(report)
    await both_gateways_agree(replica_stack)
