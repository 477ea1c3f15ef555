"""One contract's book during a reconciliation: milestone states, totals and the ledger entries it writes.

Pure: `entitle` records what a milestone is entitled to under the per-participant cap, `settle` moves it to
its target under the total cap (see `ledger` for the rule) and writes the ledger entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime

from utfall_events.catalogue import CATALOGUE
from utfall_events.contracts import ContractDefinitionV1, MilestoneV1
from utfall_events.outcomes import EventRef
from utfall_events.payments import PaymentV1

from .ledger import Action, MilestoneState, Order, evolve, payment_id, reversal_entry_id, settle

EpisodeKey = tuple[str, str]
StateKey = tuple[EpisodeKey, str]  # (episode, milestone id)

# What set a reconciliation off, in words for a reversal's reason (the reason a statement shows).
_TRIGGERS = {
    "outcome": "a reported outcome changed",
    "placement": "a placement was reported or retracted",
    "contract amended": "the contract was amended",
    "reallocation": "the payment rule was applied again",
}


def recorded_when(trigger: str) -> str:
    return f"recorded when {_TRIGGERS.get(trigger, trigger)}"


@dataclass(frozen=True, slots=True)
class FactInfo:
    status: str
    measure_version: int
    evidence: tuple[EventRef, ...]
    subject_ref: str
    outcome_date: date | None = None


@dataclass
class ContractBook:
    contract_id: str
    version: int
    definition: ContractDefinitionV1
    paid_net_ore: int
    entitled_total_ore: int = 0
    states: dict[StateKey, MilestoneState] = field(default_factory=dict)
    subjects: dict[EpisodeKey, str] = field(default_factory=dict)  # participants' subject_ref
    enrolled: set[EpisodeKey] = field(default_factory=set)
    facts: dict[tuple[EpisodeKey, str], FactInfo] = field(default_factory=dict)
    changed_states: set[StateKey] = field(default_factory=set)
    ledger: list[PaymentV1] = field(default_factory=list)
    lowest_changed_order: Order | None = None  # targets from here on may have changed

    @property
    def total_left_ore(self) -> int:
        return self.definition.total_cap_ore - self.paid_net_ore

    @property
    def cap_binds(self) -> bool:
        return self.entitled_total_ore > self.definition.total_cap_ore

    def entitle(self, key: StateKey, amount_ore: int, order: Order | None) -> None:
        state = self.states.get(key, MilestoneState())
        order = order if amount_ore > 0 else None
        if state.entitled_ore == amount_ore and state.order == order:
            return
        for moved in (state.order, order):
            if moved is not None and (self.lowest_changed_order is None or moved < self.lowest_changed_order):
                self.lowest_changed_order = moved
        self.entitled_total_ore += amount_ore - state.entitled_ore
        self.states[key] = replace(state, entitled_ore=amount_ore, order=order)
        self.changed_states.add(key)

    def settle(self, key: StateKey, target_ore: int, *, now: datetime, reason: str) -> list[Action]:
        episode, milestone_id = key
        milestone = next((m for m in self.definition.milestones if m.milestone_id == milestone_id), None)
        if milestone is None:  # an amendment dropped the milestone: what was paid for it stands
            return []
        state = self.states.get(key, MilestoneState())
        actions = settle(state, target_ore)
        if not actions:
            return actions
        measure_id = milestone.measure_id
        subject = self.subjects[episode]
        fact = self.facts.get((episode, milestone.fact_measure_id))
        new_id = None
        trigger = next((a for a in actions if a.kind == "trigger"), None)
        if trigger is not None:
            new_id = payment_id(
                self.contract_id, subject, episode[0], episode[1], milestone_id, trigger.occurrence
            )
        replaced, replaced_amount = state.active_payment_id, state.active_amount_ore
        for action in actions:
            if action.kind == "reverse":
                assert state.active_payment_id is not None
                self.paid_net_ore -= action.amount_ore
                why = self._why_reversed(key, state, target_ore, fact, new_id)
                self.ledger.append(
                    self._entry(
                        "payment.reversed",
                        reversal_entry_id(state.active_payment_id),
                        state.active_payment_id,
                        action,
                        False,
                        subject,
                        episode,
                        milestone_id,
                        measure_id,
                        fact,
                        now,
                        f"{why}; {recorded_when(reason)}",
                    )
                )
            else:
                assert new_id is not None
                self.paid_net_ore += action.amount_ore
                self.ledger.append(
                    self._entry(
                        "payment.triggered",
                        new_id,
                        new_id,
                        action,
                        action.amount_ore < milestone.price_ore,
                        subject,
                        episode,
                        milestone_id,
                        measure_id,
                        fact,
                        now,
                        _paid_because(milestone, fact, replaced, replaced_amount),
                    )
                )
            state = evolve(state, action, new_payment_id=new_id)
        self.states[key] = state
        self.changed_states.add(key)
        return actions

    def _why_reversed(
        self, key: StateKey, state: MilestoneState, target: int, fact: FactInfo | None, new_id: str | None
    ) -> str:
        if target > 0:
            direction = (
                "room under a cap freed up" if target > state.active_amount_ore else "a cap leaves less"
            )
            return f"{direction}; paid again as {new_id} ({target} öre)"
        if state.disallowed:
            return "the commissioner upheld a dispute of this payment; the milestone is not paid"
        if state.entitled_ore > 0:
            return "the total cap is taken by outcomes determined earlier (first determined, first paid)"
        if fact is not None and fact.status == "achieved" and key[0] not in self.enrolled:
            return "the participant is no longer in the contract's cohort (a corrected placement)"
        milestone = next(m for m in self.definition.milestones if m.milestone_id == key[1])
        return outcome_change(milestone.measure_id, fact, validation=milestone.validation)

    def _entry(
        self,
        kind: str,
        entry_id: str,
        pid: str,
        action: Action,
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
            occurrence=max(action.occurrence, 1),
            contract_id=self.contract_id,
            contract_version=self.version,
            milestone_id=milestone_id,
            measure_id=measure_id,
            measure_version=fact.measure_version if fact else 0,
            subject_ref=subject,
            provider_id=key[0],
            episode_id=key[1],
            amount_ore=action.amount_ore,
            capped=capped,
            evidence=list(fact.evidence) if fact else [],
            determined_at=now,
            reason=reason,
        )


def _paid_because(
    milestone: MilestoneV1, fact: FactInfo | None, replaced: str | None, replaced_amount: int
) -> str | None:
    """A trigger's reason: which validation paid it (a register's, naming its row), and what it replaces."""
    parts = []
    if milestone.validation == "register":
        rows = [
            f"{e.source}#{e.id}" for e in (fact.evidence if fact else ()) if e.source.startswith("register/")
        ]
        parts.append(
            "validated by register"
            + (f" ({', '.join(rows)})" if rows else " (no re-placement in its coverage)")
        )
    if replaced:
        parts.append(f"replaces payment {replaced} ({replaced_amount} öre)")
    return "; ".join(parts) or None


def outcome_change(measure_id: str, fact: FactInfo | None, *, validation: str = "reported") -> str:
    """What happened to a paid outcome, in words a finance reader can check, naming the event behind it."""
    measure = next((m for m in CATALOGUE if m.id == measure_id), None)
    title = measure.title_en if measure is not None else measure_id
    if validation == "register":
        return _register_change(title, fact)
    if fact is None or fact.status == "void":
        return (
            f"{title}: the outcome no longer stands; an event it rested on was retracted or corrected, "
            "or the placement no longer ends"
        )
    event = f" (event {fact.evidence[-1].id})" if fact.evidence else ""
    on = f" on {fact.outcome_date.isoformat()}" if fact.outcome_date else ""
    if fact.status == "not_achieved" and measure is not None and measure.kind == "no_replacement":
        return f"re-placed, or reported re-placed,{on}, within {measure.window_months} months of discharge{event}"
    if fact.status == "not_achieved":
        return f"{title}: now not achieved{on}{event}"
    if fact.status == "missing":
        return f"{title}: no follow-up within the window; the outcome is missing{on}"
    if fact.status == "pending":
        return f"{title}: open again, awaiting the outcome (a corrected discharge){event}"
    return f"{title}: outcome is now {fact.status}{on}{event}"


def _register_change(title: str, fact: FactInfo | None) -> str:
    if fact is None or fact.status == "void":
        return f"{title}: the register no longer confirms the outcome (a corrected register row or event)"
    row = f" (register row {fact.evidence[-1].source}#{fact.evidence[-1].id})" if fact.evidence else ""
    on = f" on {fact.outcome_date.isoformat()}" if fact.outcome_date else ""
    if fact.status == "excluded":
        return f"{title}: the register excludes the outcome (a death or emigration{on}){row}"
    return f"{title}: the register now says {fact.status.replace('_', ' ')}{on}{row}"
