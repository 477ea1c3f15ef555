"""The audit trail for operators: who read which exact data and who acted, filtered, paged and exported."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from utfall_events.care import IsoDateTime
from utfall_platform.problems import Problem, problem_responses

from .. import audit_store
from ..audit_trail import entry_out
from ..auth import Operator
from ..pagination import decode_cursor, encode_cursor
from ..state import gateway_state
from ..web.messages import labels
from ..web.rendering import html_page, templates

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=problem_responses(400, 401, 403, 422))


class AuditEntryOut(BaseModel):
    chain: str = Field(description="the gateway instance that wrote it")
    seq: int
    at: datetime
    actor: str = Field(description="person:<subject>, key:<key id>, or unauthenticated")
    actor_name: str | None
    role: str
    scope: dict[str, Any]
    method: str
    route: str
    path: str
    contract_id: str | None
    provider_id: str | None
    period: str | None
    rows: int | None
    client: str | None
    outcome: int = Field(description="the HTTP status answered")
    hash: str


class AuditPageOut(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None


Text = Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$")]


# empty is no bound: the page's filter form sends every field, filled in or not
Instant = Annotated[IsoDateTime | Literal[""] | None, Query()]


def matching(
    actor: Text = None,
    provider_id: Text = None,
    contract_id: Text = None,
    since: Instant = None,
    until: Instant = None,
) -> audit_store.AuditFilter:
    """Which entries: by actor (person:<subject> or key:<id>), provider, contract and time (since ≤ at < until);
    a field left empty does not filter."""
    return audit_store.AuditFilter(
        actor or None, provider_id or None, contract_id or None, since or None, until or None
    )


Matching = Annotated[audit_store.AuditFilter, Depends(matching)]


@router.get(
    "",
    response_model=AuditPageOut,
    summary="Audit trail entries, oldest first (operators); format=html is its page",
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
async def list_entries(
    request: Request,
    who: Operator,
    filters: Matching,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    format: Annotated[Literal["json", "html"], Query()] = "json",
    lang: Annotated[Literal["sv", "en"], Query()] = "sv",
) -> AuditPageOut | Response:
    after = None
    if cursor:
        found = decode_cursor(cursor)
        try:
            after = (datetime.fromisoformat(str(found["at"])), str(found["chain"]), int(str(found["seq"])))
        except (KeyError, ValueError):
            raise Problem(400, "invalid-cursor", "The cursor is not one this API gave out.") from None
    page = await audit_store.entries(gateway_state(request).pool, filters, limit=limit, after=after)
    next_cursor = None
    if len(page) == limit:
        last = page[-1]
        next_cursor = encode_cursor({"at": last.facts.at.isoformat(), "chain": last.chain, "seq": last.seq})
    answer = AuditPageOut(items=[AuditEntryOut(**entry_out(e)) for e in page], next_cursor=next_cursor)
    if format == "json":
        return answer
    return audit_page(answer, filters, limit=limit, lang=lang)


def audit_page(answer: AuditPageOut, filters: audit_store.AuditFilter, *, limit: int, lang: str) -> Response:
    """The operators' page: the filters as a form, a page of entries, the next page and the exports."""
    chosen = {
        "actor": filters.actor,
        "provider_id": filters.provider_id,
        "contract_id": filters.contract_id,
        "since": filters.since.isoformat() if filters.since else None,
        "until": filters.until.isoformat() if filters.until else None,
    }
    kept = {k: v for k, v in chosen.items() if v}
    html = templates.get_template("audit.html").render(
        t=labels("audit", lang),
        lang=lang,
        other_lang="en" if lang == "sv" else "sv",
        entries=answer.items,
        chosen=chosen,
        limit=limit,
        here=urlencode({**kept, "format": "html", "limit": limit}),
        next_page=(
            urlencode({**kept, "format": "html", "lang": lang, "limit": limit, "cursor": answer.next_cursor})
            if answer.next_cursor
            else None
        ),
        export=urlencode(kept),
    )
    return html_page(html, private=True)


@router.get(
    "/export",
    summary="Every matching entry as NDJSON or CSV (operators)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}}}},
)
async def export(
    request: Request,
    who: Operator,
    filters: Matching,
    format: Literal["ndjson", "csv"] = "ndjson",
) -> StreamingResponse:
    pool = gateway_state(request).pool
    columns = list(AuditEntryOut.model_fields)

    async def lines() -> AsyncIterator[bytes]:
        if format == "csv":
            import csv
            import io

            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            async for entry in audit_store.stream(pool, filters):
                out = entry_out(entry)
                writer.writerow(
                    {**out, "scope": orjson.dumps(out["scope"]).decode(), "at": out["at"].isoformat()}
                )
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
            yield buffer.getvalue().encode()
            return
        async for entry in audit_store.stream(pool, filters):
            yield orjson.dumps(entry_out(entry)) + b"\n"

    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        lines(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="utfall-audit.{format}"'},
    )
