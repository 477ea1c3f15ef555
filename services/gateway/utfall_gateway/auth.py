"""Who is asking: a person (an OIDC access token, or a session cookie from signing in on the pages), a machine
(an API key, stored hashed, checked in constant time) or the anonymous public; and the policy's answers
(`domain/policy.py`) enforced as 403 problem details.

A request that a session cookie authenticates and that may change state must carry the session's CSRF token
(the `X-CSRF-Token` header, or the `csrf_token` field of a form): a cookie alone never acts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request

from utfall_platform.apikeys import KeyStore
from utfall_platform.oidc import IdentityProviderUnavailable, TokenRefused, looks_like_jwt
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
    """Anonymous requests are public; credentials that are presented must be valid (401 otherwise)."""
    who = await _who(request)
    request.state.principal = who  # the audit trail's record of who asked
    return who


async def _who(request: Request) -> Principal:
    from .people import SESSION_COOKIE, People

    people: People | None = request.app.state.people
    presented = presented_key(request)
    if presented and looks_like_jwt(presented):
        if people is None:
            raise Problem(401, "unauthorized", "People's sign-in is not configured here; use an API key.")
        try:
            return await people.from_bearer(presented)
        except TokenRefused as exc:
            raise Problem(401, "unauthorized", f"The access token is refused: {exc.reason}.") from None
        except IdentityProviderUnavailable:
            raise Problem(
                503, "identity-provider-unavailable", "The identity provider cannot be reached."
            ) from None
    if presented:
        store: KeyStore = request.app.state.keys
        key = await store.authenticate(presented)
        if key is None:
            raise Problem(401, "unauthorized", "The API key is not valid.")
        return principal_of(key)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id and people is not None:
        try:
            found = await people.session(session_id)
        except IdentityProviderUnavailable:
            raise Problem(
                503, "identity-provider-unavailable", "The identity provider cannot be reached."
            ) from None
        if found is None:
            return PUBLIC  # the session ended: the pages show what the public sees, with a sign-in link
        who, session = found
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            await require_csrf(request, session.csrf_token)
        return who
    return PUBLIC


async def require_csrf(request: Request, expected: str) -> None:
    import secrets

    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = str((await request.form()).get("csrf_token") or "") or None
    if not sent or not secrets.compare_digest(sent, expected):
        raise Problem(
            403,
            "csrf",
            "This form or request lacks the session's CSRF token; reload the page and send again.",
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
