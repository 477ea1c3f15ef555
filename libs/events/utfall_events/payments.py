"""`payments.v1` (keyed by contract id): payment triggers and reversals for finance systems."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .auth import PersonV1
from .outcomes import EventRef

PAYMENT_TRIGGERED = "se.utfall.payment.triggered.v1"
PAYMENT_REVERSED = "se.utfall.payment.reversed.v1"
PAYMENT_DISPUTED = "se.utfall.payment.disputed.v1"
PAYMENT_DISPUTE_RESOLVED = "se.utfall.payment.dispute_resolved.v1"

PaymentKind = Literal["payment.triggered", "payment.reversed", "payment.disputed", "payment.dispute_resolved"]
CLOUDEVENT_TYPES: dict[str, str] = {
    "payment.triggered": PAYMENT_TRIGGERED,
    "payment.reversed": PAYMENT_REVERSED,
    "payment.disputed": PAYMENT_DISPUTED,
    "payment.dispute_resolved": PAYMENT_DISPUTE_RESOLVED,
}


def signed_amount(kind: str, amount_ore: int) -> int:
    """What an entry adds to the net paid: a trigger adds, a reversal takes back, a dispute and its resolution
    move no money themselves (an upheld dispute is followed by its own reversal)."""
    if kind == "payment.triggered":
        return amount_ore
    if kind == "payment.reversed":
        return -amount_ore
    return 0


class DisputeInfoV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    raised_by_role: Literal["assessor", "finance"]
    raised_by_key_id: str
    raised_at: datetime
    reason: str
    resolution: Literal["upheld", "dismissed"] | None = None
    resolved_by_key_id: str | None = None
    resolution_reason: str | None = None
    raised_by_person: PersonV1 | None = None
    resolved_by_person: PersonV1 | None = None


class PaymentV1(BaseModel):
    """One ledger entry as published.

    A finance system deduplicates on (`payment_id`, `kind`): a payment id is triggered at most once and
    reversed at most once, for the same amount; it is disputed at most once and that dispute resolved at most
    once. A disputed payment is on hold until its `payment.dispute_resolved`: `dismissed`, it stands;
    `upheld`, a `payment.reversed` of it follows (in the same transaction) and the milestone is not paid again.
    A milestone paid again after a reversal (achieved again, or its amount changed under a cap: reversed in full
    and paid again) gets a new payment id (`occurrence` 2, 3 …), still deterministic; its `reason` names the
    payment it replaces.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: PaymentKind
    entry_id: str = Field(
        description="Unique per ledger entry: payment_id for a trigger, a UUIDv5 for a reversal"
    )
    payment_id: str = Field(description="UUIDv5(contract, subject_ref, episode, milestone[, occurrence])")
    occurrence: int = Field(ge=1)
    contract_id: str
    contract_version: int
    milestone_id: str
    measure_id: str
    measure_version: int
    subject_ref: str
    provider_id: str
    episode_id: str
    amount_ore: int = Field(
        ge=0,
        description="Amount in öre; for a reversal, the amount paid that is taken back; for a dispute or its "
        "resolution, the amount on hold",
    )
    currency: Literal["SEK"] = "SEK"
    capped: bool = Field(description="True when a cap cut the amount below the milestone price")
    evidence: list[EventRef]
    determined_at: datetime
    reason: str | None = None
    dispute: DisputeInfoV1 | None = Field(
        None, description="On payment.disputed and payment.dispute_resolved: who, why and how it ended"
    )

    @property
    def signed_amount_ore(self) -> int:
        return signed_amount(self.kind, self.amount_ore)
