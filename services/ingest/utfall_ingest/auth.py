"""Authentication for ingest's HTTP API: providers send events and figures (by a provider's API key, or as a
person of the provider signed in through the identity provider), register holders send extracts (by key)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import Request

from utfall_events.auth import ApiKeyV1, PersonV1
from utfall_platform.apikeys import KeyStore
from utfall_platform.oidc import (
    ClaimNames,
    IdentityProvider,
    IdentityProviderUnavailable,
    TokenRefused,
    looks_like_jwt,
)
from utfall_platform.problems import Problem
from utfall_platform.registry import ProviderRegistry


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


async def authenticate(request: Request) -> ApiKeyV1:
    presented = presented_key(request)
    if presented and looks_like_jwt(presented):
        return await _person(request, presented)
    store: KeyStore = request.app.state.keys
    key = await store.authenticate(presented)
    if key is None:
        raise Problem(401, "unauthorized", "A valid API key is required (Authorization: Bearer <key>).")
    request.state.submitted_by = key.key_id
    return key


async def _person(request: Request, token: str) -> ApiKeyV1:
    """A provider's staff member with an access token: acts as the provider, recorded as the person."""
    idp: IdentityProvider | None = request.app.state.idp
    if idp is None:
        raise Problem(401, "unauthorized", "People's sign-in is not configured here; use an API key.")
    names: ClaimNames = request.app.state.claim_names
    try:
        claims = await idp.verify_bearer(token)
    except TokenRefused as exc:
        raise Problem(401, "unauthorized", f"The access token is refused: {exc.reason}.") from None
    except IdentityProviderUnavailable:
        raise Problem(
            503, "identity-provider-unavailable", "The identity provider cannot be reached."
        ) from None
    provider_id = names.text(claims, names.provider_id)
    if names.text(claims, names.role) != "provider" or provider_id is None:
        raise Problem(403, "forbidden", "Only a provider's staff (or a provider key) may send to ingest.")
    person = PersonV1(subject=str(claims["sub"]), name=names.display(claims)[:200])
    request.state.submitted_by = f"person:{person.subject}"
    request.state.person = person
    return ApiKeyV1(
        key_id=f"person:{person.subject}",
        secret_sha256="",
        role="provider",
        provider_id=provider_id,
        label=person.name,
        created_at=datetime.fromtimestamp(int(claims.get("iat", 0)), UTC),
    )


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
