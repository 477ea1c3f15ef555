"""API keys (`auth.keys.v1`): hashes only; a new key's secret is shown once."""

from __future__ import annotations

from collections.abc import Sequence

from utfall_platform.apikeys import KeyStore, generate_key, publish_keys
from utfall_platform.clock import SystemClock
from utfall_platform.kafka import ensure_topics
from utfall_platform.kafka_access import KafkaAccess

from .providers import require_active


async def create_key(
    kafka: KafkaAccess,
    role: str,
    provider_id: str | None,
    municipality_code: str | None,
    funder: str | None,
    label: str,
    contract_ids: Sequence[str] = (),
    register_id: str | None = None,
) -> dict[str, object]:
    await ensure_topics(kafka)
    if provider_id is not None:
        await require_active(kafka, provider_id)
    new = generate_key(
        role,  # type: ignore[arg-type]
        now=SystemClock().now(),
        provider_id=provider_id,
        municipality_code=municipality_code,
        funder=funder,
        label=label,
        contract_ids=contract_ids,
        register_id=register_id,
    )
    await publish_keys(kafka, [new.record])
    return {
        "key_id": new.record.key_id,
        "role": role,
        "provider_id": provider_id,
        "municipality_code": municipality_code,
        "funder": funder,
        "contract_ids": new.record.contract_ids,
        "register_id": register_id,
        "key": new.secret,
    }


async def key_store(kafka: KafkaAccess) -> KeyStore:
    store = KeyStore(kafka)
    await store.load()
    return store


async def list_keys(kafka: KafkaAccess) -> list[dict[str, object]]:
    return [
        {
            "key_id": k.key_id,
            "role": k.role,
            "provider_id": k.provider_id,
            "municipality_code": k.municipality_code,
            "funder": k.funder,
            "contract_ids": k.contract_ids,
            "register_id": k.register_id,
            "label": k.label,
            "revoked": k.revoked_at is not None,
        }
        for k in (await key_store(kafka)).keys.values()
    ]


async def revoke_key(kafka: KafkaAccess, key_id: str) -> bool:
    key = (await key_store(kafka)).keys.get(key_id)
    if key is None:
        return False
    await publish_keys(kafka, [key.model_copy(update={"revoked_at": SystemClock().now()})])
    return True
