"""Contracts' service layer: bring enrolment and the ledger of some episodes in line with what is known.

Called when a placement arrives or is retracted, when an outcome fact changes, and when a contract is
created or amended. Reads and writes go through a repository (Postgres in the service, an in-memory fake
in unit tests); in the service every effect lands in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from utfall_events.contracts import ContractDefinitionV1

from . import metrics as contract_metrics
from .domain.book import ContractBook, EpisodeKey, FactInfo
from .domain.cohort import PlacementFacts, enrols
from .repository import ContractsRepository

__all__ = ["EpisodeKey", "FactInfo", "reconcile"]


async def reconcile(
    repo: ContractsRepository,
    contracts: dict[str, tuple[int, ContractDefinitionV1]],
    keys: Iterable[EpisodeKey],
    *,
    now: datetime,
    reason: str,
) -> int:
    """Returns the number of ledger entries written."""
    episode_keys = sorted(set(keys))
    providers = {k[0] for k in episode_keys}
    touched = sorted(c for c, (_, d) in contracts.items() if providers & set(d.provider_ids))
    if not touched:
        return 0
    # Lock before reading. A placement and its outcome fact arrive on two consumers, each in its own
    # transaction; were the reads taken before the lock, each could miss the other's uncommitted row and
    # neither would pay. Locked first, the later transaction reads what the earlier one committed.
    await repo.lock_contracts(touched)
    placements = await repo.current_placements(episode_keys)
    facts = await repo.facts(episode_keys)
    written = 0
    for contract_id in touched:
        version, definition = contracts[contract_id]
        relevant = [k for k in episode_keys if k[0] in set(definition.provider_ids)]
        if not relevant:
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
        reversed_any = False
        for key in relevant:
            if key not in enrolled and key not in participants:
                continue
            subject = enrolled[key].subject_ref if key in enrolled else participants[key][1]
            for milestone in definition.milestones:
                fact = facts.get((key, milestone.measure_id))
                achieved = key in enrolled and fact is not None and fact.status == "achieved"
                action = book.step(
                    key,
                    subject,
                    milestone.milestone_id,
                    milestone.measure_id,
                    milestone.price_ore,
                    achieved=achieved,
                    fact=fact,
                    now=now,
                    reason=reason,
                )
                reversed_any |= action.kind == "reverse"
        if reversed_any:
            await _pay_blocked(repo, book, now)
        written += await repo.save_book(book, now)
    return written


async def _pay_blocked(repo: ContractsRepository, book: ContractBook, now: datetime) -> None:
    """A reversal freed room under the caps: pay blocked milestones, oldest first."""
    for state_key, state, blocked_at in await repo.blocked(book.contract_id):
        if state_key not in book.states:  # this call's in-memory state wins over the stored one
            book.states[state_key] = state
            book.blocked_at[state_key] = blocked_at
    blocked = sorted((book.blocked_at.get(sk, now), sk) for sk, st in book.states.items() if st.blocked)
    if not blocked:
        return
    keys = sorted({sk[0] for _, sk in blocked})
    unknown = [k for k in keys if k not in book.participant_paid]
    if unknown:
        book.participant_paid.update(await repo.participant_paid(book.contract_id, unknown))
    people = await repo.participants(book.contract_id, keys)
    facts = await repo.facts(keys)
    milestones = {m.milestone_id: m for m in book.definition.milestones}
    for _, (key, milestone_id) in blocked:
        if book.total_left_ore <= 0:
            break
        milestone = milestones.get(milestone_id)
        person = people.get(key)
        if milestone is None or person is None:
            continue
        fact = facts.get((key, milestone.measure_id))
        achieved = person[0] == "enrolled" and fact is not None and fact.status == "achieved"
        book.step(
            key,
            person[1],
            milestone_id,
            milestone.measure_id,
            milestone.price_ore,
            achieved=achieved,
            fact=fact,
            now=now,
            reason="room under the cap",
        )
