"""Commands on a contract's ledger, sent on `contracts.commands.v1` beside the contract definitions: dispute a
payment, resolve a dispute, close a settlement period. The gateway validates who may send them; the contracts
service decides them against its ledger, in the transaction that stores its position, and records the outcome
of every command (applied or refused, with the reason) under its `command_id`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, StringConstraints

from .auth import PersonV1
from .contracts import ContractId
from .personnummer import looks_like_personnummer


def _no_personnummer(value: str) -> str:
    if looks_like_personnummer(value):
        raise ValueError("the text must not contain a personal identity number (it was not kept)")
    return value


Reason = Annotated[
    str,
    StringConstraints(min_length=3, max_length=2000, strip_whitespace=True),
    AfterValidator(_no_personnummer),
]
PaymentId = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
PeriodName = Annotated[str, StringConstraints(pattern=r"^\d{4}-(Q[1-4]|0[1-9]|1[0-2])$")]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    command_id: str = Field(description="UUID; the same id sent twice is applied once")
    contract_id: ContractId
    key_id: str = Field(
        description="who sent it: the API key's id, or person:<subject> for a person signed in"
    )
    person: PersonV1 | None = Field(None, description="the person who sent it, when a person signed in did")
    requested_at: datetime


class DisputePaymentV1(_Command):
    """An independent assessor of the contract, or its funder, disputes a triggered payment: it goes on hold."""

    command: Literal["payment.dispute"] = "payment.dispute"
    payment_id: PaymentId
    role: Literal["assessor", "finance"]
    reason: Reason


class ResolveDisputeV1(_Command):
    """The commissioner resolves a dispute: upheld, the payment is reversed and its milestone not paid again;
    dismissed, the payment stands."""

    command: Literal["payment.resolve_dispute"] = "payment.resolve_dispute"
    payment_id: PaymentId
    resolution: Literal["upheld", "dismissed"]
    reason: Reason


class ClosePeriodV1(_Command):
    """The commissioner closes a settlement period that has ended: its statement is recorded as it stands."""

    command: Literal["period.close"] = "period.close"
    period: PeriodName = Field(description="2026-Q3 or 2026-09, as the contract's statement_period")


class LedgerCommandV1(
    RootModel[Annotated[DisputePaymentV1 | ResolveDisputeV1 | ClosePeriodV1, Field(discriminator="command")]]
):
    """Any command on a contract's ledger."""
