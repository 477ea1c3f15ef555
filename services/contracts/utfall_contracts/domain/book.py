"""One contract's book during a reconciliation: milestone states, totals and the ledger entries it writes.

Pure: `step` applies the payment rule to one participant's milestone and records the entry; the caps are
checked against the book's running totals, so they hold whatever order facts arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from utfall_events.contracts import ContractDefinitionV1
from utfall_events.outcomes import EventRef
from utfall_events.payments import PaymentV1

from .ledger import Action, Caps, MilestoneState, decide, evolve, payment_id, reversal_entry_id

EpisodeKey = tuple[str, str]
StateKey = tuple[EpisodeKey, str]  # (episode, milestone id)


@dataclass(frozen=True, slots=True)
class FactInfo:
    status: str
    measure_version: int
    evidence: tuple[EventRef, ...]
    subject_ref: str


@dataclass
class ContractBook:
    contract_id: str
    version: int
    definition: ContractDefinitionV1
    paid_net_ore: int
    states: dict[StateKey, MilestoneState] = field(default_factory=dict)
    blocked_at: dict[StateKey, datetime] = field(default_factory=dict)
    participant_paid: dict[EpisodeKey, int] = field(default_factory=dict)
    changed_states: set[StateKey] = field(default_factory=set)
    ledger: list[PaymentV1] = field(default_factory=list)

    @property
    def total_left_ore(self) -> int:
        return self.definition.total_cap_ore - self.paid_net_ore

    def step(
        self,
        key: EpisodeKey,
        subject: str,
        milestone_id: str,
        measure_id: str,
        price: int,
        *,
        achieved: bool,
        fact: FactInfo | None,
        now: datetime,
        reason: str,
    ) -> Action:
        state_key = (key, milestone_id)
        state = self.states.get(state_key, MilestoneState())
        caps = Caps(
            participant_left_ore=self.definition.per_participant_cap_ore - self.participant_paid.get(key, 0),
            total_left_ore=self.total_left_ore,
        )
        action = decide(state, achieved=achieved, price_ore=price, caps=caps)
        if action.kind == "none":
            return action
        new_id = None
        if action.kind == "trigger":
            new_id = payment_id(self.contract_id, subject, key[0], key[1], milestone_id, action.occurrence)
            self.paid_net_ore += action.amount_ore
            self.participant_paid[key] = self.participant_paid.get(key, 0) + action.amount_ore
            self.ledger.append(
                self._entry(
                    "payment.triggered",
                    new_id,
                    new_id,
                    action.amount_ore,
                    action.occurrence,
                    action.capped,
                    subject,
                    key,
                    milestone_id,
                    measure_id,
                    fact,
                    now,
                    None,
                )
            )
        elif action.kind == "reverse":
            assert state.active_payment_id is not None
            self.paid_net_ore -= action.amount_ore
            self.participant_paid[key] = self.participant_paid.get(key, 0) - action.amount_ore
            why = (
                "participant no longer in the cohort"
                if fact is not None and fact.status == "achieved"
                else f"outcome is now {fact.status if fact else 'void'}"
            )
            self.ledger.append(
                self._entry(
                    "payment.reversed",
                    reversal_entry_id(state.active_payment_id),
                    state.active_payment_id,
                    action.amount_ore,
                    state.occurrences,
                    False,
                    subject,
                    key,
                    milestone_id,
                    measure_id,
                    fact,
                    now,
                    f"{reason}: {why}",
                )
            )
        elif action.kind == "block":
            self.blocked_at[state_key] = now
        self.states[state_key] = evolve(state, action, new_payment_id=new_id)
        self.changed_states.add(state_key)
        return action

    def _entry(
        self,
        kind: str,
        entry_id: str,
        pid: str,
        amount: int,
        occurrence: int,
        capped: bool,
        subject: str,
        key: EpisodeKey,
        milestone_id: str,
        measure_id: str,
        fact: FactInfo | None,
        now: datetime,
        reason: str | None,
    ) -> PaymentV1:
        return PaymentV1(
            kind=kind,
            entry_id=entry_id,
            payment_id=pid,
            occurrence=max(occurrence, 1),
            contract_id=self.contract_id,
            contract_version=self.version,
            milestone_id=milestone_id,
            measure_id=measure_id,
            measure_version=fact.measure_version if fact else 0,
            subject_ref=subject,
            provider_id=key[0],
            episode_id=key[1],
            amount_ore=amount,
            capped=capped,
            evidence=list(fact.evidence) if fact else [],
            determined_at=now,
            reason=reason,
        )
