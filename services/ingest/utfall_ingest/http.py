"""Ingest's HTTP entrypoints for providers: care events (POST /v1/events, single, batch or binary mode) and
their receipts, aggregated figures, and the published contract (JSON Schemas, sealing keys, AsyncAPI).
Module-level handlers over what `create_app` keeps in `app.state.intake`; each parses its body with
`intake.py`'s reader and hands it to a service function in one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from utfall_events.auth import ApiKeyV1
from utfall_events.cloudevents import BATCH_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE
from utfall_events.schemas import load_schema, schema_names
from utfall_platform.problems import Problem, problem_responses

from . import aggregate_store, store
from .admission_service import admit
from .aggregates_service import submit
from .auth import require_provider
from .domain.aggregates import RowRejection, parse_csv
from .intake import Intake, csv_text, intake, media_type, parse_json, read_body


class ReceiptOut(BaseModel):
    id: str | None
    source: str | None
    status: str
    held: bool | None = None
    detail: str | None = None
    reasons: list[dict[str, str]] | None = None


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    receipts: list[ReceiptOut]


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def binary_mode_event(headers: Iterable[tuple[str, str]], content_type: str, data: Any) -> dict[str, Any]:
    """One CloudEvent from the HTTP binding's binary mode: each attribute in a `ce-` header (percent-encoded,
    CloudEvents HTTP binding §3.1.3.2), `datacontenttype` from Content-Type, the body as `data`. The result
    is validated exactly like a structured-mode event."""
    event: dict[str, Any] = {
        name[3:].lower(): unquote(value) for name, value in headers if name.lower().startswith("ce-")
    }
    event["datacontenttype"] = content_type
    event["data"] = data
    return event


class JwkSetResponse(JSONResponse):
    media_type = "application/jwk-set+json"


Provider = Annotated[ApiKeyV1, Depends(require_provider)]
Context = Annotated[Intake, Depends(intake)]

router = APIRouter(
    prefix="/v1", tags=["events"], responses=problem_responses(400, 401, 403, 404, 413, 415, 422)
)


@router.post(
    "/events",
    status_code=202,
    response_model=IngestResponse,
    summary="Send one CloudEvent (application/cloudevents+json) or a batch of up to 1000 "
    "(application/cloudevents-batch+json)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                STRUCTURED_CONTENT_TYPE: {"schema": {"type": "object"}},
                # each item is validated on its own and answered in its receipt, so the batch takes any
                # JSON values; a malformed one is refused beside the valid ones, never with them
                BATCH_CONTENT_TYPE: {"schema": {"type": "array", "items": {"description": "one CloudEvent"}}},
            },
        }
    },
)
async def post_events(request: Request, provider: Provider, ctx: Context) -> JSONResponse:
    content_type = media_type(request)
    binary_mode = "ce-specversion" in request.headers
    if binary_mode and not _is_json(content_type):
        raise Problem(
            415,
            "unsupported-media-type",
            "In CloudEvents binary mode the body is the event's data: send it as application/json.",
        )
    if not binary_mode and content_type not in (STRUCTURED_CONTENT_TYPE, BATCH_CONTENT_TYPE):
        raise Problem(
            415,
            "unsupported-media-type",
            f"Send {STRUCTURED_CONTENT_TYPE} (one event), {BATCH_CONTENT_TYPE} (a JSON array), or one "
            "event in CloudEvents binary mode (ce-* headers, the data as application/json).",
        )
    parsed = parse_json(await read_body(request, ctx.settings.max_body_bytes))
    if binary_mode:
        events = [binary_mode_event(request.headers.items(), content_type, parsed)]
    elif content_type == BATCH_CONTENT_TYPE:
        events = _batch(parsed, ctx.settings.max_batch)
    else:
        if not isinstance(parsed, dict):
            raise Problem(
                400,
                "not-an-event",
                f"{STRUCTURED_CONTENT_TYPE} carries one JSON object; use {BATCH_CONTENT_TYPE} for arrays.",
            )
        events = [parsed]
    async with ctx.runtime.pool.acquire() as conn, conn.transaction():
        receipts = await admit(
            conn,
            events,
            provider_id=provider.provider_id,
            channel="http",
            clock=ctx.runtime.clock,
            key=ctx.key,
            providers=ctx.providers.rows,
        )
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for r in receipts:
        counts[r.status] += 1
    payload = {
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "receipts": [r.as_dict() for r in receipts],
    }
    return JSONResponse(payload, status_code=202)


def _batch(parsed: Any, max_batch: int) -> list[Any]:
    if not isinstance(parsed, list):
        raise Problem(400, "not-a-batch", "A batch must be a JSON array of CloudEvents.")
    if not parsed:
        raise Problem(400, "empty-batch", "The batch is empty.")
    if len(parsed) > max_batch:
        raise Problem(413, "batch-too-large", f"A batch holds at most {max_batch} events.")
    return parsed


RECEIPT_FIELDS = (
    "source",
    "event_id",
    "type",
    "episode_id",
    "status",
    "held",
    "channel",
    "retracted_by",
    "reasons",
)


@router.get("/events/provider/{provider_id}/{event_id}", summary="The receipt of one event you sent")
async def get_receipt(provider_id: str, event_id: str, provider: Provider, ctx: Context) -> dict[str, Any]:
    if provider.provider_id != provider_id:
        raise Problem(403, "forbidden", "A provider may only look up its own events.")
    row = await store.receipt(ctx.runtime.pool, f"provider/{provider_id}", event_id)
    if row is None:
        raise Problem(404, "not-found", "No event with this id has been received from this provider.")
    return {**{k: row[k] for k in RECEIPT_FIELDS}, "at": row["at"].isoformat()}


@router.post(
    "/aggregates",
    status_code=202,
    summary="Send aggregated outcome figures: JSON (one object or an array) or a CSV sheet (text/csv)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"description": "one row object, or an array of them, each receipted"}
                },
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def post_aggregates(request: Request, provider: Provider, ctx: Context) -> JSONResponse:
    content_type = media_type(request)
    body = await read_body(request, ctx.settings.max_body_bytes)
    pre_rejected: list[RowRejection] = []
    if content_type == "application/json":
        parsed = parse_json(body)
        rows = parsed if isinstance(parsed, list) else [parsed]
        channel = "json"
    elif content_type in ("text/csv", "application/csv"):
        rows, pre_rejected = parse_csv(csv_text(body))
        channel = "csv"
        header = next((r for r in pre_rejected if r.row == 0), None)
        if header is not None:  # no row can be read without the header: the whole sheet is refused
            raise Problem(
                422,
                "invalid-csv-header",
                "The CSV header lacks required columns or has unknown ones (see the CSV template).",
                errors=[{"field": r.field, "in": "body", "message": r.message} for r in header.reasons],
            )
    else:
        raise Problem(415, "unsupported-media-type", "Send application/json or text/csv.")
    if not rows and not pre_rejected:
        raise Problem(400, "empty", "No rows to submit.")
    if len(rows) > ctx.settings.max_batch:
        raise Problem(413, "batch-too-large", f"At most {ctx.settings.max_batch} rows per request.")
    assert provider.provider_id is not None
    async with ctx.runtime.pool.acquire() as conn, conn.transaction():
        receipts = await submit(
            conn,
            rows,
            provider_id=provider.provider_id,
            channel=channel,
            clock=ctx.runtime.clock,
            pre_rejected=pre_rejected,
            submitted_by=getattr(request.state, "submitted_by", provider.key_id),
            person=getattr(request.state, "person", None),
        )
    return JSONResponse({"receipts": receipts}, status_code=202)


@router.get("/aggregates", summary="Your aggregated submissions, every version (newest first)")
async def list_aggregates(provider: Provider, ctx: Context) -> dict[str, Any]:
    assert provider.provider_id is not None
    rows = await aggregate_store.of_provider(ctx.runtime.pool, provider.provider_id)
    return {"submissions": [{**dict(r), "submitted_at": r["submitted_at"].isoformat()} for r in rows]}


@router.get("/schemas", tags=["schemas"], summary="The JSON Schemas of the event contract")
async def list_schemas() -> dict[str, list[str]]:
    return {"schemas": schema_names()}


@router.get("/schemas/{name}", tags=["schemas"], summary="One JSON Schema")
async def get_schema(name: str) -> JSONResponse:
    schema = load_schema(name)
    if schema is None:
        raise Problem(404, "not-found", "No schema with this name.")
    return JSONResponse(schema, media_type="application/schema+json")


@router.get(
    "/keys/person-id",
    tags=["schemas"],
    summary="Ingest's public keys for sealing person_id (JWK Set: ECDH-ES+A256KW, A256GCM)",
    response_class=JwkSetResponse,
    responses={200: {"content": {JwkSetResponse.media_type: {"schema": {"type": "object"}}}}},
)
async def person_id_keys(ctx: Context) -> JSONResponse:
    """A provider that produces to Kafka may seal each `person_id` to these keys (JWE compact), so its raw
    topic holds no personnummer; only ingest can open it (`utfall_events.sealed`)."""
    if ctx.sealing is None:
        raise Problem(404, "not-found", "This ingest accepts no sealed person_id (no key is configured).")
    return JwkSetResponse(ctx.sealing.public)


@router.get("/asyncapi.json", tags=["schemas"], summary="The AsyncAPI 3.0 document of Utfall's topics")
async def asyncapi() -> JSONResponse:
    from utfall_platform.asyncapi import document

    return JSONResponse(document())
