"""OpenID Connect for people: the identity provider's metadata, its signing keys and the checks on its tokens.

Any OIDC provider works by settings alone (`UTFALL_OIDC_ISSUER`, `…_CLIENT_ID`, `…_CLIENT_SECRET`, `…_AUDIENCE`):
its discovery document gives the endpoints, its JWKS the keys. Tokens are verified with `joserfc` (signature,
issuer, audience, expiry, not-before), never with code of our own. A signature by a key not yet in the cached
set fetches the set again (at most every `jwks_refresh_seconds`), so the IdP may rotate keys at will.

A valid token may outlive its user: a signature proves what was true when it was issued. `still_active` asks the
IdP again (RFC 7662 introspection) at most every `revalidate_seconds` per token, so a disabled user or a revoked
token stops working within that time even while the token has not expired.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import ClaimsOption

from .settings import PeopleSettings

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")


class TokenRefused(Exception):
    """A token that does not prove who is asking; `reason` says why in words (never the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IdentityProviderUnavailable(Exception):
    """The IdP could not be asked (its metadata, keys or introspection): a 503, not the caller's fault."""


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    audience: str
    revalidate_seconds: float = 20.0
    jwks_refresh_seconds: float = 30.0
    leeway_seconds: int = 30


@dataclass
class _Revalidation:
    checked_at: float
    active: bool


@dataclass
class IdentityProvider:
    """One OIDC provider, as the gateway sees it. `http` is made by `start`; `monotonic` is injectable."""

    config: OidcConfig
    transport: httpx.AsyncBaseTransport | None = None
    monotonic: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    _http: httpx.AsyncClient | None = None
    _metadata: dict[str, Any] | None = None
    _keys: KeySet | None = None
    _keys_fetched_at: float = -1e18
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _revalidated: dict[str, _Revalidation] = field(default_factory=dict)

    async def start(self) -> None:
        self._http = httpx.AsyncClient(timeout=10.0, transport=self.transport)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("the identity provider's client is not started")
        return self._http

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                answer = await self.http.get(url)
                answer.raise_for_status()
            except httpx.HTTPError as exc:
                raise IdentityProviderUnavailable(f"the identity provider's metadata: {exc}") from exc
            found: dict[str, Any] = answer.json()
            if found.get("issuer") != self.config.issuer:
                raise IdentityProviderUnavailable("the identity provider's metadata names another issuer")
            self._metadata = found
        return self._metadata

    async def endpoint(self, name: str) -> str:
        url = (await self.metadata()).get(name)
        if not isinstance(url, str):
            raise IdentityProviderUnavailable(f"the identity provider has no {name}")
        return url

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        async with self._lock:
            stale = self.monotonic() - self._keys_fetched_at >= self.config.jwks_refresh_seconds
            if self._keys is None or (refresh and stale):
                try:
                    answer = await self.http.get(await self.endpoint("jwks_uri"))
                    answer.raise_for_status()
                except httpx.HTTPError as exc:
                    raise IdentityProviderUnavailable(f"the identity provider's keys: {exc}") from exc
                usable = [k for k in answer.json().get("keys", []) if k.get("use", "sig") == "sig"]
                self._keys = KeySet.import_key_set({"keys": usable})
                self._keys_fetched_at = self.monotonic()
            return self._keys

    async def verify(
        self, token: str, *, audience: str | None = None, nonce: str | None = None
    ) -> dict[str, Any]:
        """The token's claims, once its signature, issuer, audience and times hold; else `TokenRefused`."""
        keys = await self._key_set()
        try:
            decoded = jwt.decode(token, keys, algorithms=list(ALGORITHMS))
        except JoseError as exc:
            if "kid" not in str(exc).lower() and not isinstance(exc, _missing_key_errors()):
                raise TokenRefused(_why(exc)) from None
            try:  # a key the IdP added since we last looked
                decoded = jwt.decode(token, await self._key_set(refresh=True), algorithms=list(ALGORITHMS))
            except JoseError as again:
                raise TokenRefused(_why(again)) from None
        except ValueError:
            raise TokenRefused("the token is not a signed JWT") from None
        claims = dict(decoded.claims)
        options: dict[str, ClaimsOption] = {
            "iss": {"essential": True, "value": self.config.issuer},
            "aud": {"essential": True, "value": audience or self.config.audience},
            "exp": {"essential": True},
            "sub": {"essential": True},
        }
        if nonce is not None:
            options["nonce"] = {"essential": True, "value": nonce}
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self.wall_clock()), leeway=self.config.leeway_seconds, **options
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise TokenRefused(_why(exc)) from None
        return claims

    async def verify_access_token(self, token: str) -> dict[str, Any]:
        """An access token for this API: verified, and not an ID token presented in its place."""
        claims = await self.verify(token)
        if claims.get("typ") not in (None, "Bearer", "at+jwt"):
            raise TokenRefused(f"the token is an {claims.get('typ')} token, not an access token")
        return claims

    async def verify_bearer(self, token: str) -> dict[str, Any]:
        """A bearer token's claims: verified, an access token, and one the IdP still stands by now."""
        claims = await self.verify_access_token(token)
        if not await self.still_active(token):
            raise TokenRefused(
                "the identity provider no longer stands by this token (signed out or disabled)"
            )
        return claims

    async def still_active(self, token: str) -> bool:
        """Whether the IdP still stands by the token (RFC 7662), asked at most every `revalidate_seconds`."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = self.monotonic()
        known = self._revalidated.get(digest)
        if known is not None and now - known.checked_at < self.config.revalidate_seconds:
            return known.active
        try:
            answer = await self.http.post(
                await self.endpoint("introspection_endpoint"),
                data={"token": token, "token_type_hint": "access_token"},
                auth=(self.config.client_id, self.config.client_secret),
            )
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            raise IdentityProviderUnavailable(f"the identity provider's introspection: {exc}") from exc
        active = bool(answer.json().get("active"))
        if len(self._revalidated) > 50_000:  # tokens seen once; the oldest go first
            for stale in sorted(self._revalidated, key=lambda d: self._revalidated[d].checked_at)[:25_000]:
                del self._revalidated[stale]
        self._revalidated[digest] = _Revalidation(now, active)
        return active

    async def exchange_code(self, code: str, *, redirect_uri: str, code_verifier: str) -> Mapping[str, Any]:
        """The authorization code flow's last step (with PKCE): the IdP's tokens for the code."""
        return await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> Mapping[str, Any]:
        """New tokens for a session; `TokenRefused` once the IdP ended it (signed out, user disabled, expired)."""
        return await self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def _token_request(self, form: dict[str, str]) -> Mapping[str, Any]:
        try:
            answer = await self.http.post(
                await self.endpoint("token_endpoint"),
                data=form,
                auth=(self.config.client_id, self.config.client_secret),
            )
        except httpx.HTTPError as exc:
            raise IdentityProviderUnavailable(f"the identity provider's token endpoint: {exc}") from exc
        if answer.status_code in (400, 401):
            error = answer.json().get("error", "invalid_grant") if answer.content else "invalid_grant"
            raise TokenRefused(f"the identity provider refused: {error}")
        if answer.status_code != 200:
            raise IdentityProviderUnavailable(
                f"the identity provider's token endpoint answered {answer.status_code}"
            )
        tokens: Mapping[str, Any] = answer.json()
        return tokens


def _missing_key_errors() -> tuple[type[Exception], ...]:
    from joserfc.errors import InvalidKeyIdError, MissingKeyError

    return (MissingKeyError, InvalidKeyIdError)


def _why(exc: JoseError) -> str:
    """A refusal in words: which check failed (joserfc's error names it), never the token."""
    from joserfc.errors import (
        BadSignatureError,
        ExpiredTokenError,
        InvalidClaimError,
        MissingClaimError,
    )

    if isinstance(exc, BadSignatureError):
        return "the token's signature does not verify"
    if isinstance(exc, ExpiredTokenError):
        return "the token has expired"
    if isinstance(exc, InvalidClaimError | MissingClaimError):
        return f"the token's claims do not hold: {exc.description or exc.error}"
    return f"the token is not valid: {exc.error}"


def looks_like_jwt(presented: str) -> bool:
    """A compact JWS (three base64url parts); API keys have no dots."""
    return presented.count(".") == 2


@dataclass(frozen=True, slots=True)
class ClaimNames:
    """The one place where token claims are named: the role and the scope a person acts in. Settings
    (`UTFALL_OIDC_CLAIM_NAMES`, JSON) rename them for an IdP that carries them under other names."""

    role: str = "utfall_role"
    provider_id: str = "provider_id"
    municipality_code: str = "municipality_code"
    funder: str = "funder"
    contract_ids: str = "contract_ids"
    display_name: str = "name"

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, str]) -> ClaimNames:
        unknown = set(overrides) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown claim names: {', '.join(sorted(unknown))}")
        return cls(**overrides)

    def text(self, claims: Mapping[str, Any], name: str) -> str | None:
        value = claims.get(name)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        return value if isinstance(value, str) and value else None

    def display(self, claims: Mapping[str, Any]) -> str:
        return (
            self.text(claims, self.display_name)
            or self.text(claims, "preferred_username")
            or str(claims["sub"])
        )


def identity_provider(settings: PeopleSettings) -> IdentityProvider | None:
    """The IdP the settings name, or None when people's sign-in is off."""
    if not settings.oidc_issuer:
        return None
    return IdentityProvider(
        OidcConfig(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret.get_secret_value(),
            audience=settings.oidc_audience,
            revalidate_seconds=settings.oidc_revalidate_seconds,
            leeway_seconds=settings.oidc_leeway_seconds,
        )
    )
