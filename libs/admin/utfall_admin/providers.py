"""The provider registry (`registry.providers.v1`) and providers' own Kafka principals."""

from __future__ import annotations

from utfall_events.registry import ProviderRegistrationV1, ProviderV1
from utfall_platform.clock import SystemClock
from utfall_platform.kafka import ensure_topics
from utfall_platform.kafka_access import KafkaAccess
from utfall_platform.kafka_acl import KafkaProvisioner, new_password
from utfall_platform.registry import ProviderRegistry, publish_providers

from .errors import AdminError


async def _registry(kafka: KafkaAccess) -> ProviderRegistry:
    registry = ProviderRegistry(kafka)
    await registry.load()
    return registry


async def register_provider(kafka: KafkaAccess, registration: ProviderRegistrationV1) -> ProviderV1:
    await ensure_topics(kafka)
    previous = (await _registry(kafka)).rows.get(registration.provider_id)
    record = ProviderV1(
        **registration.model_dump(),
        registered_at=previous.registered_at if previous is not None else SystemClock().now(),
    )
    await publish_providers(kafka, [record])
    return record


async def list_providers(kafka: KafkaAccess) -> list[ProviderV1]:
    return sorted((await _registry(kafka)).rows.values(), key=lambda p: p.provider_id)


async def retire_provider(kafka: KafkaAccess, provider_id: str) -> ProviderV1:
    current = (await _registry(kafka)).rows.get(provider_id)
    if current is None:
        raise AdminError(f"no provider {provider_id}")
    retired = current.model_copy(update={"retired_at": current.retired_at or SystemClock().now()})
    await publish_providers(kafka, [retired])
    await KafkaProvisioner(kafka).revoke_provider(provider_id)
    return retired


async def require_active(kafka: KafkaAccess, provider_id: str) -> None:
    if (await _registry(kafka)).active(provider_id) is None:
        raise AdminError(
            f"provider {provider_id} is not registered (utfall-admin providers add) or is retired"
        )


async def provider_kafka_access(kafka: KafkaAccess, provider_id: str) -> KafkaAccess:
    """Create (or rotate) a registered provider's Kafka principal: it may write its own raw topic, nothing else."""
    await require_active(kafka, provider_id)
    return await KafkaProvisioner(kafka).provision_provider(provider_id, new_password())
