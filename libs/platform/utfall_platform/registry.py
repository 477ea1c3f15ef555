"""The provider registry as every service sees it: `registry.providers.v1` followed live in memory."""

from __future__ import annotations

from collections.abc import Iterable

from utfall_events.registry import ProviderV1
from utfall_events.topics import PROVIDER_REGISTRY

from .compacted import CompactedTable, publish_rows
from .kafka_access import KafkaAccess


class ProviderRegistry(CompactedTable[ProviderV1]):
    def __init__(self, kafka: KafkaAccess, service: str = "") -> None:
        super().__init__(kafka, PROVIDER_REGISTRY, ProviderV1, service)

    def active(self, provider_id: str) -> ProviderV1 | None:
        provider = self.rows.get(provider_id)
        return provider if provider is not None and provider.active else None

    async def ensure(self, provider_ids: Iterable[str]) -> dict[str, ProviderV1]:
        """The registry to decide on: re-read to the topic's end first when a named provider is not known yet
        (registered a moment ago), so a registration is never outrun by the provider's first event."""
        if any(p not in self.rows for p in provider_ids):
            await self.refresh()
        return self.rows

    def unknown(self, provider_ids: Iterable[str]) -> list[str]:
        return sorted({p for p in provider_ids if self.active(p) is None})


async def publish_providers(kafka: KafkaAccess, providers: Iterable[ProviderV1]) -> None:
    await publish_rows(kafka, PROVIDER_REGISTRY, ((p.provider_id, p) for p in providers))
