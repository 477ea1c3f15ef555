"""Disputes of payments and closed periods, as pure decisions over what the ledger holds.

A triggered payment that stands (not reversed) may be disputed once, by an assessor of the contract or its
funder: a `payment.disputed` entry puts it on hold. The commissioner resolves an open dispute once: a
`payment.dispute_resolved` entry says upheld or dismissed; upheld, the milestone is disallowed and the
reconciliation that follows reverses whatever stands paid for it. Entry ids are deterministic per payment, so a
finance system deduplicates them on (payment id, kind) as it does triggers and reversals. A decision that
cannot be made says why, in words (`Refusal`), and changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from utfall_events.ledger_commands import DisputePaymentV1, ResolveDisputeV1
from utfall_events.payments import DisputeInfoV1, PaymentV1
from utfall_events.periods import Period

from .ledger import PAYMENT_NAMESPACE


@dataclass(frozen=True, slots=True)
class Refusal:
    detail: str


@dataclass(frozen=True, slots=True)
class PaymentStanding:
    """A triggered payment as the ledger holds it: the trigger, whether it was reversed, its dispute if any."""

    trigger: PaymentV1
    reversed: bool
    dispute: DisputeInfoV1 | None


def dispute_entry_id(payment: str, kind: str) -> str:
    """`kind`: disputed or dispute_resolved."""
    return str(uuid.uuid5(PAYMENT_NAMESPACE, f"{payment}|{kind}"))


def _entry(
    standing: PaymentStanding,
    kind: Literal["payment.disputed", "payment.dispute_resolved"],
    dispute: DisputeInfoV1,
    now: datetime,
    reason: str,
) -> PaymentV1:
    trigger = standing.trigger
    return trigger.model_copy(
        update={
            "kind": kind,
            "entry_id": dispute_entry_id(trigger.payment_id, kind.removeprefix("payment.")),
            "determined_at": now,
            "reason": reason,
            "dispute": dispute,
        }
    )


def decide_dispute(
    standing: PaymentStanding | None, command: DisputePaymentV1, now: datetime
) -> PaymentV1 | Refusal:
    if standing is None:
        return Refusal(f"no payment {command.payment_id} was triggered under contract {command.contract_id}")
    if standing.dispute is not None:
        return Refusal(
            f"payment {command.payment_id} is already disputed ({standing.dispute.resolution or 'open'})"
        )
    if standing.reversed:
        return Refusal(f"payment {command.payment_id} was reversed: nothing stands to dispute")
    dispute = DisputeInfoV1(
        raised_by_role=command.role,
        raised_by_key_id=command.key_id,
        raised_by_person=command.person,
        raised_at=now,
        reason=command.reason,
    )
    return _entry(
        standing, "payment.disputed", dispute, now, f"disputed by the {command.role}: {command.reason}"
    )


def decide_resolution(
    standing: PaymentStanding | None, command: ResolveDisputeV1, now: datetime
) -> PaymentV1 | Refusal:
    if standing is None or standing.dispute is None:
        return Refusal(f"payment {command.payment_id} has no dispute to resolve")
    if standing.dispute.resolution is not None:
        return Refusal(
            f"the dispute of payment {command.payment_id} was already {standing.dispute.resolution}"
        )
    dispute = standing.dispute.model_copy(
        update={
            "resolution": command.resolution,
            "resolved_by_key_id": command.key_id,
            "resolved_by_person": command.person,
            "resolution_reason": command.reason,
        }
    )
    consequence = (
        "the payment is reversed and the milestone not paid"
        if command.resolution == "upheld"
        else "the payment stands"
    )
    return _entry(
        standing,
        "payment.dispute_resolved",
        dispute,
        now,
        f"dispute {command.resolution} by the commissioner ({consequence}): {command.reason}",
    )


def decide_close(period: Period, *, already_closed: bool, now: datetime) -> Refusal | None:
    """A period may be closed once it has ended (no entry can still be determined in it), and only once."""
    if already_closed:
        return Refusal(f"period {period.label} is already closed")
    if period.end > now:
        return Refusal(f"period {period.label} has not ended (it ends {period.end.isoformat()})")
    return None
