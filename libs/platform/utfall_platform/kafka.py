"""Kafka wiring: the FastStream broker factory, topic creation, and a consumer-lag sampler."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, Topic
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware

from utfall_events.topics import (
    ALL_TOPICS,
    TRANSACTIONAL_TOPICS,
    Replication,
    TopicSpec,
    provider_of_raw_topic,
    replication_for,
)

from . import metrics
from .background import run_periodically
from .consumer import CommitPolicy, TransactionalBatchConsumer, records_of
from .kafka_access import KafkaAccess, bootstrap_servers
from .settings import PlatformSettings

log = logging.getLogger(__name__)


def make_broker(settings: PlatformSettings, service: str) -> KafkaBroker:
    """A FastStream broker (not yet connected): Prometheus middleware, idempotent producer."""
    return KafkaBroker(
        bootstrap_servers(settings.kafka_bootstrap),
        security=settings.kafka.security,
        client_id=f"utfall-{service}",
        # How soon a pattern subscription (every provider's raw topic) sees a topic created after it started.
        metadata_max_age_ms=settings.kafka_metadata_max_age_ms,
        middlewares=[KafkaPrometheusMiddleware(registry=metrics.registry, app_name=f"utfall-{service}")],
        logger=logging.getLogger(f"utfall.{service}.kafka"),
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        compression_type="lz4",
        graceful_timeout=10.0,
    )


def subscribe_transactional(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    consumer: Callable[[], TransactionalBatchConsumer],
    settings: PlatformSettings,
) -> Any:
    """Register a batch subscriber whose records go through a TransactionalBatchConsumer.

    `topic` may be a FastStream pattern (`care.events.raw.v1.{provider}`): every matching topic, also those
    created later, is consumed by the same group.

    `consumer` is called per batch so the service can build it once its pool exists (nothing connects at
    import or wiring time). Offsets are acknowledged to Kafka only after the database commit.
    """
    policy = CommitPolicy()
    listener = SeekToStoredPositions(lambda: consumer())

    is_pattern = "{" in topic
    subscriber = broker.subscriber(
        # Topics are provisioned (utfall-admin kafka setup); a service's principal may not create them.
        *(() if is_pattern else (Topic(topic, declare=False),)),
        pattern=topic if is_pattern else None,
        group_id=group_id,
        batch=True,
        max_records=settings.consumer_max_records,
        batch_timeout_ms=settings.consumer_batch_timeout_ms,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        session_timeout_ms=15000,
        heartbeat_interval_ms=3000,
        max_poll_interval_ms=300000,
        listener=listener,
        parser=tolerant_batch_parser,
        decoder=undecoded,
    )
    listener.subscriber = subscriber

    async def read_again(positions: dict[tuple[str, int], int]) -> None:
        kafka_consumer = getattr(subscriber, "consumer", None)
        if kafka_consumer is None:
            raise RuntimeError(f"{topic}: no Kafka consumer to seek")
        for (name, partition), offset in positions.items():
            kafka_consumer.seek(TopicPartition(name, partition), offset)

    @subscriber
    async def handle(message: KafkaMessage) -> None:
        batch_consumer = consumer()
        batch_consumer.rewind = read_again
        await batch_consumer.process(records_of(message.raw_message))
        if policy.should_commit():
            await message.ack()

    return subscriber


async def tolerant_batch_parser(records: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """Handlers read the original records and decode them themselves. FastStream's parse of a batch decodes every
    header of every record to text, which nothing reads (2-3 % of a consumer's CPU) and which raises on a
    hostile record's bytes, dropping the batch. So FastStream parses the first record alone, its headers made
    valid UTF-8, to build its message, and the handler is given the original records."""
    batch = records if isinstance(records, tuple) else (records,)
    first = batch[0]
    safe = dataclasses.replace(
        first, headers=[(k, bytes(v or b"").decode("utf-8", "replace").encode()) for k, v in first.headers]
    )
    message = await original((safe,) if isinstance(records, tuple) else safe)
    message.raw_message = records
    return message


async def undecoded(message: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """The handler decodes records itself (bad input is data to reject, not an exception in the framework)."""
    return message.body


class SeekToStoredPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, start each partition where Postgres says this consumer stopped (the truth).

    Kafka's committed offsets are then only a monitoring hint, and dropping a projection together with its
    positions (a rebuild) replays the topic from the beginning.
    """

    def __init__(self, consumer: Callable[[], TransactionalBatchConsumer]) -> None:
        self.consumer = consumer
        self.subscriber: Any = None

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        kafka_consumer = getattr(self.subscriber, "consumer", None)
        if kafka_consumer is None or not assigned:
            return
        partitions = [(tp.topic, tp.partition) for tp in assigned]
        self.consumer().forget(partitions)
        stored = await self.consumer().stored_positions(partitions)
        from_start = []
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                from_start.append(tp)
            else:
                kafka_consumer.seek(tp, offset)
        if from_start:
            await kafka_consumer.seek_to_beginning(*from_start)


def topic_config(spec: TopicSpec, replication: Replication = Replication(1, 1)) -> dict[str, str]:
    """A topic's configuration as the broker takes it."""
    config = {"cleanup.policy": "compact"} if spec.compacted else {"retention.ms": str(spec.retention_ms)}
    config["min.insync.replicas"] = str(replication.min_insync)
    if spec.max_message_bytes:
        config["max.message.bytes"] = str(spec.max_message_bytes)
    if spec.segment_ms:
        config["segment.ms"] = str(spec.segment_ms)
    return config


async def ensure_topics(kafka: KafkaAccess, topics: Iterable[TopicSpec] = ALL_TOPICS) -> list[str]:
    """Create missing topics (idempotent), replicated as the cluster's size asks (`replication_for`); returns
    those created. A topic that exists already is set to the configuration stated here."""
    admin = AIOKafkaAdminClient(**kafka.client_options(), client_id="utfall-topics")
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        replication = replication_for(len((await admin.describe_cluster())["brokers"]))
        specs = list(topics)
        for spec in specs:
            if spec.name in existing:
                continue
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            spec.name,
                            spec.partitions,
                            replication.factor,
                            topic_configs=topic_config(spec, replication),
                        )
                    ]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        # an existing topic is set to what is stated for it (a raw topic created under an older, longer
        # retention; a topic from before min.insync.replicas was stated)
        bounded = [s for s in specs if s.name in existing]
        if bounded:
            await admin.alter_configs(
                [
                    ConfigResource(ConfigResourceType.TOPIC, s.name, configs=topic_config(s, replication))
                    for s in bounded
                ]
            )
    finally:
        await admin.close()
    return created


async def raw_topic_providers(kafka: KafkaAccess) -> list[str]:
    """The providers that have a raw topic on the cluster."""
    admin = AIOKafkaAdminClient(**kafka.client_options(), client_id="utfall-topics")
    await admin.start()
    try:
        names = await admin.list_topics()
    finally:
        await admin.close()
    return sorted(p for p in (provider_of_raw_topic(n) for n in names) if p)


class MissingTopics(RuntimeError):
    """Topics a service needs are not there, or its principal may not see them: the cluster is not provisioned."""


async def require_topics(kafka: KafkaAccess, names: Iterable[str]) -> None:
    """Services never create topics (their principals may not): they wait for the provisioning step."""
    admin = AIOKafkaAdminClient(**kafka.client_options(), client_id="utfall-topics")
    await admin.start()
    try:
        visible = set(await admin.list_topics())
    finally:
        await admin.close()
    missing = sorted(set(names) - visible)
    if missing:
        raise MissingTopics(
            f"{', '.join(missing)}: missing, or {kafka.principal} may not describe them "
            "(provision the cluster: utfall-admin kafka setup)"
        )


class LagSampler:
    """Samples end offsets against the positions a consumer committed in Postgres (the truth)."""

    def __init__(
        self,
        *,
        service: str,
        kafka: KafkaAccess,
        pool: asyncpg.Pool,
        schema: str,
        consumers: dict[str, str],
        interval: float = 5.0,
    ) -> None:
        self.service = service
        self.kafka = kafka
        self.pool = pool
        self.schema = schema
        self.consumers = consumers  # consumer name -> topic or FastStream pattern
        self.interval = interval
        self._client: AIOKafkaConsumer | None = None

    async def run(self) -> None:
        try:
            await run_periodically(
                self.sample_once,
                every_seconds=self.interval,
                service=self.service,
                task="lag-sampler",
                after_failure=self.disconnect,
            )
        finally:
            await self.disconnect()

    async def sample_once(self) -> dict[tuple[str, int], int]:
        if self._client is None:
            client = AIOKafkaConsumer(**self.kafka.client_options(), isolation_level="read_committed")
            self._client = client
            await client.start()
        return await self.sample(self._client)

    async def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.stop()

    async def sample(self, client: AIOKafkaConsumer) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        for name, subscribed in self.consumers.items():
            for topic in await _topics_of(client, subscribed):
                out.update(await self._sample_topic(client, name, topic))
        return out

    async def _sample_topic(
        self, client: AIOKafkaConsumer, name: str, topic: str
    ) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        parts = client.partitions_for_topic(topic)
        if not parts:
            await client._client.force_metadata_update()
            parts = client.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return out
        ends = await client.end_offsets(tps)
        rows = await self.pool.fetch(
            f'SELECT partition, next_offset FROM "{self.schema}".consumer_positions '
            "WHERE consumer = $1 AND topic = $2",
            name,
            topic,
        )
        done = {r["partition"]: r["next_offset"] for r in rows}
        marker = 1 if topic in TRANSACTIONAL_TOPICS else 0
        for tp in tps:
            end, position = ends[tp], done.get(tp.partition, 0)
            lag = max(0, end - position - (marker if end > position else 0))
            out[(topic, tp.partition)] = lag
            metrics.CONSUMER_LAG.labels(self.service, topic, str(tp.partition)).set(lag)
        return out


async def _topics_of(client: AIOKafkaConsumer, subscribed: str) -> list[str]:
    """The topic itself, or every topic a pattern subscription (`prefix{name}`) covers right now."""
    if "{" not in subscribed:
        return [subscribed]
    prefix = subscribed.split("{", 1)[0]
    return sorted(t for t in await client.topics() if t.startswith(prefix) and t != prefix)
