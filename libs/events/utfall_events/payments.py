"""`payments.v1` (keyed by contract id): payment triggers and reversals for finance systems."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .outcomes import EventRef

PAYMENT_TRIGGERED = "se.utfall.payment.triggered.v1"
PAYMENT_REVERSED = "se.utfall.payment.reversed.v1"


class PaymentV1(BaseModel):
    """One ledger entry as published.

    A finance system deduplicates on (`payment_id`, `kind`): a payment id is triggered at most once and
    reversed at most once, for the same amount. A milestone paid again after a reversal (achieved again, or
    its amount changed under a cap: reversed in full and paid again) gets a new payment id (`occurrence`
    2, 3 …), still deterministic; its `reason` names the payment it replaces.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["payment.triggered", "payment.reversed"]
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
        ge=0, description="Amount in öre; for a reversal, the amount paid that is taken back"
    )
    currency: Literal["SEK"] = "SEK"
    capped: bool = Field(description="True when a cap cut the amount below the milestone price")
    evidence: list[EventRef]
    determined_at: datetime
    reason: str | None = None
