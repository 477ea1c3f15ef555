"""The providers' side of the platform on the web, for a provider without an IT department: its staff sign in as
themselves (OpenID Connect, `/signin`) or with the provider's API key, upload aggregated figures as CSV (with a
template, and every row's receipt in words), see its own exact figures beside the national reference, preview
what the next release will publish of it, and send a factual correction that operators see before they publish
(a right of reply). Uploads and comments record the person who sent them.

A key's session is the key itself in an HttpOnly, SameSite=Strict cookie scoped to /provider, checked against
the key store on every request (a revoked key signs out at once). A person's session is the gateway's session
cookie (`people.py`). Every form carries a CSRF token: the person's session's, or for a key one derived from
the key (which no other site can read); the sign-in form a token bound to a cookie (double submit)."""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from utfall_events.aggregates import CSV_COLUMNS
from utfall_events.catalogue import VERIFIABLE_MEASURE_IDS
from utfall_events.releases import ReleaseCommentV1
from utfall_platform.apikeys import KeyStore
from utfall_platform.problems import Problem

from ..domain.agreement import VerifiedRow, agreement, disagreements
from ..domain.policy import Principal, principal_of, uses_provider_pages
from ..domain.results import in_measure_words
from ..people import SESSION_COOKIE, People
from ..providers import display_name
from ..readmodel import registers as registers_read
from ..readmodel import results as results_read
from ..release_service import preview
from ..release_store import ReleaseStore
from ..results_service import comparison
from ..routes.commands import person_of
from ..state import gateway_state
from .messages import labels
from .rendering import html_page, templates

router = APIRouter(prefix="/provider", include_in_schema=False)
COOKIE = "utfall_provider"
LOGIN_CSRF_COOKIE = "utfall_provider_form"
CsrfField = Annotated[str, Form(max_length=200)]
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
Lang = Annotated[str, Query(pattern="^(sv|en)$")]


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who is on the provider's pages: the principal, the CSRF token its forms carry, and the credential an
    upload is sent to ingest with (the key, or the person's access token)."""

    who: Principal
    csrf_token: str
    credential: str


async def signed_in(request: Request) -> SignedIn | None:
    """The provider's person or key behind the cookies, checked now; None if there is none."""
    found = await _signed_in(request)
    if found is not None:
        request.state.principal = found.who  # the audit trail's record of who asked
    return found


async def _signed_in(request: Request) -> SignedIn | None:
    people: People | None = request.app.state.people
    session_id = request.cookies.get(SESSION_COOKIE)
    if people is not None and session_id:
        found = await people.session(session_id)
        if found is not None and found[0].role == "provider" and found[0].provider_id:
            return SignedIn(found[0], found[1].csrf_token, found[1].access_token)
    presented = request.cookies.get(COOKIE)
    if not presented:
        return None
    store: KeyStore = request.app.state.keys
    key = await store.authenticate(presented)
    if key is None or not uses_provider_pages(key):
        return None
    return SignedIn(principal_of(key), _key_csrf(presented), presented)


def _key_csrf(key: str) -> str:
    return hashlib.sha256(f"utfall-provider-form:{key}".encode()).hexdigest()


def _form_checked(signed: SignedIn, sent: str) -> None:
    if not secrets.compare_digest(sent, signed.csrf_token):
        raise Problem(403, "csrf", "This form lacks its CSRF token; reload the page and send again.")


def _html(request: Request, body: str, status: int = 200) -> HTMLResponse:
    people: People | None = request.app.state.people
    return html_page(body, status, private=True, forms_to=people.idp_origin if people else None)


def _login(request: Request, lang: str, *, failed: bool = False) -> HTMLResponse:
    t = labels("provider", lang)
    token = secrets.token_urlsafe(24)
    html = templates.get_template("provider_login.html").render(
        t=t,
        lang=lang,
        other_lang=_other(lang),
        failed=failed,
        csrf_token=token,
        people=request.app.state.people is not None,
    )
    response = _html(request, html, 401 if failed else 200)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/provider",
    )
    return response


def _other(lang: str) -> str:
    return "en" if lang == "sv" else "sv"


@router.get("", response_class=HTMLResponse)
async def home(request: Request, lang: Lang = "sv", commented: str | None = None) -> Response:
    signed = await signed_in(request)
    if signed is None:
        return _login(request, lang)
    return await _dashboard(request, signed, lang, commented=commented)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    key: Annotated[str, Form(max_length=200)],
    csrf_token: CsrfField = "",
    lang: Lang = "sv",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(csrf_token, expected):
        raise Problem(
            403, "csrf", "This sign-in form lacks its CSRF token; reload the page and sign in again."
        )
    store: KeyStore = request.app.state.keys
    found = await store.authenticate(key.strip())
    if found is None or not uses_provider_pages(found):
        return _login(request, lang, failed=True)
    response = RedirectResponse(f"/provider?lang={lang}", status_code=303)
    response.set_cookie(
        COOKIE,
        key.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/provider",
        max_age=8 * 3600,
    )
    return response


@router.post("/logout")
async def logout(request: Request, csrf_token: CsrfField = "", lang: Lang = "sv") -> Response:
    signed = await signed_in(request)
    if signed is not None:
        _form_checked(signed, csrf_token)
    response = RedirectResponse(f"/provider?lang={lang}", status_code=303)
    response.delete_cookie(COOKIE, path="/provider")
    return response


@router.get("/template.csv")
async def template(request: Request) -> Response:
    """The CSV template: the columns ingest reads, and one example row for the signed-in provider."""
    signed = await signed_in(request)
    provider = signed.who.provider_id if signed else "your-provider-id"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    example = {
        "provider_id": provider,
        "measure_id": "planned_discharge",
        "measure_version": 1,
        "period": "2025",
        "target_group": "behaviour",
        "numerator": 31,
        "denominator": 40,
        "missing": 2,
        "method": "journalgenomgång",
    }
    writer.writerow([example.get(c, "") for c in CSV_COLUMNS])
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="utfall-aggregat-mall.csv"'},
    )


@router.post("/upload", response_class=HTMLResponse)
async def upload(
    request: Request, file: Annotated[UploadFile, File()], csrf_token: CsrfField = "", lang: Lang = "sv"
) -> Response:
    """The sheet goes to ingest's `POST /v1/aggregates` as the provider, with the key or the person's access
    token (ingest validates and receipts it, recording who sent it); the receipts come back in words."""
    signed = await signed_in(request)
    if signed is None:
        return _login(request, lang)
    _form_checked(signed, csrf_token)
    body = await file.read(MAX_UPLOAD_BYTES + 1)
    t = labels("provider", lang)
    if len(body) > MAX_UPLOAD_BYTES:
        return await _dashboard(request, signed, lang, sheet_error=t["whole_sheet"].format(detail="> 2 MB"))
    gw = gateway_state(request)
    async with httpx.AsyncClient(base_url=gw.settings.ingest_url, timeout=60) as http:
        answer = await http.post(
            "/v1/aggregates",
            content=body,
            headers={"content-type": "text/csv", "authorization": f"Bearer {signed.credential}"},
        )
    if answer.status_code != 202:
        problem = answer.json() if answer.headers.get("content-type", "").endswith("json") else {}
        detail = problem.get("detail", answer.reason_phrase)
        errors = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in problem.get("errors", []))
        return await _dashboard(
            request, signed, lang, sheet_error=t["whole_sheet"].format(detail=f"{detail} {errors}".strip())
        )
    receipts = [_in_words(r, t) for r in answer.json()["receipts"]]
    return await _dashboard(request, signed, lang, receipts=receipts)


def _in_words(receipt: dict[str, Any], t: dict[str, str]) -> dict[str, Any]:
    """One receipt as a sentence. Sheet rows are numbered as a spreadsheet shows them (the header is row 1)."""
    row = int(receipt["row"]) + 1
    status = receipt["status"]
    if status == "rejected":
        reasons = " ".join(
            f"{r.get('field', '')}: {r.get('message', '')}." for r in receipt.get("reasons", [])
        )
        text = t["rejected"].format(row=row, reasons=reasons)
    else:
        text = t[status].format(row=row, version=receipt.get("version"), key=receipt.get("submission_key"))
    return {"row": row, "status": status, "text": text}


@router.post("/comments", response_class=HTMLResponse)
async def comment(
    request: Request,
    text: Annotated[str, Form(max_length=4000)],
    measure_id: Annotated[str, Form(max_length=64)] = "",
    csrf_token: CsrfField = "",
    lang: Lang = "sv",
) -> Response:
    signed = await signed_in(request)
    if signed is None:
        return _login(request, lang)
    _form_checked(signed, csrf_token)
    who = signed.who
    assert who.provider_id is not None
    gw = gateway_state(request)
    store: ReleaseStore = request.app.state.releases
    latest = store.latest()
    try:
        record = ReleaseCommentV1(
            comment_id=str(uuid.uuid4()),
            provider_id=who.provider_id,
            key_id=who.key_id or who.actor,
            person=person_of(who),
            measure_id=measure_id or None,
            after_release=latest.release if latest else None,
            text=text.strip(),
            created_at=gw.clock.now(),
        )
    except ValidationError as exc:
        why = "; ".join(str(e["msg"]) for e in exc.errors(include_input=False))  # never echoes the text
        return await _dashboard(
            request, signed, lang, comment_error=labels("provider", lang)["comment_refused"].format(why=why)
        )
    await store.publish([(store.comment_key(record.comment_id), record)])
    return RedirectResponse(f"/provider?lang={lang}&commented=1", status_code=303)


async def _dashboard(
    request: Request,
    signed: SignedIn,
    lang: str,
    *,
    receipts: list[dict[str, Any]] | None = None,
    sheet_error: str | None = None,
    comment_error: str | None = None,
    commented: str | None = None,
) -> HTMLResponse:
    who = signed.who
    assert who.provider_id is not None
    gw = gateway_state(request)
    store: ReleaseStore = request.app.state.releases
    titles = {r["id"]: r[f"title_{lang}"] for r in await results_read.current_measure_titles(gw.pool)}
    own = []
    for measure_id, title in titles.items():
        data = await comparison(gw, measure_id, year=None, filters={}, principal=who)
        data = in_measure_words(measure_id, data)
        mine = [p for p in data["providers"] if p["provider_id"] == who.provider_id]
        own.append({"measure_id": measure_id, "title": title, "rows": mine, "national": data["total"]})
    next_release = await preview(gw, store, who.provider_id)
    verified = []
    for measure_id in VERIFIABLE_MEASURE_IDS:
        rows = [
            VerifiedRow.of(r)
            for r in await registers_read.verified_facts(
                gw.pool, measure_id, provider_id=who.provider_id, year=None
            )
        ]
        if rows:
            verified.append(
                {
                    "measure_id": measure_id,
                    "title": titles.get(measure_id, measure_id),
                    "agreement": agreement(who.provider_id, rows),
                    "disagreements": disagreements(rows),
                }
            )
    html = templates.get_template("provider.html").render(
        t=labels("provider", lang),
        lang=lang,
        other_lang=_other(lang),
        provider_id=who.provider_id,
        name=display_name(request.app.state.providers, who.provider_id),
        person=who.person_name,
        csrf_token=signed.csrf_token,
        own=own,
        titles=titles,
        preview=next_release,
        verified=verified,
        receipts=receipts,
        sheet_error=sheet_error,
        comment_error=comment_error,
        commented=bool(commented),
        comments=store.comments(who.provider_id),
    )
    return _html(request, html, 422 if (sheet_error or comment_error) else 200)
