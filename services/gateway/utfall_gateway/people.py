"""People's sign-in: bearer access tokens for the API, the authorization code flow with PKCE for the pages.

A session is a random id in an HttpOnly cookie; the gateway keeps its hash, the person's mapped claims and the
IdP's refresh token. Every `revalidate_seconds` a session is refreshed at the IdP: a person the IdP disabled or
signed out loses the session then (within 30 s with the default 20). A bearer token is verified by signature and
asked about by introspection at the same pace. Sessions end after `session_hours` whatever happens.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from utfall_platform.clock import Clock
from utfall_platform.oidc import ClaimNames, IdentityProvider, TokenRefused

from .domain.people import NotAPerson, person_principal
from .domain.policy import Principal
from .session_store import PendingSignIn, Session, SessionStore

SESSION_COOKIE = "utfall_session"
SIGN_IN_COOKIE = "utfall_sign_in"


class SignInFailed(Exception):
    """The sign-in could not finish; `reason` in words for the person (never a token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SignInStart:
    redirect_to: str
    state: str


@dataclass(frozen=True, slots=True)
class SignedIn:
    session_id: str
    next_path: str
    principal: Principal


def _pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def safe_next(path: str | None) -> str:
    """Where to go after signing in: a path on this site only (never another site: no open redirect)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


class People:
    def __init__(
        self,
        idp: IdentityProvider,
        sessions: SessionStore,
        clock: Clock,
        *,
        claim_names: ClaimNames,
        session_hours: float,
        revalidate_seconds: float,
    ) -> None:
        self.idp = idp
        self.sessions = sessions
        self.clock = clock
        self.claim_names = claim_names
        self.session_hours = session_hours
        self.revalidate_seconds = revalidate_seconds

    @property
    def idp_origin(self) -> str:
        """The IdP's origin (scheme, host, port): where signing in and out sends the browser."""
        parts = urlsplit(self.idp.config.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    async def from_bearer(self, token: str) -> Principal:
        """The person an access token speaks for; `TokenRefused` if it does not prove one now."""
        claims = await self.idp.verify_bearer(token)
        try:
            return person_principal(claims, self.claim_names)
        except NotAPerson as exc:
            raise TokenRefused(str(exc)) from None

    async def begin(self, redirect_uri: str, next_path: str | None) -> SignInStart:
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(24)
        await self.sessions.begin_sign_in(
            state, PendingSignIn(verifier, nonce, safe_next(next_path), self.clock.now())
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.idp.config.client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid profile",
                "state": state,
                "nonce": nonce,
                "code_challenge": _pkce_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        return SignInStart(f"{await self.idp.endpoint('authorization_endpoint')}?{query}", state)

    async def finish(
        self, *, code: str, state: str, browser_state: str | None, redirect_uri: str
    ) -> SignedIn:
        if not browser_state or not secrets.compare_digest(state, browser_state):
            raise SignInFailed("The sign-in did not start in this browser. Start again.")
        pending = await self.sessions.take_sign_in(state)
        if pending is None or self.clock.now() - pending.created_at > timedelta(minutes=10):
            raise SignInFailed("The sign-in has expired or was used already. Start again.")
        try:
            tokens = await self.idp.exchange_code(
                code, redirect_uri=redirect_uri, code_verifier=pending.code_verifier
            )
            await self.idp.verify(
                str(tokens.get("id_token", "")), audience=self.idp.config.client_id, nonce=pending.nonce
            )
            claims = await self.idp.verify_access_token(str(tokens["access_token"]))
            who = person_principal(claims, self.claim_names)
        except (TokenRefused, NotAPerson, KeyError) as exc:
            raise SignInFailed(f"The identity provider's answer was refused: {exc}") from None
        session_id = secrets.token_urlsafe(32)
        now = self.clock.now()
        await self.sessions.create(
            session_id,
            Session(
                subject=str(claims["sub"]),
                display_name=who.person_name or str(claims["sub"]),
                claims=claims,
                csrf_token=secrets.token_urlsafe(32),
                id_token=str(tokens["id_token"]),
                access_token=str(tokens["access_token"]),
                refresh_token=str(tokens.get("refresh_token", "")),
                created_at=now,
                revalidated_at=now,
                expires_at=now + timedelta(hours=self.session_hours),
            ),
        )
        return SignedIn(session_id, pending.next_path, who)

    async def session(self, session_id: str) -> tuple[Principal, Session] | None:
        """The person behind a session cookie now, refreshed at the IdP when due; None once it has ended."""
        found = await self.sessions.get(session_id)
        now = self.clock.now()
        if found is None or found.expires_at <= now:
            return None
        if (now - found.revalidated_at).total_seconds() >= self.revalidate_seconds:
            try:
                tokens = await self.idp.refresh(found.refresh_token)
                access_token = str(tokens["access_token"])
                claims = await self.idp.verify_access_token(access_token)
            except (TokenRefused, KeyError):
                await self.sessions.end(session_id)
                return None
            refresh_token = str(tokens.get("refresh_token") or found.refresh_token)
            await self.sessions.revalidated(session_id, claims, access_token, refresh_token, now)
            found = replace(
                found,
                claims=claims,
                access_token=access_token,
                refresh_token=refresh_token,
                revalidated_at=now,
            )
        try:
            return person_principal(found.claims, self.claim_names), found
        except NotAPerson:
            await self.sessions.end(session_id)
            return None

    async def sign_out(self, session_id: str, after: str) -> str:
        """End the session here and send the browser to the IdP to end it there too."""
        found = await self.sessions.get(session_id)
        await self.sessions.end(session_id)
        end = (await self.idp.metadata()).get("end_session_endpoint")
        if not end or found is None:
            return after
        return f"{end}?{urlencode({'id_token_hint': found.id_token, 'post_logout_redirect_uri': after})}"
