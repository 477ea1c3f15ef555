"""Test helpers: event builders, keys, in-process services, reading topics, waiting."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from importlib.abc import Traversable
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI

from utfall_events.personnummer import PERSONNUMMER_PATTERN, make_person_number
from utfall_events.topics import raw_topic
from utfall_platform.apikeys import generate_key, publish_keys
from utfall_platform.clock import SystemClock
from utfall_platform.db import migrate
from utfall_platform.kafka_access import KafkaAccess
from utfall_platform.kafka_acl import KafkaProvisioner, new_password
from utfall_platform.outbox import platform_ddl
from utfall_platform.registry import publish_providers

from .providers import TEST_UNITS, registered

T = TypeVar("T")
_serial = itertools.count(1)


@dataclass(frozen=True)
class FakeRecord:
    """A Kafka record as a handler sees it, for driving a consumer without a broker."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: int = 0


async def migrate_service(pool: Any, service: str, directory: Traversable | None = None) -> None:
    """Create a service's platform tables and apply its migrations (from `directory`, by default the
    service package's own), as the service does on start."""

    async def platform_tables(conn: Any) -> None:
        await conn.execute(platform_ddl(service))

    migrations = directory or resources.files(f"utfall_{service}").joinpath("migrations")
    await migrate(pool, service, migrations, after=platform_tables)


def uid(prefix: str = "") -> str:
    """A unique id. Ingest rejects identifiers that could be a personnummer, and the end-to-end scans fail on
    any 10-digit run in a published message: about one random 10-character hex id in 110 is all digits, so
    those are drawn again."""
    while PERSONNUMMER_PATTERN.search(candidate := f"{prefix}{uuid.uuid4().hex[:10]}"):
        pass
    return candidate


def person(born: date = date(2008, 4, 12), *, female: bool = True) -> str:
    """A valid personnummer not handed out before in this session (for its birth date: 500 of each sex). The
    serial's last digit gives the sex, so each call takes a pair of serials: one call's number never equals
    the next one's."""
    return make_person_number(born, (next(_serial) * 2) % 1000, female=female)


def cloud_event(
    kind: str,
    provider: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
    time: datetime | None = None,
    subject: str | None = None,
) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": event_id or uid("evt-"),
        "source": f"provider/{provider}",
        "type": f"se.utfall.{kind}.v1",
        "time": (time or datetime(2025, 1, 1, 9, tzinfo=UTC)).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject or "episode_id" in data:
        event["subject"] = subject or data["episode_id"]
    return event


def started(
    provider: str,
    episode: str,
    person_id: str,
    *,
    start: str = "2024-03-01",
    care_type: str = "hvb",
    municipality: str = "0180",
    legal_basis: str = "SoL",
    target_group: str = "behaviour",
    unit: str = "unit-1",
    **kw: Any,
) -> dict[str, Any]:
    return cloud_event(
        "placement.started",
        provider,
        {
            "episode_id": episode,
            "person_id": person_id,
            "provider_id": provider,
            "unit_id": unit,
            "municipality_code": municipality,
            "care_type": care_type,
            "legal_basis": legal_basis,
            "target_group": target_group,
            "start_date": start,
        },
        **kw,
    )


def ended(
    provider: str,
    episode: str,
    *,
    end: str = "2024-09-01",
    reason: str = "planned",
    destination: str = "parents",
    **kw: Any,
) -> dict[str, Any]:
    return cloud_event(
        "placement.ended",
        provider,
        {
            "episode_id": episode,
            "end_date": end,
            "end_reason": reason,
            "destination": destination,
        },
        **kw,
    )


def followup(
    provider: str,
    episode: str,
    *,
    month: int = 12,
    assessed: str = "2025-09-15",
    living: str = "parents",
    education: bool | None = True,
    replaced: bool | None = False,
    **kw: Any,
) -> dict[str, Any]:
    return cloud_event(
        "followup.recorded",
        provider,
        {
            "episode_id": episode,
            "followup_month": month,
            "assessed_on": assessed,
            "living_situation": living,
            "in_education_or_work": education,
            "replaced_since_discharge": replaced,
            "offending": False,
            "substance_misuse": None,
        },
        **kw,
    )


def retraction(provider: str, target: str, reason: str = "registrerat fel", **kw: Any) -> dict[str, Any]:
    return cloud_event("event.retracted", provider, {"retracted_event_id": target, "reason": reason}, **kw)


async def create_key(kafka: KafkaAccess, role: str, *, units: Any = None, **scope: Any) -> str:
    """A new key; a provider key's provider is registered first, as an operator would (with `units` if given)."""
    if role == "provider":
        await register_provider(kafka, scope["provider_id"], units=units)
    new = generate_key(role, now=SystemClock().now(), **scope)  # type: ignore[arg-type]
    await publish_keys(kafka, [new.record])
    return new.secret


async def register_provider(
    kafka: KafkaAccess, provider_id: str, *, units: Any = None, **overrides: Any
) -> None:
    extra = {"units": [*TEST_UNITS, *units]} if units else {}
    await publish_providers(kafka, [registered(provider_id, **extra, **overrides)])


def batch_headers(key: str) -> dict[str, str]:
    return {"content-type": "application/cloudevents-batch+json", "authorization": f"Bearer {key}"}


async def wait_until(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Start a service in this event loop (real Kafka and Postgres) and talk to it over ASGI."""
    runtime = app.state.runtime
    await runtime.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=60
        ) as client:
            yield client
    finally:
        await runtime.stop()


async def read_topic(
    kafka: KafkaAccess,
    topic: str,
    *,
    predicate: Callable[[Any], bool] = lambda _: True,
    expect: int | None = None,
    timeout: float = 30.0,
    settle: float = 0.0,
) -> list[Any]:
    """Every committed record of a topic matching the predicate, from the beginning. With `expect`, waits until
    that many match (then `settle` seconds more to catch extras), and fails if fewer arrive in `timeout`."""
    consumer = AIOKafkaConsumer(
        **kafka.client_options(), isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    found: list[Any] = []
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                found.extend(r for r in records if predicate(r))
            now = time.monotonic()
            if expect is None:
                ends = await consumer.end_offsets(tps)
                positions = [await consumer.position(tp) for tp in tps]
                if all(p >= ends[tp] for p, tp in zip(positions, tps, strict=True)) and not batch:
                    break
            elif len(found) >= expect:
                settle_until = settle_until or now + settle
                if now >= settle_until:
                    break
            if now > deadline:
                break
    finally:
        await consumer.stop()
    if expect is not None and len(found) < expect:
        raise AssertionError(f"{topic}: {len(found)} of {expect} expected records within {timeout:g} s")
    return found


RawRecords = list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]
_PROVIDER_ACCESS: dict[tuple[str, str], KafkaAccess] = {}


async def provider_access(admin: KafkaAccess, provider_id: str) -> KafkaAccess:
    """The provider's own Kafka principal, created once per test session as an operator would create it."""
    if not admin.username:
        return admin  # a broker without authentication (testcontainers)
    key = (admin.bootstrap, provider_id)
    if key not in _PROVIDER_ACCESS:
        _PROVIDER_ACCESS[key] = await KafkaProvisioner(admin).provision_provider(provider_id, new_password())
    return _PROVIDER_ACCESS[key]


async def produce_raw(admin: KafkaAccess, provider_id: str, records: RawRecords) -> None:
    """Produce as the provider itself, to its own raw topic (the only one its principal may write)."""
    access = await provider_access(admin, provider_id)
    await produce(access, raw_topic(provider_id).name, records)


async def produce(kafka: KafkaAccess, topic: str, records: RawRecords) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


def header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return None


async def topic_configs(kafka: KafkaAccess, names: list[str]) -> dict[str, dict[str, str]]:
    """Each topic's configuration as the brokers hold it."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    finally:
        await admin.close()
    return {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}
        for response in described
        for resource in response.resources
    }
