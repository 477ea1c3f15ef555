"""What the gateway's routes and page share, typed: the read-only pool, the results cache, the settings."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from utfall_platform.clock import Clock
from utfall_platform.service import ServiceRuntime

from .cache import TtlCache
from .release_store import ReleaseStore
from .settings import GatewaySettings


class GatewayState:
    def __init__(
        self, runtime: ServiceRuntime, settings: GatewaySettings, clock: Clock, releases: ReleaseStore
    ) -> None:
        self.runtime = runtime
        self.releases = releases
        self.settings = settings
        self.clock = clock
        self.cache = TtlCache(settings.results_cache_seconds)
        self.previews = TtlCache(settings.release_preview_seconds)

    @property
    def pool(self) -> Any:
        return self.runtime.pool

    @property
    def min_cell(self) -> int:
        return self.settings.min_cell

    @property
    def margin(self) -> int:
        return self.settings.protection_margin or self.settings.min_cell

    async def publish(self, topic: str, value: bytes, *, key: bytes) -> None:
        await self.runtime.broker.publish(value, topic, key=key, headers={"content-type": "application/json"})


def gateway_state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state
