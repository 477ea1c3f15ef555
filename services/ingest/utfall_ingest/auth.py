"""Authentication for ingest's HTTP API: providers send events, register holders send extracts."""

from __future__ import annotations

from fastapi import Request

from utfall_events.auth import ApiKeyV1
from utfall_platform.apikeys import KeyStore
from utfall_platform.problems import Problem
from utfall_platform.registry import ProviderRegistry


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


async def authenticate(request: Request) -> ApiKeyV1:
    store: KeyStore = request.app.state.keys
    key = await store.authenticate(presented_key(request))
    if key is None:
        raise Problem(401, "unauthorized", "A valid API key is required (Authorization: Bearer <key>).")
    return key


async def require_provider(request: Request) -> ApiKeyV1:
    key = await authenticate(request)
    if key.role != "provider" or not key.provider_id:
        raise Problem(403, "forbidden", "Only provider keys may send events.")
    registry: ProviderRegistry = request.app.state.providers
    await registry.ensure([key.provider_id])
    if registry.active(key.provider_id) is None:
        raise Problem(
            403, "unknown-provider", "The key's provider is not (or no longer) registered; ask an operator."
        )
    return key
