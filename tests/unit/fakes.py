"""In-memory fakes of the adapters, so service-layer rules run in milliseconds (cosmicpython style)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from utfall_contracts.domain.book import ContractBook, EpisodeKey, FactInfo, StateKey
from utfall_contracts.domain.cohort import PlacementFacts
from utfall_contracts.domain.ledger import MilestoneState
from utfall_events.contracts import ContractDefinitionV1
from utfall_events.payments import PaymentV1


class FakeContractsRepository:
    def __init__(self) -> None:
        self.placements: dict[EpisodeKey, PlacementFacts] = {}
        self.fact_status: dict[tuple[EpisodeKey, str], FactInfo] = {}
        self.people: dict[tuple[str, EpisodeKey], tuple[str, str]] = {}
        self.states: dict[tuple[str, StateKey], tuple[MilestoneState, datetime | None]] = {}
        self.totals: dict[str, int] = {}
        self.ledger: list[PaymentV1] = []
        self.locked: list[str] = []

    async def lock_contracts(self, contract_ids: Sequence[str]) -> None:
        self.locked.extend(sorted(contract_ids))

    async def current_placements(self, keys: Sequence[EpisodeKey]) -> dict[EpisodeKey, PlacementFacts]:
        return {k: self.placements[k] for k in keys if k in self.placements}

    async def facts(self, keys: Sequence[EpisodeKey]) -> dict[tuple[EpisodeKey, str], FactInfo]:
        wanted = set(keys)
        return {k: v for k, v in self.fact_status.items() if k[0] in wanted}

    async def participants(
        self, contract_id: str, keys: Sequence[EpisodeKey]
    ) -> dict[EpisodeKey, tuple[str, str]]:
        return {k: self.people[(contract_id, k)] for k in keys if (contract_id, k) in self.people}

    async def open_book(
        self, contract_id: str, version: int, definition: ContractDefinitionV1, keys: Sequence[EpisodeKey]
    ) -> ContractBook:
        book = ContractBook(contract_id, version, definition, self.totals.get(contract_id, 0))
        wanted = set(keys)
        for (cid, state_key), (state, blocked_at) in self.states.items():
            if cid == contract_id and state_key[0] in wanted:
                book.states[state_key] = state
                if blocked_at is not None:
                    book.blocked_at[state_key] = blocked_at
                book.participant_paid[state_key[0]] = (
                    book.participant_paid.get(state_key[0], 0) + state.active_amount_ore
                )
        return book

    async def blocked(self, contract_id: str) -> list[tuple[StateKey, MilestoneState, datetime]]:
        return [
            (sk, st, at)
            for (cid, sk), (st, at) in self.states.items()
            if cid == contract_id and st.blocked and at is not None
        ]

    async def participant_paid(self, contract_id: str, keys: Sequence[EpisodeKey]) -> dict[EpisodeKey, int]:
        out: dict[EpisodeKey, int] = {}
        for (cid, (key, _)), (state, _) in self.states.items():
            if cid == contract_id and key in keys:
                out[key] = out.get(key, 0) + state.active_amount_ore
        return out

    async def save_participants(
        self,
        book: ContractBook,
        enrolled: dict[EpisodeKey, PlacementFacts],
        leaving: Sequence[EpisodeKey],
        now: datetime,
    ) -> None:
        for key, placement in enrolled.items():
            self.people[(book.contract_id, key)] = ("enrolled", placement.subject_ref)
        for key in leaving:
            self.people[(book.contract_id, key)] = ("withdrawn", self.people[(book.contract_id, key)][1])

    async def save_book(self, book: ContractBook, now: datetime) -> int:
        for state_key in book.changed_states:
            state = book.states[state_key]
            self.states[(book.contract_id, state_key)] = (
                state,
                book.blocked_at.get(state_key) if state.blocked else None,
            )
        ids = {(e.payment_id, e.kind) for e in self.ledger}
        for entry in book.ledger:
            assert (entry.payment_id, entry.kind) not in ids, "payment id reused"  # the unique constraint
            ids.add((entry.payment_id, entry.kind))
        self.ledger.extend(book.ledger)
        self.totals[book.contract_id] = book.paid_net_ore
        return len(book.ledger)
