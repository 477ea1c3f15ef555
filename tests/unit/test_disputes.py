"""Disputes as pure decisions: at most one dispute and one resolution per payment, in that order, only of a
payment that stands; entry ids deterministic; a period closes once, and only after it ended."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from utfall_contracts.domain.disputes import (
    PaymentStanding,
    Refusal,
    decide_close,
    decide_dispute,
    decide_resolution,
    dispute_entry_id,
)
from utfall_events.ledger_commands import DisputePaymentV1, ResolveDisputeV1
from utfall_events.payments import PaymentV1
from utfall_events.periods import parse_period

EXAMPLES = Path(str(resources.files("utfall_events").joinpath("examples"))) / "messages"
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
TRIGGER = PaymentV1.model_validate(json.loads((EXAMPLES / "payment_triggered.json").read_text())["message"])


def dispute(role: str = "assessor") -> DisputePaymentV1:
    return DisputePaymentV1(
        command_id=str(uuid.uuid4()),
        contract_id=TRIGGER.contract_id,
        key_id="k1",
        requested_at=NOW,
        payment_id=TRIGGER.payment_id,
        role=role,  # type: ignore[arg-type]
        reason="evidence does not show the discharge was planned",
    )


def resolve(resolution: str) -> ResolveDisputeV1:
    return ResolveDisputeV1(
        command_id=str(uuid.uuid4()),
        contract_id=TRIGGER.contract_id,
        key_id="k2",
        requested_at=NOW,
        payment_id=TRIGGER.payment_id,
        resolution=resolution,  # type: ignore[arg-type]
        reason="checked against the case file",
    )


def test_a_standing_payment_is_disputed_then_resolved_with_deterministic_entries() -> None:
    entry = decide_dispute(PaymentStanding(TRIGGER, False, None), dispute(), NOW)
    assert isinstance(entry, PaymentV1)
    assert entry.kind == "payment.disputed" and entry.signed_amount_ore == 0
    assert entry.amount_ore == TRIGGER.amount_ore and entry.evidence == TRIGGER.evidence
    assert entry.entry_id == dispute_entry_id(TRIGGER.payment_id, "disputed") != TRIGGER.entry_id
    assert entry.dispute is not None and entry.dispute.resolution is None
    resolved = decide_resolution(PaymentStanding(TRIGGER, False, entry.dispute), resolve("upheld"), NOW)
    assert isinstance(resolved, PaymentV1)
    assert resolved.kind == "payment.dispute_resolved" and resolved.signed_amount_ore == 0
    assert resolved.entry_id == dispute_entry_id(TRIGGER.payment_id, "dispute_resolved")
    assert resolved.dispute is not None and resolved.dispute.resolution == "upheld"
    assert "reversed" in (resolved.reason or "")


def test_refusals_say_why() -> None:
    assert isinstance(decide_dispute(None, dispute(), NOW), Refusal)
    reversed_ = decide_dispute(PaymentStanding(TRIGGER, True, None), dispute("finance"), NOW)
    assert isinstance(reversed_, Refusal) and "reversed" in reversed_.detail
    assert isinstance(
        decide_resolution(PaymentStanding(TRIGGER, False, None), resolve("dismissed"), NOW), Refusal
    )


@given(st.lists(st.sampled_from(["dispute", "upheld", "dismissed", "reverse"]), max_size=12))
def test_any_sequence_of_commands_gives_at_most_one_dispute_and_one_resolution_in_order(
    steps: list[str],
) -> None:
    standing = PaymentStanding(TRIGGER, False, None)
    entries: list[str] = []
    for step in steps:
        if step == "reverse":
            standing = PaymentStanding(TRIGGER, True, standing.dispute)
            continue
        decision = (
            decide_dispute(standing, dispute(), NOW)
            if step == "dispute"
            else decide_resolution(standing, resolve(step), NOW)
        )
        if isinstance(decision, PaymentV1):
            entries.append(decision.kind)
            standing = PaymentStanding(TRIGGER, standing.reversed, decision.dispute)
    assert entries in ([], ["payment.disputed"], ["payment.disputed", "payment.dispute_resolved"])
    if entries:  # only a payment that stood was disputed
        assert "dispute" in steps and steps.index("dispute") < (
            steps.index("reverse") if "reverse" in steps else 99
        )


def test_a_period_closes_once_and_only_after_it_ended() -> None:
    q1 = parse_period("2026-Q1")
    assert q1 is not None
    refused = decide_close(q1, already_closed=False, now=NOW)
    assert isinstance(refused, Refusal) and "has not ended" in refused.detail
    assert decide_close(q1, already_closed=False, now=q1.end + timedelta(seconds=1)) is None
    assert isinstance(decide_close(q1, already_closed=True, now=q1.end + timedelta(days=9)), Refusal)
