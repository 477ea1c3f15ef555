"""Token claims become a role and a scope in one place; a token without a person's role or its scope is refused;
the IdP's tokens are checked by signature, issuer, audience, expiry and key (joserfc, against a JWKS)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from utfall_gateway.domain.people import NotAPerson, person_principal
from utfall_platform.oidc import ClaimNames, IdentityProvider, OidcConfig, TokenRefused

ISSUER = "https://idp.example/realms/utfall"


def claims(**more: Any) -> dict[str, Any]:
    return {"sub": "s-1", "name": "Vera Lind", **more}


@pytest.mark.parametrize(
    ("given", "role", "scope"),
    [
        (claims(utfall_role="provider", provider_id="hvb-eken"), "provider", {"provider_id": "hvb-eken"}),
        (
            claims(utfall_role="municipality", municipality_code="0180"),
            "municipality",
            {"municipality_code": "0180"},
        ),
        (claims(utfall_role="finance", funder="f"), "finance", {"funder": "f"}),
        (claims(utfall_role="assessor", contract_ids=["a", "b"]), "assessor", {"contract_ids": ["a", "b"]}),
        (claims(utfall_role="operator"), "operator", {}),
        # a scope that belongs to another role is not taken
        (claims(utfall_role="operator", provider_id="hvb-eken"), "operator", {}),
    ],
)
def test_a_persons_role_and_scope_come_from_the_claims(
    given: dict[str, Any], role: str, scope: dict[str, Any]
) -> None:
    who = person_principal(given)
    assert who.role == role and who.scope() == scope
    assert who.actor == "person:s-1" and who.person_name == "Vera Lind" and who.key_id is None


@pytest.mark.parametrize(
    "given",
    [
        claims(),
        claims(utfall_role="register", provider_id="x"),
        claims(utfall_role="public"),
        claims(utfall_role="provider"),
        claims(utfall_role="municipality"),
        claims(utfall_role="assessor", contract_ids=[]),
    ],
)
def test_no_role_or_no_scope_is_no_person(given: dict[str, Any]) -> None:
    with pytest.raises(NotAPerson):
        person_principal(given)


def test_claim_names_are_settings() -> None:
    names = ClaimNames.with_overrides({"role": "groups", "provider_id": "org"})
    who = person_principal({"sub": "s", "groups": ["provider"], "org": "hvb-eken"}, names)
    assert who.role == "provider" and who.provider_id == "hvb-eken" and who.person_name == "s"
    with pytest.raises(ValueError, match="unknown"):
        ClaimNames.with_overrides({"rol": "x"})


def _idp(keys: list[RSAKey], now: float) -> IdentityProvider:
    jwks = KeySet(keys).as_dict(private=False)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/certs"})
        if request.url.path.endswith("/certs"):
            return httpx.Response(200, json=jwks)
        return httpx.Response(404)

    config = OidcConfig(ISSUER, "utfall-gateway", "secret", "utfall-gateway", leeway_seconds=0)
    return IdentityProvider(config, transport=httpx.MockTransport(answer), wall_clock=lambda: now)


def test_tokens_are_checked_by_signature_issuer_audience_expiry_and_kind() -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
    now = time.time()
    good = {"iss": ISSUER, "aud": "utfall-gateway", "sub": "s", "exp": int(now) + 60, "typ": "Bearer"}

    def sign(payload: dict[str, Any], with_key: RSAKey = key) -> str:
        return jwt.encode({"alg": "RS256", "kid": "k1"}, payload, with_key)

    async def run() -> None:
        idp = _idp([key], now)
        await idp.start()
        try:
            assert (await idp.verify_access_token(sign(good)))["sub"] == "s"
            cases = {
                "signature": sign(good, stranger),
                "iss": sign({**good, "iss": "https://other.example"}),
                "aud": sign({**good, "aud": "another-client"}),
                "expired": sign({**good, "exp": int(now) - 1}),
                "ID token": sign({**good, "typ": "ID"}),
                "sub": sign({k: v for k, v in good.items() if k != "sub"}),
            }
            for says, token in cases.items():
                with pytest.raises(TokenRefused) as refused:
                    await idp.verify_access_token(token)
                assert says in refused.value.reason, (says, refused.value.reason)
            with pytest.raises(TokenRefused):
                await idp.verify_access_token("not.a.jwt")
        finally:
            await idp.close()

    asyncio.run(run())
