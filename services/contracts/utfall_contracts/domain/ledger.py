"""The payment rule for one participant's milestone, as a pure decision, and deterministic payment ids.

    decide(state, achieved, caps) -> trigger | reverse | block | unblock | nothing

A trigger pays the milestone price cut to what both caps have left; with nothing left it is blocked
(and paid later if a reversal frees room). A milestone no longer achieved (retraction, correction, the
participant leaving the cohort) reverses exactly the amount paid. The sum paid never exceeds a cap.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

PAYMENT_NAMESPACE = uuid.UUID("5b2f7c1e-8f0a-4d53-9c61-0e4a1b7f6d10")


def payment_id(
    contract_id: str,
    subject_ref: str,
    provider_id: str,
    episode_id: str,
    milestone_id: str,
    occurrence: int = 1,
) -> str:
    """UUIDv5 of contract, subject_ref, episode and milestone; a re-trigger after a reversal adds its
    occurrence number, so every trigger has its own id and every id is paid at most once."""
    name = f"{contract_id}|{subject_ref}|{provider_id}/{episode_id}|{milestone_id}"
    if occurrence > 1:
        name += f"|{occurrence}"
    return str(uuid.uuid5(PAYMENT_NAMESPACE, name))


def reversal_entry_id(payment: str) -> str:
    return str(uuid.uuid5(PAYMENT_NAMESPACE, f"{payment}|reversed"))


@dataclass(frozen=True, slots=True)
class MilestoneState:
    occurrences: int = 0
    active_payment_id: str | None = None
    active_amount_ore: int = 0
    blocked: bool = False


@dataclass(frozen=True, slots=True)
class Caps:
    participant_left_ore: int
    total_left_ore: int


@dataclass(frozen=True, slots=True)
class Action:
    kind: Literal["trigger", "reverse", "block", "unblock", "none"]
    amount_ore: int = 0
    occurrence: int = 0
    capped: bool = False


NOTHING = Action("none")


def decide(state: MilestoneState, *, achieved: bool, price_ore: int, caps: Caps) -> Action:
    if achieved and state.active_payment_id is None:
        amount = min(price_ore, caps.participant_left_ore, caps.total_left_ore)
        if amount <= 0:
            return NOTHING if state.blocked else Action("block")
        return Action("trigger", amount, state.occurrences + 1, capped=amount < price_ore)
    if not achieved and state.active_payment_id is not None:
        return Action("reverse", state.active_amount_ore)
    if not achieved and state.blocked:
        return Action("unblock")
    return NOTHING


def evolve(state: MilestoneState, action: Action, *, new_payment_id: str | None = None) -> MilestoneState:
    if action.kind == "trigger":
        return MilestoneState(action.occurrence, new_payment_id, action.amount_ore, False)
    if action.kind == "reverse":
        return MilestoneState(state.occurrences, None, 0, False)
    if action.kind == "block":
        return MilestoneState(state.occurrences, None, 0, True)
    if action.kind == "unblock":
        return MilestoneState(state.occurrences, None, 0, False)
    return state
