"""An event's processing status across the services: accepted, projected, outcome, paid."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from utfall_platform.problems import Problem, problem_responses

from ..auth import Authenticated, forbid_unless
from ..domain.policy import sees_provider_records
from ..readmodel import contracts as contracts_read
from ..readmodel import events as events_read
from ..state import gateway_state

router = APIRouter(prefix="/v1", tags=["events"], responses=problem_responses(401, 403, 404, 422))


class ReceiptStageOut(BaseModel):
    status: str
    held: bool
    at: str
    reasons: Any = Field(description="a refusal's reasons, field by field")
    retracted_by: str | None


class ProjectedStageOut(BaseModel):
    at: str
    episode_id: str


class EventStatusOut(BaseModel):
    """Where one event has got to: received (accepted, held or refused), projected into an episode, cited by
    outcome facts, cited by payments."""

    source: str
    event_id: str
    stage: Literal["rejected", "accepted", "held", "projected", "outcome", "paid"]
    accepted: ReceiptStageOut
    projected: ProjectedStageOut | None
    outcomes: list[dict[str, Any]]
    payments: list[dict[str, Any]]


@router.get(
    "/events/provider/{provider_id}/{event_id}/status",
    response_model=EventStatusOut,
    summary="Where one event has got to",
)
async def event_status(
    request: Request, who: Authenticated, provider_id: str, event_id: str
) -> dict[str, Any]:
    forbid_unless(
        sees_provider_records(who, provider_id),
        "Only the provider that sent the event (or an operator) may see it.",
    )
    pool = gateway_state(request).pool
    source = f"provider/{provider_id}"
    receipt = await events_read.receipt(pool, source, event_id)
    if receipt is None:
        raise Problem(404, "not-found", "No event with this id has been received from this provider.")
    projected = await events_read.projected_event(pool, source, event_id)
    outcomes: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    if projected is not None:
        ref = [{"source": source, "id": event_id}]
        facts = await events_read.facts_citing(pool, projected["provider_id"], projected["episode_id"], ref)
        outcomes = [dict(f) for f in facts]
        rows = await contracts_read.payments_citing(
            pool, projected["provider_id"], projected["episode_id"], ref
        )
        payments = [{**dict(r), "determined_at": r["determined_at"].isoformat()} for r in rows]
    stage = "rejected" if receipt["status"] == "rejected" else "accepted"
    if receipt["held"]:
        stage = "held"
    if projected is not None:
        stage = "projected"
    if outcomes:
        stage = "outcome"
    if any(p["kind"] == "payment.triggered" for p in payments):
        stage = "paid"
    return {
        "source": source,
        "event_id": event_id,
        "stage": stage,
        "accepted": {
            "status": receipt["status"],
            "held": receipt["held"],
            "at": receipt["at"].isoformat(),
            "reasons": receipt["reasons"],
            "retracted_by": receipt["retracted_by"],
        },
        "projected": {"at": projected["projected_at"].isoformat(), "episode_id": projected["episode_id"]}
        if projected
        else None,
        "outcomes": outcomes,
        "payments": payments,
    }
