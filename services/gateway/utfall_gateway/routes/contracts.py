"""Contracts, participants and their milestone status, payments with a cursor (read-only, by role)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from utfall_platform.problems import Problem, problem_responses

from ..auth import Authenticated, Principal, authorize_contract
from ..domain.policy import ContractParties, own_provider, party_to
from ..domain.statements import funder_name, municipality_name
from ..pagination import cursor_int, decode_cursor, encode_cursor
from ..readmodel import contracts as contracts_read
from ..state import gateway_state

ContractId = Annotated[str, Path(max_length=64, examples=["hvb-ungdom-stockholm"])]
Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=300)]

router = APIRouter(prefix="/v1", tags=["contracts"], responses=problem_responses(400, 401, 403, 404, 422))


def _pool(request: Request) -> Any:
    return gateway_state(request).pool


class ContractOut(BaseModel):
    """A contract as its parties see it: its current version, the cohort rule and milestones as defined, and
    the ledger's totals against the caps."""

    contract_id: str
    version: int
    name: str
    commissioner_municipality: str
    commissioner_name: str = Field(description="the commissioning municipality's name")
    funder: str | None
    funder_name: str = Field(description="the funder's name as the contract gives it (else its id)")
    provider_ids: list[str]
    currency: str
    cohort: dict[str, Any] = Field(description="the enrolment rule, as in ContractDefinitionV1")
    milestones: list[dict[str, Any]] = Field(description="as in ContractDefinitionV1")
    per_participant_cap_ore: int
    total_cap_ore: int
    paid_net_ore: int
    cap_left_ore: int
    cap_utilisation: float | None = Field(description="paid net of the total cap (0 to 1)")
    participants: int
    payments_triggered: int
    payments_reversed: int


class ContractsOut(BaseModel):
    contracts: list[ContractOut]


class ContractVersionOut(BaseModel):
    version: int
    origin: str
    created_at: datetime
    definition: dict[str, Any] = Field(description="ContractDefinitionV1")


class ContractVersionsOut(BaseModel):
    contract_id: str
    versions: list[ContractVersionOut]


class MilestoneStatusOut(BaseModel):
    milestone_id: str
    measure_id: str
    validation: str = Field(description="reported, or register: paid only on the register's word")
    price_ore: int
    outcome_status: str | None
    paid_ore: int
    payment_id: str | None
    blocked_by_cap: bool


class ParticipantOut(BaseModel):
    provider_id: str
    episode_id: str
    subject_ref: str
    status: str
    contract_version: int
    municipality_code: str
    care_type: str
    legal_basis: str
    target_group: str
    age_at_start: int
    start_date: str
    enrolled_at: str
    paid_net_ore: int
    milestones: list[MilestoneStatusOut]


class ParticipantsOut(BaseModel):
    contract_id: str
    participants: list[ParticipantOut]
    next_cursor: str | None


class PaymentOut(BaseModel):
    """A ledger entry as `payments.v1` carries it (PaymentV1), with its place in the ledger (`seq`)."""

    seq: int
    kind: str
    entry_id: str
    payment_id: str
    occurrence: int
    contract_id: str
    contract_version: int
    milestone_id: str
    measure_id: str
    measure_version: int
    subject_ref: str
    provider_id: str
    episode_id: str
    amount_ore: int
    signed_amount_ore: int
    currency: str
    capped: bool
    evidence: list[dict[str, Any]]
    determined_at: str
    reason: str | None


class PaymentsOut(BaseModel):
    contract_id: str | None = None
    payments: list[PaymentOut]
    next_cursor: str
    has_more: bool


def contract_out(r: Any) -> ContractOut:
    d = dict(r["definition"])
    return ContractOut(
        contract_id=r["contract_id"],
        version=r["version"],
        name=r["name"],
        commissioner_municipality=r["commissioner_municipality"],
        commissioner_name=municipality_name(r["commissioner_municipality"]),
        funder=r["funder"],
        funder_name=funder_name({"definition": d, "funder": r["funder"]}),
        provider_ids=list(r["provider_ids"]),
        currency=d.get("currency", "SEK"),
        cohort=d["cohort"],
        milestones=d["milestones"],
        per_participant_cap_ore=r["per_participant_cap_ore"],
        total_cap_ore=r["total_cap_ore"],
        paid_net_ore=r["paid_net_ore"],
        cap_left_ore=r["cap_left_ore"],
        cap_utilisation=r["paid_net_ore"] / r["total_cap_ore"] if r["total_cap_ore"] else None,
        participants=r["participants"],
        payments_triggered=r["payments_triggered"],
        payments_reversed=r["payments_reversed"],
    )


async def visible_contract(request: Request, who: Principal, contract_id: str) -> Any:
    row = await contracts_read.contract(_pool(request), contract_id)
    if row is None:
        raise Problem(404, "not-found", "No contract with this id.")
    authorize_contract(who, row)
    return row


@router.get(
    "/contracts", response_model=ContractsOut, summary="Contracts in your scope, with totals and cap left"
)
async def list_contracts(request: Request, who: Authenticated) -> ContractsOut:
    rows = await contracts_read.contracts(_pool(request))
    return ContractsOut(contracts=[contract_out(r) for r in rows if party_to(who, ContractParties.of(r))])


@router.get(
    "/contracts/{contract_id}", response_model=ContractOut, summary="One contract with totals and cap left"
)
async def get_contract(request: Request, who: Authenticated, contract_id: ContractId) -> ContractOut:
    return contract_out(await visible_contract(request, who, contract_id))


@router.get(
    "/contracts/{contract_id}/versions",
    response_model=ContractVersionsOut,
    summary="Every version of a contract",
)
async def contract_versions(
    request: Request, who: Authenticated, contract_id: ContractId
) -> ContractVersionsOut:
    await visible_contract(request, who, contract_id)
    rows = await contracts_read.contract_versions(_pool(request), contract_id)
    return ContractVersionsOut(
        contract_id=contract_id,
        versions=[
            ContractVersionOut(
                version=r["version"],
                origin=r["origin"],
                created_at=r["created_at"],
                definition=r["definition"],
            )
            for r in rows
        ],
    )


@router.get(
    "/contracts/{contract_id}/participants",
    response_model=ParticipantsOut,
    summary="Participants (enrolled by rule) and their milestone status",
)
async def participants(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    authorize_contract(who, await visible_contract(request, who, contract_id), "participants")
    after = decode_cursor(cursor)
    rows = await contracts_read.participants(
        _pool(request),
        contract_id,
        (str(after.get("p", "")), str(after.get("e", ""))),
        limit + 1,
        own_provider(who),
    )
    more = len(rows) > limit
    rows = rows[:limit]
    keys = [(r["provider_id"], r["episode_id"]) for r in rows]
    milestones = await contracts_read.participant_milestones(_pool(request), contract_id, keys)
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m in milestones:
        by_key.setdefault((m["provider_id"], m["episode_id"]), []).append(
            {
                "milestone_id": m["milestone_id"],
                "measure_id": m["measure_id"],
                "validation": m["validation"],
                "price_ore": m["price_ore"],
                "outcome_status": m["outcome_status"],
                "paid_ore": m["paid_ore"],
                "payment_id": m["active_payment_id"],
                "blocked_by_cap": m["blocked"],
            }
        )
    out = [
        {
            "provider_id": r["provider_id"],
            "episode_id": r["episode_id"],
            "subject_ref": r["subject_ref"],
            "status": r["status"],
            "contract_version": r["contract_version"],
            "municipality_code": r["municipality_code"],
            "care_type": r["care_type"],
            "legal_basis": r["legal_basis"],
            "target_group": r["target_group"],
            "age_at_start": r["age_at_start"],
            "start_date": r["start_date"].isoformat(),
            "enrolled_at": r["enrolled_at"].isoformat(),
            "paid_net_ore": r["paid_net_ore"],
            "milestones": by_key.get((r["provider_id"], r["episode_id"]), []),
        }
        for r in rows
    ]
    next_cursor = encode_cursor({"p": rows[-1]["provider_id"], "e": rows[-1]["episode_id"]}) if more else None
    return {"contract_id": contract_id, "participants": out, "next_cursor": next_cursor}


def _payment_out(r: Any) -> dict[str, Any]:
    return {
        "seq": r["seq"],
        "kind": r["kind"],
        "entry_id": r["entry_id"],
        "payment_id": r["payment_id"],
        "occurrence": r["occurrence"],
        "contract_id": r["contract_id"],
        "contract_version": r["contract_version"],
        "milestone_id": r["milestone_id"],
        "measure_id": r["measure_id"],
        "measure_version": r["measure_version"],
        "subject_ref": r["subject_ref"],
        "provider_id": r["provider_id"],
        "episode_id": r["episode_id"],
        "amount_ore": r["amount_ore"],
        "signed_amount_ore": r["signed_amount_ore"],
        "currency": "SEK",
        "capped": r["capped"],
        "evidence": r["evidence"],
        "determined_at": r["determined_at"].isoformat(),
        "reason": r["reason"],
    }


async def _payments(
    request: Request, who: Principal, contract_ids: list[str], cursor: str | None, limit: int
) -> dict[str, Any]:
    after = cursor_int(cursor, "seq")
    rows = await contracts_read.ledger(_pool(request), contract_ids, after, limit + 1, own_provider(who))
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1]["seq"] if rows else after
    return {
        "payments": [_payment_out(r) for r in rows],
        "next_cursor": encode_cursor({"seq": last}),
        "has_more": more,
    }


@router.get(
    "/contracts/{contract_id}/payments",
    response_model=PaymentsOut,
    response_model_exclude_unset=True,
    summary="The ledger of one contract, oldest first; poll with next_cursor",
)
async def contract_payments(
    request: Request,
    who: Authenticated,
    contract_id: ContractId,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    await visible_contract(request, who, contract_id)
    return {"contract_id": contract_id, **await _payments(request, who, [contract_id], cursor, limit)}


@router.get(
    "/payments",
    response_model=PaymentsOut,
    response_model_exclude_unset=True,
    summary="Payments of every contract in your scope, oldest first; poll with next_cursor",
)
async def all_payments(
    request: Request,
    who: Authenticated,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    rows = await contracts_read.contracts(_pool(request))
    visible = [r["contract_id"] for r in rows if party_to(who, ContractParties.of(r))]
    return await _payments(request, who, visible, cursor, limit)
