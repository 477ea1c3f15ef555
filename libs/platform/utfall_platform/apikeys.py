"""API keys: generated once, stored only as SHA-256 hashes on the compacted `auth.keys.v1` topic.

A key reads `utf_<key id>_<secret>`. Services keep the topic in memory (KeyStore) and check a presented
key by its id, comparing the secret's hash in constant time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from utfall_events.auth import ApiKeyV1, Role
from utfall_events.topics import API_KEYS

from .background import record_failure

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NewKey:
    record: ApiKeyV1
    secret: str  # the whole key, shown once


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_key(
    role: Role,
    *,
    now: datetime,
    provider_id: str | None = None,
    municipality_code: str | None = None,
    funder: str | None = None,
    label: str = "",
) -> NewKey:
    key_id = base64.b32encode(secrets.token_bytes(10)).decode().lower().rstrip("=")
    secret = secrets.token_urlsafe(32)
    if role == "provider" and not provider_id:
        raise ValueError("a provider key needs provider_id")
    if role == "municipality" and not municipality_code:
        raise ValueError("a municipality key needs municipality_code")
    if role == "finance" and not funder:
        raise ValueError("a finance key needs funder")
    record = ApiKeyV1(
        key_id=key_id,
        secret_sha256=hash_secret(secret),
        role=role,
        provider_id=provider_id,
        municipality_code=municipality_code,
        funder=funder,
        label=label,
        created_at=now,
    )
    return NewKey(record, f"utf_{key_id}_{secret}")


def split_key(presented: str) -> tuple[str, str] | None:
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != "utf" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


async def publish_keys(bootstrap: str, records: list[ApiKeyV1]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(
                API_KEYS, key=record.key_id.encode(), value=record.model_dump_json().encode()
            )
    finally:
        await producer.stop()


class KeyStore:
    """The key topic, materialised in memory and followed live."""

    def __init__(self, bootstrap: str, service: str = "") -> None:
        self.bootstrap = bootstrap
        self.service = service
        self.keys: dict[str, ApiKeyV1] = {}
        self.caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._tp = TopicPartition(API_KEYS, 0)

    async def run(self) -> None:
        while True:
            # A reconnection reads the compacted topic from the start into a fresh table and swaps it in once
            # caught up, so the keys in use stay valid while the broker is away or being re-read; the first
            # load goes straight into the live table.
            loading: dict[str, ApiKeyV1] | None = {} if self.caught_up.is_set() else None
            try:
                self._consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap,
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                )
                await self._consumer.start()
                self._consumer.assign([self._tp])
                await self._consumer.seek_to_beginning(self._tp)
                while True:
                    batch = await self._consumer.getmany(self._tp, timeout_ms=500)
                    for record in batch.get(self._tp, []):
                        _apply(self.keys if loading is None else loading, record.key, record.value)
                    if loading is not None or not self.caught_up.is_set():
                        end = (await self._consumer.end_offsets([self._tp]))[self._tp]
                        if await self._consumer.position(self._tp) >= end:
                            if loading is not None:
                                self.keys, loading = loading, None
                            self.caught_up.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                record_failure(self.service, "key-store", exc)
                await asyncio.sleep(1.0)
            finally:
                if self._consumer is not None:
                    with contextlib.suppress(Exception):
                        await self._consumer.stop()
                    self._consumer = None

    async def refresh(self, timeout: float = 2.0) -> None:
        """Wait until everything on the topic right now has been read (a key created a moment ago)."""
        consumer = self._consumer
        if consumer is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                end = (await consumer.end_offsets([self._tp]))[self._tp]
                while await consumer.position(self._tp) < end:
                    await asyncio.sleep(0.01)

    async def authenticate(self, presented: str | None) -> ApiKeyV1 | None:
        if not presented:
            return None
        parts = split_key(presented)
        if parts is None:
            return None
        key_id, secret = parts
        record = self.keys.get(key_id)
        if record is None:
            await self.refresh()
            record = self.keys.get(key_id)
        # Compare against a dummy hash when the id is unknown, so timing does not tell ids apart.
        expected = record.secret_sha256 if record is not None else hash_secret("unknown-" + key_id)
        if not hmac.compare_digest(hash_secret(secret), expected) or record is None:
            return None
        if record.revoked_at is not None:
            return None
        return record


def _apply(keys: dict[str, ApiKeyV1], key: bytes | None, value: bytes | None) -> None:
    if key is None:
        return
    key_id = key.decode()
    if value is None:
        keys.pop(key_id, None)
        return
    try:
        keys[key_id] = ApiKeyV1.model_validate_json(value)
    except ValueError:
        log.error("key store: unreadable record for key id %s ignored", key_id)
