"""Contracts' service layer: bring enrolment and the ledger of some episodes in line with what is known.

Called when a placement arrives or is retracted, when an outcome fact changes, and when a contract is
created or amended. Reads and writes go through a repository (Postgres in the service, an in-memory fake
in unit tests); in the service every effect lands in the caller's transaction.

The rule (domain/ledger.py): entitlements per participant, then the total cap first determined, first paid,
then the ledger follows the targets. Only what can have changed is re-allocated: while the contract's
entitlements fit under its total cap every target is its entitlement; when they do not, the targets from the
earliest changed payment order onwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from utfall_events.contracts import ContractDefinitionV1

from . import metrics as contract_metrics
from .domain.book import ContractBook, EpisodeKey, FactInfo, StateKey
from .domain.cohort import PlacementFacts, enrols
from .domain.ledger import (
    UNKNOWN_OUTCOME_DATE,
    Earned,
    MilestoneState,
    allocate,
    participant_entitlements,
    payment_id,
)
from .repository import ContractsRepository

__all__ = ["EpisodeKey", "FactInfo", "reconcile", "reconcile_contract"]


async def reconcile(
    repo: ContractsRepository,
    contracts: dict[str, tuple[int, ContractDefinitionV1]],
    keys: Iterable[EpisodeKey],
    *,
    now: datetime,
    reason: str,
    reallocate: bool = False,
) -> int:
    """Returns the number of ledger entries written. `reallocate` re-allocates every milestone of the
    contracts under their total caps (after an amendment), not only what these episodes changed."""
    episode_keys = sorted(set(keys))
    providers = {k[0] for k in episode_keys}
    touched = sorted(c for c, (_, d) in contracts.items() if reallocate or providers & set(d.provider_ids))
    if not touched:
        return 0
    # Lock before reading. A placement and its outcome fact arrive on two consumers, each in its own
    # transaction; were the reads taken before the lock, each could miss the other's uncommitted row and
    # neither would pay. Locked first, the later transaction reads what the earlier one committed.
    await repo.lock_contracts(touched)
    placements = await repo.current_placements(episode_keys)
    facts = await repo.facts(episode_keys, _paid_on(*(contracts[c][1] for c in touched)))
    written = 0
    for contract_id in touched:
        version, definition = contracts[contract_id]
        relevant = [k for k in episode_keys if k[0] in set(definition.provider_ids)]
        if not relevant and not reallocate:
            continue
        book = await repo.open_book(contract_id, version, definition, relevant)
        participants = await repo.participants(contract_id, relevant)
        enrolled: dict[EpisodeKey, PlacementFacts] = {
            k: placements[k] for k in relevant if k in placements and enrols(definition, placements[k])
        }
        leaving = [k for k in relevant if k in participants and k not in enrolled]
        await repo.save_participants(book, enrolled, leaving, now)
        contract_metrics.ENROLMENTS.labels(contract_id).inc(
            len([k for k in enrolled if k not in participants])
        )
        book.enrolled |= set(enrolled)
        for key in relevant:
            if key not in enrolled and key not in participants:
                continue
            book.subjects[key] = enrolled[key].subject_ref if key in enrolled else participants[key][1]
            _entitle(book, key, facts, enrolled=key in enrolled)
        await _settle(repo, book, now=now, reason=reason, reallocate=reallocate)
        written += await repo.save_book(book, now)
    return written


def _paid_on(*definitions: ContractDefinitionV1) -> list[str]:
    """The measures these contracts pay on: the only facts a reconciliation reads (a few of the catalogue's)."""
    return sorted({m.fact_measure_id for d in definitions for m in d.milestones})


def _entitle(
    book: ContractBook, key: EpisodeKey, facts: dict[tuple[EpisodeKey, str], FactInfo], *, enrolled: bool
) -> None:
    """What one participant's milestones are entitled to under the per-participant cap."""
    definition = book.definition
    earned = []
    for milestone in definition.milestones:
        fact = facts.get((key, milestone.fact_measure_id))
        if fact is not None:
            book.facts[(key, milestone.fact_measure_id)] = fact
        disallowed = book.states.get((key, milestone.milestone_id), MilestoneState()).disallowed
        if enrolled and fact is not None and fact.status == "achieved" and not disallowed:
            first_id = payment_id(
                book.contract_id, book.subjects[key], key[0], key[1], milestone.milestone_id
            )
            order = (fact.outcome_date or UNKNOWN_OUTCOME_DATE, first_id)
            earned.append(Earned(milestone.milestone_id, milestone.price_ore, order))
    amounts = participant_entitlements(earned, definition.per_participant_cap_ore)
    orders = {e.milestone_id: e.order for e in earned}
    for milestone in definition.milestones:
        mid = milestone.milestone_id
        book.entitle((key, mid), amounts.get(mid, 0), orders.get(mid))


async def _settle(
    repo: ContractsRepository, book: ContractBook, *, now: datetime, reason: str, reallocate: bool
) -> None:
    """Targets under the total cap for what may have changed, then the ledger entries that reach them."""
    changed = {k: book.states[k] for k in book.changed_states}
    if not changed and not reallocate:
        return  # every other milestone already stands at its target
    rows: dict[StateKey, MilestoneState]
    if book.cap_binds or reallocate:
        start = None if reallocate else book.lowest_changed_order
        stored, before = await repo.ordered_states(book.contract_id, start)
        rows = {**stored, **changed}
        earned = [(s.order, k, s.entitled_ore) for k, s in rows.items() if s.order and s.entitled_ore > 0]
        targets = allocate(earned, book.definition.total_cap_ore, before)
    else:  # everything earned fits under the total cap: each target is its entitlement
        rows = {**await repo.unsettled(book.contract_id), **changed}
        targets = {k: s.entitled_ore for k, s in rows.items()}
    moving = {k: targets.get(k, 0) for k, s in rows.items() if targets.get(k, 0) != s.active_amount_ore}
    if not moving:
        return
    await _load_for_entries(repo, book, moving.keys(), rows)
    # Shrinking first: the running total of the entries, as a finance system adds them up, never passes a cap.
    for key in sorted(moving, key=lambda k: (moving[k] > rows[k].active_amount_ore, k)):
        book.settle(key, moving[key], now=now, reason=reason)


async def _load_for_entries(
    repo: ContractsRepository,
    book: ContractBook,
    keys: Iterable[StateKey],
    rows: dict[StateKey, MilestoneState],
) -> None:
    """Ledger entries name the participant and the evidence: load them for milestones outside this call's
    episodes (moved by the total cap)."""
    for key in keys:
        book.states.setdefault(key, rows[key])
    missing = sorted({k[0] for k in keys if k[0] not in book.subjects})
    if not missing:
        return
    people = await repo.participants(book.contract_id, missing)
    for episode, (status, subject) in people.items():
        book.subjects[episode] = subject
        if status == "enrolled":
            book.enrolled.add(episode)
    book.facts.update(await repo.facts(missing, _paid_on(book.definition)))


async def reconcile_contract(
    repo: ContractsRepository,
    contract_id: str,
    version: int,
    definition: ContractDefinitionV1,
    *,
    now: datetime,
    reason: str,
    chunk: int = 5000,
) -> int:
    """Every episode of one contract, then every milestone re-allocated under its total cap: after a new
    version, or when its stored state predates the current rule."""
    contracts = {contract_id: (version, definition)}
    keys = await repo.contract_episodes(contract_id, definition.provider_ids)
    written = 0
    for start in range(0, len(keys), chunk):
        written += await reconcile(repo, contracts, keys[start : start + chunk], now=now, reason=reason)
    written += await reconcile(repo, contracts, [], now=now, reason=reason, reallocate=True)
    return written
