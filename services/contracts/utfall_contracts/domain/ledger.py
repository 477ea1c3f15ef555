"""The payment rule of a contract, as pure functions, and deterministic payment ids.

What a contract owes is a function of the facts alone, never of the order they arrived in:

1. A milestone is *earned* when its participant is enrolled and the milestone's outcome is achieved.
2. **First determined, first paid.** Earned milestones are ordered by their outcome date (the day the
   evidence settled the outcome: `OutcomeFactV1.outcome_date`), then by their first payment id (a UUIDv5,
   so ties break the same way everywhere).
3. Per participant, in that order, each milestone is *entitled* to its price cut to what the per-participant
   cap has left (`participant_entitlements`).
4. Across the contract, in that order, each entitlement is cut to what the total cap has left after every
   entitlement before it (`allocate`). The result is the milestone's *target*.
5. The ledger follows the targets (`settle`): when a milestone's target differs from what stands paid for
   it, the standing payment is reversed in full and, if the target is above zero, a new payment (the next
   occurrence, its own deterministic id) is triggered for the target. So every payment id is triggered once
   and reversed at most once, for the same amount, and a participant's net is min(earned, cap) whatever the
   order; a milestone cut by a cap is topped up (reversed and paid again in full) when room frees, and shrunk
   the same way when an earlier-determined outcome takes the room.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal, TypeVar

PAYMENT_NAMESPACE = uuid.UUID("5b2f7c1e-8f0a-4d53-9c61-0e4a1b7f6d10")
UNKNOWN_OUTCOME_DATE = date(9999, 12, 31)  # facts published before outcome dates existed sort last

Order = tuple[date, str]  # (outcome date, first payment id)
K = TypeVar("K")


def payment_id(
    contract_id: str,
    subject_ref: str,
    provider_id: str,
    episode_id: str,
    milestone_id: str,
    occurrence: int = 1,
) -> str:
    """UUIDv5 of contract, subject_ref, episode and milestone; every later payment of the same milestone
    (after a reversal) adds its occurrence number, so every trigger has its own id."""
    name = f"{contract_id}|{subject_ref}|{provider_id}/{episode_id}|{milestone_id}"
    if occurrence > 1:
        name += f"|{occurrence}"
    return str(uuid.uuid5(PAYMENT_NAMESPACE, name))


def reversal_entry_id(payment: str) -> str:
    return str(uuid.uuid5(PAYMENT_NAMESPACE, f"{payment}|reversed"))


@dataclass(frozen=True, slots=True)
class Earned:
    milestone_id: str
    price_ore: int
    order: Order


def participant_entitlements(earned: Iterable[Earned], per_participant_cap_ore: int) -> dict[str, int]:
    """Each earned milestone of one participant, in payment order, gets its price cut to the cap left."""
    left = per_participant_cap_ore
    out: dict[str, int] = {}
    for item in sorted(earned, key=lambda e: (e.order, e.milestone_id)):
        amount = max(0, min(item.price_ore, left))
        out[item.milestone_id] = amount
        left -= amount
    return out


def allocate(
    entitlements: Iterable[tuple[Order, K, int]], total_cap_ore: int, entitled_before_ore: int = 0
) -> dict[K, int]:
    """Targets under the total cap: (order, key, entitled amount) in, key -> target out. `entitled_before_ore`
    is the sum of the entitlements ordered before the first one given (they are not re-allocated)."""
    before = entitled_before_ore
    out: dict[K, int] = {}
    for _, key, amount in sorted(entitlements, key=lambda t: t[0]):  # orders are unique (payment ids)
        out[key] = max(0, min(amount, total_cap_ore - before))
        before += amount
    return out


@dataclass(frozen=True, slots=True)
class MilestoneState:
    occurrences: int = 0
    active_payment_id: str | None = None
    active_amount_ore: int = 0
    entitled_ore: int = 0
    order: Order | None = None  # while earned
    disallowed: bool = False  # an upheld dispute: never entitled again

    @property
    def cut(self) -> bool:
        """Earned, but a cap keeps part of it (or all) unpaid."""
        return self.active_amount_ore < self.entitled_ore


@dataclass(frozen=True, slots=True)
class Action:
    kind: Literal["trigger", "reverse"]
    amount_ore: int
    occurrence: int


def settle(state: MilestoneState, target_ore: int) -> list[Action]:
    """What the ledger writes to move a milestone from what stands paid to its target."""
    if target_ore == state.active_amount_ore:
        return []
    actions = []
    if state.active_payment_id is not None and state.active_amount_ore > 0:
        actions.append(Action("reverse", state.active_amount_ore, state.occurrences))
    if target_ore > 0:
        actions.append(Action("trigger", target_ore, state.occurrences + 1))
    return actions


def evolve(state: MilestoneState, action: Action, *, new_payment_id: str | None = None) -> MilestoneState:
    if action.kind == "trigger":
        return replace(
            state,
            occurrences=action.occurrence,
            active_payment_id=new_payment_id,
            active_amount_ore=action.amount_ore,
        )
    return replace(state, active_payment_id=None, active_amount_ore=0)
