"""API keys: generated once, stored only as SHA-256 hashes on the compacted `auth.keys.v1` topic.

A key reads `utf_<key id>_<secret>`. Services keep the topic in memory (KeyStore) and check a presented
key by its id, comparing the secret's hash in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from utfall_events.auth import ApiKeyV1, Role
from utfall_events.topics import API_KEYS

from .compacted import CompactedTable, publish_rows
from .kafka_access import KafkaAccess


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
    contract_ids: Sequence[str] = (),
    register_id: str | None = None,
) -> NewKey:
    key_id = base64.b32encode(secrets.token_bytes(10)).decode().lower().rstrip("=")
    secret = secrets.token_urlsafe(32)
    if role == "provider" and not provider_id:
        raise ValueError("a provider key needs provider_id")
    if role == "municipality" and not municipality_code:
        raise ValueError("a municipality key needs municipality_code")
    if role == "finance" and not funder:
        raise ValueError("a finance key needs funder")
    if role == "assessor" and not contract_ids:
        raise ValueError("an assessor key needs the contracts it assesses (contract_ids)")
    if role == "register" and not register_id:
        raise ValueError("a register key needs register_id")
    if role != "register" and register_id:
        raise ValueError("only a register key names a register (register_id)")
    if role != "assessor" and contract_ids:
        raise ValueError("only an assessor key is scoped to contracts (contract_ids)")
    record = ApiKeyV1(
        key_id=key_id,
        secret_sha256=hash_secret(secret),
        role=role,
        provider_id=provider_id,
        municipality_code=municipality_code,
        funder=funder,
        contract_ids=sorted(set(contract_ids)),
        register_id=register_id,
        label=label,
        created_at=now,
    )
    return NewKey(record, f"utf_{key_id}_{secret}")


def split_key(presented: str) -> tuple[str, str] | None:
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != "utf" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


async def publish_keys(kafka: KafkaAccess, records: list[ApiKeyV1]) -> None:
    await publish_rows(kafka, API_KEYS, ((r.key_id, r) for r in records))


class KeyStore(CompactedTable[ApiKeyV1]):
    """The key topic, materialised in memory and followed live."""

    def __init__(self, kafka: KafkaAccess, service: str = "") -> None:
        super().__init__(kafka, API_KEYS, ApiKeyV1, service)

    @property
    def keys(self) -> dict[str, ApiKeyV1]:
        return self.rows

    async def authenticate(self, presented: str | None) -> ApiKeyV1 | None:
        if not presented:
            return None
        parts = split_key(presented)
        if parts is None:
            return None
        key_id, secret = parts
        record = self.rows.get(key_id)
        if record is None:
            await self.refresh()
            record = self.rows.get(key_id)
        # Compare against a dummy hash when the id is unknown, so timing does not tell ids apart.
        expected = record.secret_sha256 if record is not None else hash_secret("unknown-" + key_id)
        if not hmac.compare_digest(hash_secret(secret), expected) or record is None:
            return None
        if record.revoked_at is not None:
            return None
        return record
