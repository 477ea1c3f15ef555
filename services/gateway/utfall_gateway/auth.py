"""Who is asking: a role from the API key (stored hashed, checked in constant time) or anonymous public."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request

from utfall_events.auth import ApiKeyV1
from utfall_platform.apikeys import KeyStore
from utfall_platform.problems import Problem

RoleName = Literal["public", "provider", "municipality", "finance", "operator", "assessor", "register"]


@dataclass(frozen=True, slots=True)
class Principal:
    role: RoleName
    key_id: str | None = None
    provider_id: str | None = None
    municipality_code: str | None = None
    funder: str | None = None
    contract_ids: tuple[str, ...] = ()
    register_id: str | None = None

    @property
    def is_public(self) -> bool:
        return self.role == "public"


PUBLIC = Principal("public")


def presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


async def principal(request: Request) -> Principal:
    """Anonymous requests are public; a key that is presented must be valid (401 otherwise)."""
    presented = presented_key(request)
    if not presented:
        return PUBLIC
    store: KeyStore = request.app.state.keys
    key = await store.authenticate(presented)
    if key is None:
        raise Problem(401, "unauthorized", "The API key is not valid.")
    return principal_of(key)


def principal_of(key: ApiKeyV1) -> Principal:
    """Who a valid key speaks for (a bearer header here, the providers' pages' cookie in `web/provider.py`)."""
    return Principal(
        key.role,
        key.key_id,
        key.provider_id,
        key.municipality_code,
        key.funder,
        tuple(key.contract_ids),
        key.register_id,
    )


async def authenticated(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if who.is_public:
        raise Problem(401, "unauthorized", "This endpoint needs an API key (Authorization: Bearer <key>).")
    return who


def require_roles(*roles: RoleName):  # type: ignore[no-untyped-def]
    async def dependency(who: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if who.role not in roles:
            raise Problem(403, "forbidden", f"This endpoint is for the roles: {', '.join(roles)}.")
        return who

    return dependency


Anyone = Annotated[Principal, Depends(principal)]
Authenticated = Annotated[Principal, Depends(authenticated)]
Operator = Annotated[Principal, Depends(require_roles("operator"))]
