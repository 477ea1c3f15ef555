"""Faults of a Kafka cluster and a PostgreSQL primary with its standby (`tests/infra.start_cluster_infra`): each
takes the infrastructure, the scenario's seeded random source and its report, strikes, heals where the fault heals by
itself in production (a restarted broker, a resumed process), and says which node it struck."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from utfall_events.topics import CARE_EVENTS, PAYMENTS
from utfall_platform.kafka_access import KafkaAccess

BUSY_TOPICS = (CARE_EVENTS, PAYMENTS)
BROKER_SESSION_SECONDS = 9  # broker.session.timeout.ms: a silent broker is fenced after it


async def partition_states(admin: KafkaAccess) -> list[dict[str, Any]]:
    """Every partition of every topic with its leader, replicas and in-sync replicas."""
    client = AIOKafkaAdminClient(**admin.client_options())
    await client.start()
    try:
        topics = await client.list_topics()
        described = await client.describe_topics(topics)
    finally:
        await client.close()
    return [{"topic": t["topic"], **p} for t in described for p in t["partitions"]]


async def busiest_leader(admin: KafkaAccess) -> int:
    """The broker leading the most partitions of the topics the stream keeps busy."""
    leaders = Counter(p["leader"] for p in await partition_states(admin) if p["topic"] in BUSY_TOPICS)
    return leaders.most_common(1)[0][0]


async def wait_fully_replicated(admin: KafkaAccess, timeout: float = 120.0) -> None:
    """Until no partition is under-replicated: what an operator waits for before the next broker's restart."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            under = [p for p in await partition_states(admin) if len(p["isr"]) < len(p["replicas"])]
        except Exception:
            under = [{"topic": "?"}]
        if not under:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(under)} partitions under-replicated after {timeout}s, e.g. {under[:2]}"
            )
        await asyncio.sleep(1.0)


async def _restart_node(infra: Any, node: Any, down_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(down_seconds)
    await loop.run_in_executor(None, infra.local_kafka.start_node, node)


async def kill_partition_leader(infra: Any, rng: random.Random, report: Any) -> str:
    """SIGKILL the broker leading the most busy partitions, mid-stream; it comes back a few seconds later."""
    node = infra.local_kafka.node(await busiest_leader(infra.kafka.admin))
    node.kill()
    await _restart_node(infra, node, rng.uniform(3, 8))
    return f"broker {node.node_id} killed and restarted"


async def kill_active_controller(infra: Any, rng: random.Random, report: Any) -> str:
    """SIGKILL the node leading the controller quorum; the other two elect a new leader."""
    kafka = infra.local_kafka
    node = kafka.active_controller()
    node.kill()
    await asyncio.sleep(2)
    successor = kafka.active_controller().node_id
    await _restart_node(infra, node, rng.uniform(1, 5))
    return f"controller {node.node_id} killed, {successor} took over"


async def pause_broker(infra: Any, rng: random.Random, report: Any) -> str:
    """SIGSTOP a broker (not the controller) past its session timeout: it is fenced, its partitions lead
    elsewhere, and when it resumes it must catch up rather than serve stale data."""
    kafka = infra.local_kafka
    controller = kafka.active_controller()
    node = rng.choice([n for n in kafka.nodes if n is not controller])
    node.pause()
    await asyncio.sleep(BROKER_SESSION_SECONDS + 6)
    node.resume()
    return f"broker {node.node_id} paused {BROKER_SESSION_SECONDS + 6}s"


async def rolling_restart(infra: Any, rng: random.Random, report: Any) -> str:
    """Every broker in turn, stopped in order and started, the next only once every partition is in sync."""
    loop = asyncio.get_running_loop()
    kafka = infra.local_kafka
    for node in kafka.nodes:
        await loop.run_in_executor(None, node.stop)
        await loop.run_in_executor(None, kafka.start_node, node)
        await wait_fully_replicated(infra.kafka.admin)
    return f"{len(kafka.nodes)} brokers restarted in turn"


async def fail_over_postgres(infra: Any, rng: random.Random, report: Any) -> str:
    """The primary's machine is lost; the standby is promoted. Clients find it through their host list."""
    pair = infra.local_postgres
    await asyncio.get_running_loop().run_in_executor(None, pair.failover)
    return f"primary lost, {pair.mode} standby promoted"


async def rejoin_postgres(infra: Any, rng: random.Random, report: Any) -> str:
    """The lost server returns as a fresh standby of the new primary (a synchronous one blocks no commit until
    it streams), so that a later failover has somewhere to go."""
    pair = infra.local_postgres
    await asyncio.get_running_loop().run_in_executor(None, pair.rejoin)
    return f"a new {pair.mode} standby streams"


async def fail_over_postgres_behind(infra: Any, rng: random.Random, report: Any) -> str:
    """As `fail_over_postgres`, but the standby has fallen behind first (its WAL receiver stopped for a while):
    commits the primary confirmed in that time are lost. Only an asynchronous standby can be behind."""
    pair = infra.local_postgres
    assert pair.mode == "async", "a synchronous standby is never behind a confirmed commit"
    receiver = pair.standby.wal_receiver_pid()
    assert receiver is not None, "the standby streams"
    os.kill(receiver, signal.SIGSTOP)
    try:
        await asyncio.sleep(rng.uniform(4, 8))
        written = int(pair.primary.query("SELECT pg_current_wal_lsn() - '0/0'"))
        pair.primary.kill()
    finally:
        os.kill(receiver, signal.SIGCONT)
    await asyncio.sleep(1)  # what the receiver still had in its socket is written; the rest is gone
    received = int(pair.standby.query("SELECT pg_last_wal_receive_lsn() - '0/0'"))
    await asyncio.get_running_loop().run_in_executor(None, pair.failover)
    report.lost_wal_bytes = max(0, written - received)
    return f"standby {report.lost_wal_bytes} bytes of WAL behind, promoted"


CLUSTER_FAULTS: dict[str, Callable[[Any, random.Random, Any], Awaitable[str]]] = {
    "kill:kafka-leader": kill_partition_leader,
    "kill:kafka-controller": kill_active_controller,
    "pause:kafka-broker": pause_broker,
    "roll:kafka": rolling_restart,
    "failover:postgres": fail_over_postgres,
    "rejoin:postgres": rejoin_postgres,
    "failover:postgres-behind": fail_over_postgres_behind,
}
