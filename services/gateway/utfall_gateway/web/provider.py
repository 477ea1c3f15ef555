"""The providers' side of the platform on the web, for a provider without an IT department: sign in with the
provider's API key, upload aggregated figures as CSV (with a template, and every row's receipt in words), see
its own exact figures beside the national reference, preview what the next release will publish of it, and
send a factual correction that operators see before they publish (a right of reply).

The session is the key itself in an HttpOnly, SameSite=Strict cookie scoped to /provider: checked against the
key store on every request (a revoked key signs out at once), never readable by script, and never sent with a
request another site starts (so no form elsewhere can post here in the provider's name)."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from utfall_events.aggregates import CSV_COLUMNS
from utfall_events.catalogue import VERIFIABLE_MEASURE_IDS
from utfall_events.releases import ReleaseCommentV1
from utfall_platform.apikeys import KeyStore

from ..domain.agreement import VerifiedRow, agreement, disagreements
from ..domain.policy import Principal, principal_of, uses_provider_pages
from ..domain.results import in_measure_words
from ..providers import display_name
from ..readmodel import registers as registers_read
from ..readmodel import results as results_read
from ..release_service import preview
from ..release_store import ReleaseStore
from ..results_service import comparison
from ..state import gateway_state
from .messages import labels
from .rendering import html_page, templates

router = APIRouter(prefix="/provider", include_in_schema=False)
COOKIE = "utfall_provider"
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
Lang = Annotated[str, Query(pattern="^(sv|en)$")]


async def signed_in(request: Request) -> Principal | None:
    """The provider behind the session cookie, checked against the key store now; None if there is none."""
    presented = request.cookies.get(COOKIE)
    if not presented:
        return None
    store: KeyStore = request.app.state.keys
    key = await store.authenticate(presented)
    if key is None or not uses_provider_pages(key):
        return None
    return principal_of(key)


def _html(body: str, status: int = 200) -> HTMLResponse:
    return html_page(body, status, private=True)


def _login(lang: str, *, failed: bool = False) -> HTMLResponse:
    t = labels("provider", lang)
    html = templates.get_template("provider_login.html").render(
        t=t, lang=lang, other_lang=_other(lang), failed=failed
    )
    return _html(html, 401 if failed else 200)


def _other(lang: str) -> str:
    return "en" if lang == "sv" else "sv"


@router.get("", response_class=HTMLResponse)
async def home(request: Request, lang: Lang = "sv", commented: str | None = None) -> Response:
    who = await signed_in(request)
    if who is None:
        return _login(lang)
    return await _dashboard(request, who, lang, commented=commented)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, key: Annotated[str, Form(max_length=200)], lang: Lang = "sv") -> Response:
    store: KeyStore = request.app.state.keys
    found = await store.authenticate(key.strip())
    if found is None or not uses_provider_pages(found):
        return _login(lang, failed=True)
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
async def logout(lang: Lang = "sv") -> Response:
    response = RedirectResponse(f"/provider?lang={lang}", status_code=303)
    response.delete_cookie(COOKIE, path="/provider")
    return response


@router.get("/template.csv")
async def template(request: Request) -> Response:
    """The CSV template: the columns ingest reads, and one example row for the signed-in provider."""
    who = await signed_in(request)
    provider = who.provider_id if who else "your-provider-id"
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
async def upload(request: Request, file: Annotated[UploadFile, File()], lang: Lang = "sv") -> Response:
    """The sheet goes to ingest's `POST /v1/aggregates` as the provider (ingest validates and receipts it);
    the receipts come back in words."""
    who = await signed_in(request)
    if who is None:
        return _login(lang)
    body = await file.read(MAX_UPLOAD_BYTES + 1)
    t = labels("provider", lang)
    if len(body) > MAX_UPLOAD_BYTES:
        return await _dashboard(request, who, lang, sheet_error=t["whole_sheet"].format(detail="> 2 MB"))
    gw = gateway_state(request)
    async with httpx.AsyncClient(base_url=gw.settings.ingest_url, timeout=60) as http:
        answer = await http.post(
            "/v1/aggregates",
            content=body,
            headers={"content-type": "text/csv", "authorization": f"Bearer {request.cookies[COOKIE]}"},
        )
    if answer.status_code != 202:
        problem = answer.json() if answer.headers.get("content-type", "").endswith("json") else {}
        detail = problem.get("detail", answer.reason_phrase)
        errors = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in problem.get("errors", []))
        return await _dashboard(
            request, who, lang, sheet_error=t["whole_sheet"].format(detail=f"{detail} {errors}".strip())
        )
    receipts = [_in_words(r, t) for r in answer.json()["receipts"]]
    return await _dashboard(request, who, lang, receipts=receipts)


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
    lang: Lang = "sv",
) -> Response:
    who = await signed_in(request)
    if who is None:
        return _login(lang)
    assert who.provider_id is not None
    gw = gateway_state(request)
    store: ReleaseStore = request.app.state.releases
    latest = store.latest()
    try:
        record = ReleaseCommentV1(
            comment_id=str(uuid.uuid4()),
            provider_id=who.provider_id,
            key_id=who.key_id or "",
            measure_id=measure_id or None,
            after_release=latest.release if latest else None,
            text=text.strip(),
            created_at=gw.clock.now(),
        )
    except ValidationError as exc:
        why = "; ".join(str(e["msg"]) for e in exc.errors(include_input=False))  # never echoes the text
        return await _dashboard(
            request, who, lang, comment_error=labels("provider", lang)["comment_refused"].format(why=why)
        )
    await store.publish([(store.comment_key(record.comment_id), record)])
    return RedirectResponse(f"/provider?lang={lang}&commented=1", status_code=303)


async def _dashboard(
    request: Request,
    who: Principal,
    lang: str,
    *,
    receipts: list[dict[str, Any]] | None = None,
    sheet_error: str | None = None,
    comment_error: str | None = None,
    commented: str | None = None,
) -> HTMLResponse:
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
    return _html(html, 422 if (sheet_error or comment_error) else 200)
