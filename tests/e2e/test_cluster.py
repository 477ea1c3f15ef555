"""Utfall on a cluster: three Kafka brokers (KRaft, three voters; every topic three replicas, two in sync) and a
PostgreSQL primary with a synchronous standby, two replicas of every service. While a seeded stream flows, the
broker leading the busiest partitions is SIGKILLed and the primary's machine is lost (the standby promoted; the
services find it through their host list, without a restart): afterwards the facts equal the reference
computation and the ledger its payments, 0 lost, 0 doubled, 0 duplicate deliveries. The full set of cluster
faults, and a failover to an asynchronous standby that is behind, run with `make soak`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from utfall_events.topics import ALL_TOPICS
from utfall_platform.local.stack import SERVICES, LocalStack
from utfall_synthetic.cohort import PROVIDERS

from ..cluster_faults import partition_states
from ..faults import FaultReport, contract_yaml, run_scenario
from ..helpers import topic_configs, uid
from ..infra import Infra, World
from .test_replicas import assert_nothing_lost_or_doubled, both_gateways_agree

pytestmark = pytest.mark.asyncio(loop_scope="session")

CLUSTER_FAULTS = ["kill:kafka-leader", "failover:postgres"]


async def start_cluster_stack(base: Path, artifacts: Path, standby: str) -> LocalStack:
    sink = (artifacts / f"cluster-{standby}-{base.name}.log").open("w")
    contracts_dir = base / "contracts"
    contracts_dir.mkdir()
    stack = LocalStack(
        base / "stack", durable=False, log_sink=sink, kafka_brokers=3, postgres_standby=standby
    )
    stack.sink = sink  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, stack.start_infrastructure)
    world = World(uid("cluster_"), stack.cluster, stack.database_url, stack.gateway_database_url)
    contract_id = uid("cluster-")
    (contracts_dir / "cluster.yaml").write_text(
        contract_yaml(contract_id, [f"{p.provider_id}-{world.name[-6:]}" for p in PROVIDERS])
    )
    stack.extra_env = {**world.env(), "UTFALL_CONTRACTS_DIR": str(contracts_dir)}
    for kind in SERVICES:
        stack.add_replica(kind)
    for name in stack.services:
        stack.start_service(name)
    await loop.run_in_executor(None, stack.wait_ready, tuple(stack.services), 240.0)
    stack.world = world  # type: ignore[attr-defined]
    stack.contract_id = contract_id  # type: ignore[attr-defined]
    return stack


def cluster_infra(stack: LocalStack) -> Infra:
    """What the fault injection strikes: the stack's own brokers and database servers."""
    assert stack.postgres is not None and stack.kafka is not None
    return Infra(
        stack.cluster, stack.postgres.superuser_dsn, local_postgres=stack.postgres, local_kafka=stack.kafka
    )


async def stop_cluster_stack(stack: LocalStack) -> None:
    await asyncio.get_running_loop().run_in_executor(None, stack.stop)
    stack.sink.close()  # type: ignore[attr-defined]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sync_cluster(tmp_path_factory, artifacts) -> AsyncIterator[LocalStack]:  # type: ignore[no-untyped-def]
    stack = await start_cluster_stack(tmp_path_factory.mktemp("cluster-sync"), artifacts, "sync")
    try:
        yield stack
    finally:
        await stop_cluster_stack(stack)


def report_figures(report: FaultReport, record_property: Any) -> None:
    print("\n" + json.dumps(report.__dict__, indent=1))
    for key, value in report.__dict__.items():
        record_property(key, value)


async def test_every_topic_has_three_replicas_and_two_in_sync(sync_cluster) -> None:  # type: ignore[no-untyped-def]
    """The topics `utfall-admin kafka setup` creates on a cluster, as docs/architecture.md's table states."""
    admin = sync_cluster.cluster.admin
    states = {(p["topic"], p["partition"]): p for p in await partition_states(admin)}
    for spec in ALL_TOPICS:
        partitions = [p for (topic, _), p in states.items() if topic == spec.name]
        assert len(partitions) == spec.partitions, spec.name
        assert all(len(p["replicas"]) == 3 for p in partitions), spec.name
    for name, configs in (await topic_configs(admin, [spec.name for spec in ALL_TOPICS])).items():
        assert configs["min.insync.replicas"] == "2", name
    # the brokers' own topics (consumer offsets, transactions) are replicated as ours are
    internal = [
        p for (topic, _), p in states.items() if topic in ("__consumer_offsets", "__transaction_state")
    ]
    assert internal and all(len(p["replicas"]) == 3 for p in internal)


async def test_a_broker_kill_and_a_failover_to_a_synchronous_standby_lose_and_double_nothing(
    sync_cluster, artifacts, record_property
) -> None:  # type: ignore[no-untyped-def]
    report = await run_scenario(
        sync_cluster,
        cluster_infra(sync_cluster),
        subjects=600,
        seed=71,
        rate=120,
        faults=CLUSTER_FAULTS,
        artifacts=artifacts,
        settle_seconds=300,
    )
    report_figures(report, record_property)
    assert report.faults == CLUSTER_FAULTS
    assert_nothing_lost_or_doubled(report)
    assert report.topic_amounts_differing == 0
    assert sync_cluster.postgres.failovers == 1
    await both_gateways_agree(sync_cluster)


SOAK_SYNC_FAULTS = [
    "kill:kafka-leader",
    "kill:kafka-controller",
    "failover:postgres",
    "pause:kafka-broker",
    "rejoin:postgres",
    "roll:kafka",
    "kill:measures",
    "failover:postgres",
    "kill:contracts-2",
]


@pytest.mark.soak
@pytest.mark.timeout(2400)
async def test_soak_every_cluster_fault_with_a_synchronous_standby(
    sync_cluster, artifacts, record_property
) -> None:  # type: ignore[no-untyped-def]
    """Leader and controller kills, a broker paused past its session timeout, a rolling restart of all three, two
    failovers (the lost server rejoining as the new standby between them) and service kills."""
    report = await run_scenario(
        sync_cluster,
        cluster_infra(sync_cluster),
        subjects=6_000,
        seed=2028,
        rate=150,
        faults=SOAK_SYNC_FAULTS,
        artifacts=artifacts,
    )
    report_figures(report, record_property)
    assert report.faults == SOAK_SYNC_FAULTS
    assert report.events >= 20_000
    assert_nothing_lost_or_doubled(report)
    assert report.topic_amounts_differing == 0
    await both_gateways_agree(sync_cluster)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def async_cluster(tmp_path_factory, artifacts) -> AsyncIterator[LocalStack]:  # type: ignore[no-untyped-def]
    stack = await start_cluster_stack(tmp_path_factory.mktemp("cluster-async"), artifacts, "async")
    try:
        yield stack
    finally:
        await stop_cluster_stack(stack)


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_soak_failover_to_an_asynchronous_standby_that_is_behind(
    async_cluster, artifacts, record_property
) -> None:  # type: ignore[no-untyped-def]
    """The standby stops receiving WAL for a few seconds, then the primary is lost and the standby promoted:
    commits the primary had confirmed are gone. What the guarantee is then (README, docs/architecture.md)."""
    report = await run_scenario(
        async_cluster,
        cluster_infra(async_cluster),
        subjects=2_000,
        seed=2029,
        rate=200,
        faults=["kill:kafka-leader", "failover:postgres-behind"],
        artifacts=artifacts,
        settle_seconds=600,
        database_may_lose_commits=True,
    )
    report_figures(report, record_property)
    assert report.lost_wal_bytes > 0, "the standby was behind when it was promoted"
    # what is lost is only what ingest had acknowledged and not yet published: nothing on Kafka is lost
    assert report.events_lost_after_ingest == 0 and report.kafka_events_lost == 0
    assert report.events_lost_before_measures <= report.lost_events
    assert report.fact_mismatches == 0
    assert report.missing_payments == 0
    assert report.doubled_payment_ids == 0
    assert report.topic_amounts_differing == 0
    assert report.ledger_entries_not_on_topic == 0
