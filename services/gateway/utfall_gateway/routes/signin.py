"""Signing in and out as a person (OpenID Connect authorization code flow with PKCE), and who one is."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from utfall_platform.oidc import IdentityProviderUnavailable
from utfall_platform.problems import Problem, problem_responses

from ..auth import Authenticated, require_csrf
from ..people import SESSION_COOKIE, SIGN_IN_COOKIE, People, SignInFailed

router = APIRouter(tags=["people"])


def configured_people(request: Request) -> People:
    people: People | None = request.app.state.people
    if people is None:
        raise Problem(404, "not-found", "People's sign-in is not configured here (UTFALL_OIDC_ISSUER).")
    return people


def _callback_url(request: Request) -> str:
    base = request.app.state.gateway.settings.public_url or str(request.base_url)
    return base.rstrip("/") + "/signin/callback"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.app.state.gateway.settings.public_url.startswith(
        "https://"
    )


PeopleDep = Annotated[People, Depends(configured_people)]


@router.get("/signin", include_in_schema=False)
async def sign_in(
    request: Request, people: PeopleDep, next: Annotated[str | None, Query(max_length=500)] = None
) -> Response:
    try:
        started = await people.begin(_callback_url(request), next)
    except IdentityProviderUnavailable:
        raise Problem(
            503, "identity-provider-unavailable", "The identity provider cannot be reached."
        ) from None
    response = RedirectResponse(started.redirect_to, status_code=303)
    # binds the sign-in to this browser: a callback with another browser's state is refused (login CSRF)
    response.set_cookie(
        SIGN_IN_COOKIE,
        started.state,
        max_age=600,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/signin",
    )
    return response


@router.get("/signin/callback", include_in_schema=False)
async def sign_in_callback(
    request: Request,
    people: PeopleDep,
    code: Annotated[str | None, Query(max_length=4000)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    if error or not code or not state:
        raise Problem(
            401, "sign-in-failed", f"The identity provider did not sign you in ({error or 'no code'})."
        )
    try:
        signed = await people.finish(
            code=code,
            state=state,
            browser_state=request.cookies.get(SIGN_IN_COOKIE),
            redirect_uri=_callback_url(request),
        )
    except SignInFailed as exc:
        raise Problem(401, "sign-in-failed", exc.reason) from None
    except IdentityProviderUnavailable:
        raise Problem(
            503, "identity-provider-unavailable", "The identity provider cannot be reached."
        ) from None
    request.state.principal = signed.principal
    response = RedirectResponse(signed.next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        signed.session_id,
        max_age=int(people.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/signin")
    return response


@router.post("/signout", include_in_schema=False)
async def sign_out(
    request: Request, people: PeopleDep, csrf_token: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    session_id = request.cookies.get(SESSION_COOKIE)
    after = (request.app.state.gateway.settings.public_url or str(request.base_url)).rstrip("/") + "/"
    if not session_id:
        return RedirectResponse(after, status_code=303)
    found = await people.sessions.get(session_id)
    if found is not None:
        await require_csrf(request, found.csrf_token)
    response = RedirectResponse(await people.sign_out(session_id, after), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


class MeOut(BaseModel):
    actor: str
    role: str
    name: str | None
    scope: dict[str, object]
    csrf_token: str | None = None


@router.get(
    "/v1/me",
    response_model=MeOut,
    summary="Who the credentials presented speak for",
    responses=problem_responses(401, 503),
)
async def me(request: Request, who: Authenticated) -> MeOut:
    csrf = None
    session_id = request.cookies.get(SESSION_COOKIE)
    people: People | None = request.app.state.people
    if who.person and session_id and people is not None and not request.headers.get("authorization"):
        found = await people.sessions.get(session_id)
        csrf = found.csrf_token if found else None
    return MeOut(actor=who.actor, role=who.role, name=who.person_name, scope=who.scope(), csrf_token=csrf)
