"""Disputes of payments, their resolution, closing a settlement period, and an assessor's random sample.

The gateway checks who may send a command and that it names something real; the contracts service decides it
against its ledger (`contracts.commands.v1`) and records the outcome under the command id, which the answer
reports: 201 applied, 409 refused with the reason, 202 while still undecided (poll the `Location`). An
`Idempotency-Key` header makes a retried request the same command, applied once.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from utfall_events.ledger_commands import (
    ClosePeriodV1,
    DisputePaymentV1,
    LedgerCommandV1,
    Reason,
    ResolveDisputeV1,
)
from utfall_platform.problems import Problem, problem_responses

from ..auth import Authenticated, authorize_contract
from ..domain.policy import own_provider
from ..domain.signals import sampling_weight, weighted_order
from ..readmodel import contracts as contracts_read
from ..state import gateway_state
from .commands import IdempotencyKey, command_envelope, result_out, send_command
from .contracts import ContractId, visible_contract
from .signals import provider_signals
from .statements import PeriodText

router = APIRouter(prefix="/v1", tags=["disputes"], responses=problem_responses(400, 401, 403, 404, 409, 422))
PaymentIdPath = Annotated[
    str,
    Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]


class DisputeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class ResolutionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resolution: Literal["upheld", "dismissed"]
    reason: Reason


class DisputeOut(BaseModel):
    payment_id: str
    provider_id: str
    episode_id: str
    milestone_id: str
    amount_ore: int
    status: str = Field(description="open, upheld or dismissed")
    raised_by_role: str
    raised_by_name: str | None = Field(
        None, description="the person who raised it, when a person signed in did"
    )
    reason: str
    raised_at: str
    resolution_reason: str | None
    resolved_at: str | None
    resolved_by_name: str | None = Field(None, description="the person who resolved it, when a person did")


class DisputesOut(BaseModel):
    contract_id: str
    on_hold_ore: int = Field(description="the amount of the open disputes: held back from the statements")
    disputes: list[DisputeOut]


class SampledPaymentOut(BaseModel):
    payment_id: str
    provider_id: str
    episode_id: str
    subject_ref: str
    milestone_id: str
    measure_id: str
    measure_version: int
    amount_ore: int
    determined_at: str
    evidence: list[dict[str, Any]]


class SampleOut(BaseModel):
    contract_id: str
    seed: str
    as_of_seq: int
    population: int
    weighting: Literal["uniform", "signals"]
    provider_weights: dict[str, float]
    method: str
    payments: list[SampledPaymentOut]


@router.post(
    "/contracts/{contract_id}/payments/{payment_id}/dispute",
    status_code=201,
    summary="Dispute a triggered payment (the contract's assessor or its funder): it goes on hold",
    responses={202: {"description": "sent, not decided yet"}},
)
async def dispute_payment(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    payment_id: PaymentIdPath,
    body: DisputeRequest,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    authorize_contract(who, await visible_contract(request, who, contract_id), "dispute")
    if await contracts_read.triggered_payment(gateway_state(request).pool, contract_id, payment_id) is None:
        raise Problem(404, "not-found", "No payment with this id was triggered under this contract.")
    return await send_command(
        request,
        LedgerCommandV1(
            DisputePaymentV1(
                **command_envelope(request, who, contract_id, idempotency_key),
                payment_id=payment_id,
                role="assessor" if who.role == "assessor" else "finance",
                reason=body.reason,
            )
        ),
    )


@router.post(
    "/contracts/{contract_id}/payments/{payment_id}/dispute/resolution",
    status_code=201,
    summary="Resolve a dispute (the commissioner): upheld reverses the payment, dismissed lets it stand",
    responses={202: {"description": "sent, not decided yet"}},
)
async def resolve_dispute(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    payment_id: PaymentIdPath,
    body: ResolutionRequest,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    authorize_contract(who, await visible_contract(request, who, contract_id), "resolve_dispute")
    return await send_command(
        request,
        LedgerCommandV1(
            ResolveDisputeV1(
                **command_envelope(request, who, contract_id, idempotency_key),
                payment_id=payment_id,
                resolution=body.resolution,
                reason=body.reason,
            )
        ),
    )


@router.post(
    "/contracts/{contract_id}/statements/{period}/close",
    status_code=201,
    summary="Close a settlement period that has ended (the commissioner): its statement is recorded as it stands",
    responses={202: {"description": "sent, not decided yet"}},
)
async def close_period(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    period: PeriodText,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    authorize_contract(who, await visible_contract(request, who, contract_id), "close_period")
    return await send_command(
        request,
        LedgerCommandV1(
            ClosePeriodV1(
                **command_envelope(request, who, contract_id, idempotency_key),
                period=period,
            )
        ),
    )


@router.get(
    "/contracts/{contract_id}/commands/{command_id}",
    summary="The outcome of a command on the ledger",
    responses={202: {"description": "not decided yet (a command id never sent reads the same)"}},
)
async def command_outcome(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    command_id: Annotated[str, Path(max_length=64)],
) -> JSONResponse:
    await visible_contract(request, who, contract_id)
    row = await contracts_read.command_result(gateway_state(request).pool, contract_id, command_id)
    if row is None:
        return JSONResponse({"command_id": command_id, "outcome": "pending"}, status_code=202)
    return JSONResponse(result_out(row))


@router.get(
    "/contracts/{contract_id}/disputes",
    response_model=DisputesOut,
    summary="Disputes of a contract's payments, open and resolved",
)
async def list_disputes(request: Request, who: Authenticated, contract_id: ContractId) -> dict[str, Any]:
    await visible_contract(request, who, contract_id)
    rows = await contracts_read.disputes(gateway_state(request).pool, contract_id, own_provider(who))
    out = [
        {
            "payment_id": r["payment_id"],
            "provider_id": r["provider_id"],
            "episode_id": r["episode_id"],
            "milestone_id": r["milestone_id"],
            "amount_ore": r["amount_ore"],
            "status": r["status"],
            "raised_by_role": r["raised_by_role"],
            "raised_by_name": (r["raised_by_person"] or {}).get("name"),
            "reason": r["reason"],
            "raised_at": r["raised_at"].isoformat(),
            "resolution_reason": r["resolution_reason"],
            "resolved_at": r["resolved_at"].isoformat() if r["resolved_at"] else None,
            "resolved_by_name": (r["resolved_by_person"] or {}).get("name"),
        }
        for r in rows
    ]
    return {
        "contract_id": contract_id,
        "on_hold_ore": sum(d["amount_ore"] for d in out if d["status"] == "open"),
        "disputes": out,
    }


@router.get(
    "/contracts/{contract_id}/sample",
    response_model=SampleOut,
    summary="A reproducible random sample of standing payments with their evidence, for an assessor to check",
)
async def sample_payments(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    seed: Annotated[str, Query(min_length=1, max_length=100)],
    size: Annotated[int, Query(ge=1, le=500)] = 20,
    as_of_seq: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    weighting: Annotated[
        Literal["uniform", "signals"],
        Query(description="signals: a provider whose signals stand above the national is drawn more often"),
    ] = "uniform",
) -> dict[str, Any]:
    """The same seed and `as_of_seq` give the same sample, whenever asked: payments that stood after ledger
    entry `as_of_seq` (default: the latest), ordered by SHA-256 of seed and payment id; weighted by the
    providers' signals on request (`weighted_order`)."""
    authorize_contract(who, await visible_contract(request, who, contract_id), "sample")
    pool = gateway_state(request).pool
    as_of = as_of_seq if as_of_seq is not None else await contracts_read.last_seq(pool, contract_id)
    rows = await contracts_read.standing_payments(pool, contract_id, as_of)
    weights: dict[str, float] = {}
    if weighting == "signals":
        providers = {r["provider_id"] for r in rows}
        weights = {p.provider_id: sampling_weight(p.signals) for p in await provider_signals(pool, providers)}
        ranked = sorted(
            rows,
            key=lambda r: (
                weighted_order(seed, r["payment_id"], weights.get(r["provider_id"], 1.0)),
                r["payment_id"],
            ),
        )
        method = (
            "payments standing after as_of_seq, weighted by their provider's signals (1 plus how far each signal's "
            "interval lies above its reference, the provider's own history or else the national value, at most 5), drawn without replacement by the exponential race "
            "-ln(u)/weight, u from sha256(seed|payment_id); first `size`"
        )
    else:
        ranked = sorted(rows, key=lambda r: hashlib.sha256(f"{seed}|{r['payment_id']}".encode()).hexdigest())
        method = "payments standing after as_of_seq, ordered by sha256(seed|payment_id), first `size`"
    return {
        "contract_id": contract_id,
        "seed": seed,
        "as_of_seq": as_of,
        "population": len(rows),
        "weighting": weighting,
        "provider_weights": {p: round(w, 3) for p, w in sorted(weights.items())},
        "method": method,
        "payments": [
            {
                "payment_id": r["payment_id"],
                "provider_id": r["provider_id"],
                "episode_id": r["episode_id"],
                "subject_ref": r["subject_ref"],
                "milestone_id": r["milestone_id"],
                "measure_id": r["measure_id"],
                "measure_version": r["measure_version"],
                "amount_ore": r["amount_ore"],
                "determined_at": r["determined_at"].isoformat(),
                "evidence": r["evidence"],
            }
            for r in ranked[:size]
        ],
    }
