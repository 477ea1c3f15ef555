"""Ingest's HTTP entrypoint for register holders: POST /v1/registers/extracts, as JSON or as a CSV sheet.

Module-level handlers over what `create_app` keeps in `app.state.intake`; each parses its body with
`intake.py`'s reader and hands the extract to `registers_service.take_extract` in one transaction."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from utfall_events.auth import ApiKeyV1
from utfall_events.registers import (
    RECORD_KINDS,
    RegisterCoverageDeclarationV1,
    RegisterExtractV1,
    RegisterRowReceiptV1,
)
from utfall_platform.problems import Problem, problem_responses

from .auth import authenticate
from .domain.registers import RowRejection, check_header, coverage_reasons, parse_csv
from .domain.validation import Reason, reasons_of
from .intake import Intake, csv_text, intake, media_type, parse_json, read_body
from .registers_service import take_extract


class ExtractResponse(BaseModel):
    register_id: str
    extract_id: str
    complete: bool
    coverage_published: bool
    counts: dict[str, int]
    receipts: list[RegisterRowReceiptV1]


async def require_register(request: Request) -> ApiKeyV1:
    key = await authenticate(request)
    if key.role != "register" or not key.register_id:
        raise Problem(403, "forbidden", "Only register keys may send register extracts.")
    return key


router = APIRouter(
    prefix="/v1/registers", tags=["registers"], responses=problem_responses(400, 401, 403, 409, 413, 415, 422)
)

Complete = Annotated[
    bool,
    Query(
        description="false while more parts of this extract follow: its coverage counts once it is complete"
    ),
]


def _refuse(reasons: list[Reason]) -> Problem:
    return Problem(
        422,
        "invalid-extract",
        "The extract's own fields are invalid; no row was taken.",
        errors=[r.as_dict() for r in reasons],
    )


async def _take(
    request: Request,
    key: ApiKeyV1,
    extract: RegisterExtractV1,
    complete: bool,
    pre_rejected: list[RowRejection],
) -> JSONResponse:
    ctx = intake(request)
    assert key.register_id is not None
    async with ctx.runtime.pool.acquire() as conn, conn.transaction():
        result = await take_extract(
            conn,
            key.register_id,
            extract,
            complete=complete,
            clock=ctx.runtime.clock,
            key=ctx.key,
            pre_rejected=pre_rejected,
        )
    body = ExtractResponse(
        register_id=key.register_id,
        extract_id=extract.extract_id,
        complete=complete,
        coverage_published=result.coverage_published,
        counts=result.counts,
        receipts=[RegisterRowReceiptV1.model_validate(r) for r in result.receipts],
    )
    return JSONResponse(body.model_dump(mode="json", exclude_none=True), status_code=202)


@router.post(
    "/extracts",
    status_code=202,
    response_model=ExtractResponse,
    summary="Send a register extract: JSON (RegisterExtractV1) or a CSV sheet (text/csv, the extract's fields "
    "in the query string); every row is receipted",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                # each row is checked and answered on its own: the schema of the whole is the published
                # RegisterExtractV1.json, rows are Register*RowV1.json
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def post_extract(
    request: Request,
    key: Annotated[ApiKeyV1, Depends(require_register)],
    complete: Complete = True,
    extract_id: Annotated[str | None, Query(max_length=64, description="CSV only")] = None,
    as_of: Annotated[date | None, Query(description="CSV only")] = None,
    municipalities: Annotated[
        str | None, Query(max_length=2000, description="CSV only: codes, comma-separated")
    ] = None,
    kinds: Annotated[str | None, Query(max_length=100, description="CSV only: comma-separated")] = None,
    covers_from: Annotated[date | None, Query(description="CSV only")] = None,
    covers_through: Annotated[date | None, Query(description="CSV only")] = None,
) -> JSONResponse:
    ctx: Intake = intake(request)
    content_type = media_type(request)
    body = await read_body(request, ctx.settings.max_register_body_bytes)
    today = ctx.runtime.clock.today()
    if content_type == "application/json":
        header = check_header(parse_json(body), today=today, scope_municipality=key.municipality_code)
        if not isinstance(header, RegisterExtractV1):
            raise _refuse(header)
        return await _take(request, key, header, complete, [])
    if content_type == "text/csv":
        text = csv_text(body)
        fields: dict[str, Any] = {
            "extract_id": extract_id,
            "as_of": as_of,
            "coverage": {
                "municipalities": [m.strip() for m in (municipalities or "").split(",") if m.strip()],
                "kinds": [k.strip() for k in (kinds or ",".join(RECORD_KINDS)).split(",") if k.strip()],
                "covers_from": covers_from,
                "covers_through": covers_through,
            },
            "records": [],
        }
        try:
            empty = RegisterExtractV1.model_validate(fields)
        except ValidationError as exc:
            raise _refuse(reasons_of(exc, "")) from None
        reasons = coverage_reasons(
            empty.as_of, empty.coverage, today=today, scope_municipality=key.municipality_code
        )
        if reasons:
            raise _refuse(reasons)
        rows, rejected = parse_csv(text)
        return await _take(request, key, empty.model_copy(update={"records": rows}), complete, rejected)
    raise Problem(415, "unsupported-media-type", "Send application/json (RegisterExtractV1) or text/csv.")


__all__ = ["RegisterCoverageDeclarationV1", "router"]
