"""Who is asking: a role from the API key (stored hashed, checked in constant time) or anonymous public; and
the policy's answers (`domain/policy.py`) enforced as 403 problem details."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request

from utfall_platform.apikeys import KeyStore
from utfall_platform.problems import Problem

from .domain.policy import (
    PUBLIC,
    ContractAct,
    ContractParties,
    Principal,
    RoleName,
    contract_refusal,
    principal_of,
)


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


def forbid_unless(allowed: bool, detail: str) -> None:
    """The policy's answer (`domain/policy.py`) as HTTP: 403 problem details saying why."""
    if not allowed:
        raise Problem(403, "forbidden", detail)


def authorize_contract(who: Principal, contract: Mapping[str, Any], act: ContractAct | None = None) -> None:
    """403 unless the reader is party to the contract (and may do `act` on it)."""
    refusal = contract_refusal(who, ContractParties.of(contract), act)
    if refusal is not None:
        raise Problem(403, "forbidden", refusal)


Anyone = Annotated[Principal, Depends(principal)]
Authenticated = Annotated[Principal, Depends(authenticated)]
Operator = Annotated[Principal, Depends(require_roles("operator"))]

__all__ = [
    "PUBLIC",
    "Anyone",
    "Authenticated",
    "Operator",
    "Principal",
    "RoleName",
    "authorize_contract",
    "forbid_unless",
    "principal",
    "principal_of",
    "require_roles",
]
