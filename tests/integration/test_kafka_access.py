"""Issue 16 item 1: the broker authenticates every client (SASL/SCRAM-SHA-512) and authorises it by ACLs.

These run against the session's real broker, as the principals the services and providers use: a client without
credentials or with a wrong password is refused; a provider writes its own raw topic and nothing else; each service
holds exactly the ACLs of `SERVICE_GRANTS` and is refused outside them; a retired provider cannot produce."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaConnectionError,
    TopicAuthorizationFailedError,
)

from utfall_events import topics
from utfall_platform.kafka_access import KafkaAccess
from utfall_platform.kafka_acl import SERVICE_GRANTS, KafkaProvisioner, acl_bindings, new_password

from ..helpers import provider_access, register_provider, uid

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parents[2]


def _binding_key(binding: object) -> tuple[str, ...]:
    return tuple(
        str(getattr(binding, field))
        for field in ("restype", "name", "resource_pattern_type", "principal", "host", "operation")
    )


# A principal with no WRITE at all cannot even get a producer id: the cluster refuses it before any topic does.
REFUSED = (TopicAuthorizationFailedError, ClusterAuthorizationFailedError)


async def write(access: KafkaAccess, topic: str) -> None:
    producer = AIOKafkaProducer(**access.client_options(), acks="all", enable_idempotence=True)
    try:
        await producer.start()
        await producer.send_and_wait(topic, b"{}", key=b"probe")
    finally:
        await producer.stop()


async def read(access: KafkaAccess, topic: str) -> None:
    consumer = AIOKafkaConsumer(topic, **access.client_options(), auto_offset_reset="earliest")
    try:
        await consumer.start()
        await consumer.getmany(timeout_ms=3000)
    finally:
        await consumer.stop()


async def test_the_broker_refuses_clients_without_valid_credentials(world) -> None:  # type: ignore[no-untyped-def]
    if not world.kafka.username:
        pytest.skip("this broker (testcontainers) runs without authentication")
    anonymous = KafkaAccess(world.kafka.bootstrap)
    wrong_password = world.kafka.as_user("ingest", "not-the-password")
    unknown_user = world.kafka.as_user("mallory", new_password())
    for access in (anonymous, wrong_password, unknown_user):
        producer = AIOKafkaProducer(**access.client_options(), request_timeout_ms=5000)
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(producer.start(), 30)
        await producer.stop()


async def test_a_provider_writes_its_own_raw_topic_and_nothing_else(world) -> None:  # type: ignore[no-untyped-def]
    if not world.kafka.username:
        pytest.skip("this broker (testcontainers) runs without authentication")
    mine, theirs = uid("own-"), uid("other-")
    for provider in (mine, theirs):
        await register_provider(world.kafka, provider)
    access = await provider_access(world.kafka, mine)
    assert access.username == f"provider-{mine}"
    await write(access, topics.raw_topic(mine).name)
    for topic in (
        topics.raw_topic(theirs).name,
        topics.CARE_EVENTS,
        topics.PAYMENTS,
        topics.PROVIDER_REGISTRY,
    ):
        with pytest.raises(REFUSED):
            await write(access, topic)
    with pytest.raises(REFUSED):
        await read(access, topics.raw_topic(mine).name)  # not even its own input back: only ingest reads it


async def test_each_service_holds_exactly_its_grants_and_is_refused_outside_them(world) -> None:  # type: ignore[no-untyped-def]
    if not world.kafka.username:
        pytest.skip("this broker (testcontainers) runs without authentication")
    provisioner = KafkaProvisioner(world.kafka)
    for service, grants in SERVICE_GRANTS.items():
        held = {_binding_key(b) for b in await provisioner.describe_acls(service)}
        assert held == {_binding_key(b) for b in acl_bindings(service, grants)}, service
    refused = {
        "ingest": [(write, topics.PAYMENTS), (read, topics.PAYMENTS), (write, topics.OUTCOMES)],
        "measures": [(write, topics.PAYMENTS), (write, topics.CARE_EVENTS), (read, topics.CONTRACT_COMMANDS)],
        "contracts": [(write, topics.OUTCOMES), (write, topics.CARE_EVENTS), (read, topics.AGGREGATES)],
        "gateway": [(write, topics.CARE_EVENTS), (write, topics.PAYMENTS), (read, topics.CARE_EVENTS)],
        "finance": [(write, topics.PAYMENTS), (read, topics.OUTCOMES)],
    }
    for service, attempts in refused.items():
        access = world.cluster.principal(service)
        for attempt, topic in attempts:
            with pytest.raises(REFUSED):
                await attempt(access, topic)
    # and what they are there for works (their writes are proven by every other test of the suite)
    for service, topic in (
        ("ingest", topics.API_KEYS),
        ("measures", topics.CARE_EVENTS),
        ("contracts", topics.OUTCOMES),
        ("finance", topics.PAYMENTS),
    ):
        await read(world.cluster.principal(service), topic)


async def test_a_retired_providers_principal_can_no_longer_produce(world) -> None:  # type: ignore[no-untyped-def]
    if not world.kafka.username:
        pytest.skip("this broker (testcontainers) runs without authentication")
    provider = uid("gone-")
    await register_provider(world.kafka, provider)
    provisioner = KafkaProvisioner(world.kafka)
    access = await provisioner.provision_provider(provider, new_password())
    await write(access, topics.raw_topic(provider).name)
    await provisioner.revoke_provider(provider)
    assert await provisioner.describe_acls(access.username or "") == []
    with pytest.raises(KafkaConnectionError):
        await write(access, topics.raw_topic(provider).name)


def kcat(access: KafkaAccess, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Debian's kcat, a client none of us wrote, on a librdkafka that speaks SCRAM to Kafka 4 (scripts/kcat)."""
    options = [f"-X{k}={v}" for k, v in access.librdkafka_config().items() if k != "bootstrap.servers"]
    command = [str(ROOT / "scripts" / "kcat"), "-b", access.bootstrap, *options, "-m", "10", *args]
    return subprocess.run(command, input=data, capture_output=True, timeout=60)


async def test_kcat_as_an_outsider_gets_exactly_what_its_credentials_allow(world) -> None:  # type: ignore[no-untyped-def]
    if not world.kafka.username:
        pytest.skip("this broker (testcontainers) runs without authentication")
    assert shutil.which("kcat"), "kcat is needed (scripts/bootstrap.sh --system installs it)"
    provider = uid("kc-")
    await register_provider(world.kafka, provider)
    access = await provider_access(world.kafka, provider)
    own, other = topics.raw_topic(provider).name, topics.CARE_EVENTS
    loop = asyncio.get_running_loop()

    def run(
        *args: str, who: KafkaAccess = access, data: bytes | None = b"{}\n"
    ) -> subprocess.CompletedProcess[bytes]:
        return kcat(who, *args, data=data)

    anonymous = await loop.run_in_executor(
        None, lambda: run("-L", who=KafkaAccess(world.kafka.bootstrap), data=None)
    )
    assert anonymous.returncode != 0
    wrong = await loop.run_in_executor(
        None, lambda: run("-P", "-t", own, who=world.kafka.as_user(access.username or "", "wrong"))
    )
    assert wrong.returncode != 0 and b"Authentication failed" in wrong.stderr, wrong.stderr
    mine = await loop.run_in_executor(None, lambda: run("-P", "-t", own, "-k", "kcat", "-H", "ce_id=kcat-1"))
    assert mine.returncode == 0, mine.stderr
    theirs = await loop.run_in_executor(None, lambda: run("-P", "-t", other))
    assert theirs.returncode != 0 and b"authorization failed" in theirs.stderr.lower(), theirs.stderr
    records = await loop.run_in_executor(
        None, lambda: run("-C", "-t", own, "-e", "-q", who=world.kafka, data=None)
    )
    assert records.returncode == 0 and records.stdout.strip() == b"{}", records


async def test_topics_are_set_up_as_stated_for_the_cluster_they_are_on(world) -> None:  # type: ignore[no-untyped-def]
    """Issue 33 item 1, on the test's single broker: every topic is created and configured from one statement
    (`utfall_events.topics`): its partitions, retention and compaction, and the replication the cluster's size
    asks for (one replica and `min.insync.replicas` 1 here; three and two on three brokers)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from utfall_platform.kafka import ensure_topics

    await ensure_topics(world.kafka)  # idempotent: what setup does on a cluster that has them already
    admin = AIOKafkaAdminClient(**world.kafka.client_options())
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        want = topics.replication_for(brokers)
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, spec.name) for spec in topics.ALL_TOPICS]
        )
        layout = {t["topic"]: t for t in await admin.describe_topics([s.name for s in topics.ALL_TOPICS])}
    finally:
        await admin.close()
    configs = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}
        for response in described
        for resource in response.resources
    }
    for spec in topics.ALL_TOPICS:
        config = configs[spec.name]
        assert config["min.insync.replicas"] == str(want.min_insync), spec.name
        assert config["cleanup.policy"] == ("compact" if spec.compacted else "delete"), spec.name
        if not spec.compacted:
            assert config["retention.ms"] == str(spec.retention_ms), spec.name
        partitions = layout[spec.name]["partitions"]
        assert len(partitions) == spec.partitions, spec.name
        assert all(len(p["replicas"]) == want.factor for p in partitions), spec.name
