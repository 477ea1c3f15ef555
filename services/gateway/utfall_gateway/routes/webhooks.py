"""Webhook endpoints of a contract: a finance system's https URL that receives every `payments.v1` message of
the contract as a Standard Webhooks request (signed, at least once, in determination order), registered and read
by the contract's commissioner or an operator. See docs/architecture.md, "Webhooks".

The URL is checked here before anything is sent: https only, and refused when its host resolves to a private,
loopback or link-local address (unless `UTFALL_WEBHOOK_ALLOW_PRIVATE_ADDRESSES`); the deliverer checks it again
before each round of deliveries.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from utfall_events.care import IsoDateTime
from utfall_events.webhooks import (
    RegisterWebhookV1,
    RemoveWebhookV1,
    ReplayWebhookV1,
    RotateWebhookSecretV1,
    WebhookCommandV1,
)
from utfall_platform.destinations import destination_refusal
from utfall_platform.problems import Problem, problem_responses

from ..auth import Authenticated, Principal, authorize_contract
from ..readmodel import webhooks as webhooks_read
from ..state import gateway_state
from .commands import (
    IdempotencyKey,
    command_envelope,
    command_location,
    decide,
    outcome_answer,
    result_out,
    send_command,
)
from .contracts import ContractId, visible_contract

router = APIRouter(
    prefix="/v1/contracts/{contract_id}/webhooks",
    tags=["webhooks"],
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
EndpointIdPath = Annotated[
    str, Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, StringConstraints(max_length=2000, strip_whitespace=True)] = Field(
        description="https://… of the finance system's receiver",
        examples=["https://ekonomi.example.se/utfall"],
    )
    description: Annotated[str, StringConstraints(max_length=200, strip_whitespace=True)] = ""


class RotationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap_hours: float | None = Field(
        None,
        ge=0,
        le=24 * 30,
        strict=True,  # a number, not `true` or "3"
        description="how long the previous secret still signs (default: the setting)",
    )


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: IsoDateTime = Field(description="every message determined at or after this is delivered again")


class WebhookOut(BaseModel):
    endpoint_id: str
    contract_id: str
    url: str
    description: str
    registered_by_key_id: str
    registered_at: str
    removed_at: str | None
    delivered_messages: int = Field(description="messages the receiver acknowledged (replays count again)")
    pending_messages: int = Field(description="messages of the contract after the last acknowledged one")
    failed_attempts: int = Field(description="failed attempts of the next message")
    next_attempt_at: str | None
    failing_since: str | None = Field(description="the first failed attempt since the last delivery")
    last_error: str | None
    previous_secret_valid_until: str | None


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="Standard Webhooks signing secret (whsec_…): shown in this answer only")


class WebhooksOut(BaseModel):
    contract_id: str
    endpoints: list[WebhookOut]


class DeliveryOut(BaseModel):
    attempt_id: int
    message_id: str = Field(description="the webhook-id: payment id and kind")
    seq: int = Field(description="the message's place in the contract's ledger")
    attempt: int
    attempted_at: str
    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryLogOut(BaseModel):
    endpoint_id: str
    deliveries: list[DeliveryOut] = Field(description="newest first")
    next_before: int | None = Field(description="pass as `before` for the older page; null at the first")


class SecretOut(BaseModel):
    endpoint_id: str
    secret: str = Field(description="the new signing secret: shown in this answer only")
    previous_valid_until: str


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def webhook_out(row: Any) -> WebhookOut:
    return WebhookOut(
        endpoint_id=row["endpoint_id"],
        contract_id=row["contract_id"],
        url=row["url"],
        description=row["description"],
        registered_by_key_id=row["registered_by_key_id"],
        registered_at=row["registered_at"].isoformat(),
        removed_at=_iso(row["removed_at"]),
        delivered_messages=row["delivered_messages"],
        pending_messages=row["pending_messages"] if row["removed_at"] is None else 0,
        failed_attempts=row["failed_attempts"],
        next_attempt_at=_iso(row["next_attempt_at"]),
        failing_since=_iso(row["failing_since"]),
        last_error=row["last_error"],
        previous_secret_valid_until=_iso(row["previous_valid_until"]),
    )


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def _managed_contract(request: Request, who: Principal, contract_id: str) -> None:
    authorize_contract(who, await visible_contract(request, who, contract_id), "webhooks")


async def _endpoint(request: Request, contract_id: str, endpoint_id: str) -> Any:
    row = await webhooks_read.endpoint(gateway_state(request).pool, contract_id, endpoint_id)
    if row is None:
        raise Problem(404, "not-found", "No webhook endpoint with this id on this contract.")
    return row


def _pending_with_secret(command: RegisterWebhookV1 | RotateWebhookSecretV1) -> JSONResponse:
    """Not decided within the wait: the new secret still reaches its owner, in this answer only."""
    return JSONResponse(
        {"endpoint_id": command.endpoint_id, "secret": command.secret, "outcome": "pending"},
        status_code=202,
        headers={
            "Location": command_location(command.contract_id, command.command_id),
            "Cache-Control": "no-store",
        },
    )


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreatedOut,
    summary="Register an https endpoint for the contract's payment messages; the secret is in this answer only",
    responses={202: {"description": "sent, not decided yet (the secret is in this answer)"}},
)
async def register_webhook(
    request: Request, who: Authenticated, contract_id: ContractId, body: WebhookRequest
) -> JSONResponse:
    await _managed_contract(request, who, contract_id)
    gw = gateway_state(request)
    refusal = await destination_refusal(body.url, allow_private=gw.settings.webhook_allow_private_addresses)
    if refusal is not None:
        raise Problem(422, "webhook-url-refused", refusal)
    command = RegisterWebhookV1(
        **command_envelope(request, who, contract_id, None),
        endpoint_id=str(uuid.uuid4()),
        url=body.url,
        description=body.description,
        secret=new_secret(),
    )
    outcome = await decide(request, WebhookCommandV1(command))
    if outcome is None:
        return _pending_with_secret(command)
    if outcome["outcome"] == "refused":
        return outcome_answer(contract_id, command.command_id, outcome)
    registered = webhook_out(await _endpoint(request, contract_id, command.endpoint_id))
    return JSONResponse(
        WebhookCreatedOut(**registered.model_dump(), secret=command.secret).model_dump(),
        status_code=201,
        headers={
            "Location": f"/v1/contracts/{contract_id}/webhooks/{command.endpoint_id}",
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "", response_model=WebhooksOut, summary="The contract's webhook endpoints and how their deliveries go"
)
async def list_webhooks(request: Request, who: Authenticated, contract_id: ContractId) -> WebhooksOut:
    await _managed_contract(request, who, contract_id)
    rows = await webhooks_read.endpoints(gateway_state(request).pool, contract_id)
    return WebhooksOut(contract_id=contract_id, endpoints=[webhook_out(r) for r in rows])


@router.get("/{endpoint_id}", response_model=WebhookOut, summary="One webhook endpoint")
async def get_webhook(
    request: Request, who: Authenticated, contract_id: ContractId, endpoint_id: EndpointIdPath
) -> WebhookOut:
    await _managed_contract(request, who, contract_id)
    return webhook_out(await _endpoint(request, contract_id, endpoint_id))


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=DeliveryLogOut,
    summary="The endpoint's delivery log: every attempt, newest first",
)
async def delivery_log(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    endpoint_id: EndpointIdPath,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> DeliveryLogOut:
    await _managed_contract(request, who, contract_id)
    await _endpoint(request, contract_id, endpoint_id)
    rows = await webhooks_read.attempts(gateway_state(request).pool, endpoint_id, limit, before)
    return DeliveryLogOut(
        endpoint_id=endpoint_id,
        deliveries=[
            DeliveryOut(
                attempt_id=r["attempt_id"],
                message_id=r["message_id"],
                seq=r["seq"],
                attempt=r["attempt"],
                attempted_at=r["attempted_at"].isoformat(),
                delivered=r["delivered"],
                status_code=r["status_code"],
                error=r["error"],
                duration_ms=r["duration_ms"],
            )
            for r in rows
        ],
        next_before=rows[-1]["attempt_id"] if len(rows) == limit else None,
    )


@router.post(
    "/{endpoint_id}/secret",
    status_code=201,
    response_model=SecretOut,
    summary="Rotate the signing secret: the previous one also signs until the overlap ends",
)
async def rotate_secret(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    endpoint_id: EndpointIdPath,
    body: RotationRequest | None = None,
) -> JSONResponse:
    await _managed_contract(request, who, contract_id)
    await _endpoint(request, contract_id, endpoint_id)
    gw = gateway_state(request)
    hours = (
        body.overlap_hours
        if body and body.overlap_hours is not None
        else gw.settings.webhook_rotation_overlap_hours
    )
    envelope = command_envelope(request, who, contract_id, None)
    command = RotateWebhookSecretV1(
        **envelope,
        endpoint_id=endpoint_id,
        secret=new_secret(),
        previous_valid_until=envelope["requested_at"] + timedelta(hours=hours),
    )
    outcome = await decide(request, WebhookCommandV1(command))
    if outcome is not None and outcome["outcome"] == "applied":
        out = SecretOut(
            endpoint_id=endpoint_id,
            secret=command.secret,
            previous_valid_until=command.previous_valid_until.isoformat(),
        )
        return JSONResponse(out.model_dump(), status_code=201, headers={"Cache-Control": "no-store"})
    if outcome is None:
        return _pending_with_secret(command)
    return outcome_answer(contract_id, command.command_id, outcome)


@router.post(
    "/{endpoint_id}/replay",
    status_code=201,
    summary="Deliver again every message determined at or after a point in time, in order, with their ids",
    responses={202: {"description": "sent, not decided yet"}},
)
async def replay(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    endpoint_id: EndpointIdPath,
    body: ReplayRequest,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    await _managed_contract(request, who, contract_id)
    await _endpoint(request, contract_id, endpoint_id)
    return await send_command(
        request,
        WebhookCommandV1(
            ReplayWebhookV1(
                **command_envelope(request, who, contract_id, idempotency_key),
                endpoint_id=endpoint_id,
                since=body.since,
            )
        ),
    )


@router.delete("/{endpoint_id}", summary="Remove an endpoint: no more deliveries (its log stays)")
async def remove_webhook(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    endpoint_id: EndpointIdPath,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    await _managed_contract(request, who, contract_id)
    await _endpoint(request, contract_id, endpoint_id)
    message = WebhookCommandV1(
        RemoveWebhookV1(
            **command_envelope(request, who, contract_id, idempotency_key), endpoint_id=endpoint_id
        )
    )
    outcome = await decide(request, message)
    if outcome is not None and outcome["outcome"] == "applied":
        return JSONResponse(result_out(outcome))
    return outcome_answer(contract_id, message.root.command_id, outcome)
