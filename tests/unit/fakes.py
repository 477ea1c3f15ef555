"""In-memory fakes of the adapters, so service-layer rules run in milliseconds (cosmicpython style)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from utfall_contracts.domain.book import ContractBook, EpisodeKey, FactInfo, StateKey
from utfall_contracts.domain.cohort import PlacementFacts
from utfall_contracts.domain.ledger import MilestoneState, Order
from utfall_contracts.repository import FactUpdate, StartedPlacement
from utfall_events.codec import decode_care_event
from utfall_events.contracts import ContractDefinitionV1
from utfall_events.payments import PaymentV1
from utfall_ingest.domain.admission import (
    Episode,
    EventKey,
    HeldEvent,
    KnownEvent,
    Outcome,
    Publish,
    decide_batch,
)
from utfall_ingest.domain.admission import EpisodeKey as EpisodeKey_
from utfall_ingest.domain.validation import CheckedEvent, PseudonymKey, Rejection, check_event
from utfall_ingest.messages import care_event_message
from utfall_measures.domain.episodes import StoredEvent

from ..providers import EveryProviderRegistered


class FakeContractsRepository:
    """Keeps what the Postgres repository keeps; tests/integration/test_contracts_repository.py runs one
    suite over both, so the two cannot drift."""

    def __init__(self) -> None:
        self.placements: dict[EpisodeKey, PlacementFacts] = {}
        self.fact_status: dict[tuple[EpisodeKey, str], FactInfo] = {}
        self.people: dict[tuple[str, EpisodeKey], tuple[str, str]] = {}
        self.states: dict[tuple[str, StateKey], MilestoneState] = {}
        self.totals: dict[str, tuple[int, int]] = {}  # contract -> (paid net, entitled)
        self.ledger: list[PaymentV1] = []
        self.locked: list[str] = []
        self.started: dict[tuple[str, str], StartedPlacement] = {}  # (source, event id) -> the event
        self.retracted: set[tuple[str, str]] = set()  # retractions seen, their target known or not
        self.applied: set[tuple[str, str]] = set()  # placements marked retracted
        self.revisions: dict[tuple[EpisodeKey, str], int] = {}
        self.pending: set[str] = set()

    async def pending_reallocations(self) -> list[str]:
        return sorted(self.pending)

    async def reallocated(self, contract_id: str) -> None:
        self.pending.discard(contract_id)

    async def store_placements(self, started: Sequence[StartedPlacement]) -> None:
        for placement in started:
            self.started.setdefault((placement.source, placement.event_id), placement)
        self._materialise({(p.facts.provider_id, p.facts.episode_id) for p in started})

    async def store_retractions(self, retracted: Sequence[tuple[str, str]]) -> None:
        self.retracted.update(retracted)

    async def apply_retractions(self, keys: Sequence[EpisodeKey]) -> None:
        wanted = set(keys)
        for event_key, placement in self.started.items():
            if (
                event_key in self.retracted
                and (placement.facts.provider_id, placement.facts.episode_id) in wanted
            ):
                self.applied.add(event_key)
        self._materialise(wanted)

    def _materialise(self, keys: set[EpisodeKey]) -> None:
        """The latest live placement.started of each episode, by (time, event id), as Postgres selects it."""
        for key in keys:
            live = [
                p
                for event_key, p in self.started.items()
                if (p.facts.provider_id, p.facts.episode_id) == key and event_key not in self.applied
            ]
            if live:
                self.placements[key] = max(live, key=lambda p: (p.time, p.event_id)).facts
            else:
                self.placements.pop(key, None)

    async def store_facts(self, updates: Sequence[FactUpdate], now: datetime) -> set[EpisodeKey]:
        changed = set()
        for update in updates:
            slot = (update.key, update.measure_id)
            if self.revisions.get(slot, -1) < update.revision:
                self.revisions[slot] = update.revision
                self.fact_status[slot] = update.fact
                changed.add(update.key)
        return changed

    async def lock_contracts(self, contract_ids: Sequence[str]) -> None:
        self.locked.extend(sorted(contract_ids))

    async def current_placements(self, keys: Sequence[EpisodeKey]) -> dict[EpisodeKey, PlacementFacts]:
        return {k: self.placements[k] for k in keys if k in self.placements}

    async def facts(
        self, keys: Sequence[EpisodeKey], measure_ids: Sequence[str]
    ) -> dict[tuple[EpisodeKey, str], FactInfo]:
        wanted, measures = set(keys), set(measure_ids)
        return {k: v for k, v in self.fact_status.items() if k[0] in wanted and k[1] in measures}

    async def participants(
        self, contract_id: str, keys: Sequence[EpisodeKey]
    ) -> dict[EpisodeKey, tuple[str, str]]:
        return {k: self.people[(contract_id, k)] for k in keys if (contract_id, k) in self.people}

    async def contract_episodes(self, contract_id: str, provider_ids: Sequence[str]) -> list[EpisodeKey]:
        keys = {k for k in self.placements if k[0] in provider_ids}
        keys |= {k for (cid, k) in self.people if cid == contract_id}
        return sorted(keys)

    async def open_book(
        self, contract_id: str, version: int, definition: ContractDefinitionV1, keys: Sequence[EpisodeKey]
    ) -> ContractBook:
        paid, entitled = self.totals.get(contract_id, (0, 0))
        book = ContractBook(contract_id, version, definition, paid, entitled)
        wanted = set(keys)
        for (cid, state_key), state in self.states.items():
            if cid == contract_id and state_key[0] in wanted:
                book.states[state_key] = state
        return book

    async def unsettled(self, contract_id: str) -> dict[StateKey, MilestoneState]:
        return {
            k: s
            for (cid, k), s in self.states.items()
            if cid == contract_id and s.active_amount_ore != s.entitled_ore
        }

    async def ordered_states(
        self, contract_id: str, from_order: Order | None
    ) -> tuple[dict[StateKey, MilestoneState], int]:
        rows: dict[StateKey, MilestoneState] = {}
        before = 0
        for (cid, key), state in self.states.items():
            if cid != contract_id or (state.entitled_ore == 0 and state.active_amount_ore == 0):
                continue
            if from_order is None or (state.order is not None and state.order >= from_order):
                rows[key] = state
            elif state.order is not None:
                before += state.entitled_ore
        return rows, before

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
            self.states[(book.contract_id, state_key)] = book.states[state_key]
        if book.changed_states:
            self.totals[book.contract_id] = (book.paid_net_ore, book.entitled_total_ore)
        ids = {(e.payment_id, e.kind) for e in self.ledger}
        for entry in book.ledger:
            assert (entry.payment_id, entry.kind) not in ids, "payment id reused"  # the unique constraint
            ids.add((entry.payment_id, entry.kind))
        self.ledger.extend(book.ledger)
        return len(book.ledger)


class FakeIngest:
    """Ingest's admission with an in-memory store that keeps what `store.save_decision` keeps: batches of raw
    events in, the care events ingest would publish out (as measures decodes them)."""

    def __init__(self, *, today: date, now: datetime, secret: bytes = b"test-secret") -> None:
        self.today, self.now = today, now
        self.key = PseudonymKey("v1", secret)
        self.known: dict[EventKey, KnownEvent] = {}
        self.episodes: dict[EpisodeKey_, Episode] = {}
        self.held: dict[EventKey, HeldEvent] = {}
        self.published: list[Publish] = []
        self.rejected: list[Rejection] = []
        self.batches = 0
        self.ever_held = 0

    def admit(self, raw_events: list[dict[str, Any]]) -> list[Outcome | Rejection]:
        self.batches += 1
        at = self.now + timedelta(seconds=self.batches)  # held_at orders what waits, as in Postgres
        out: list[Outcome | Rejection] = []
        checked: list[CheckedEvent] = []
        for raw in raw_events:
            result = check_event(
                raw,
                authenticated_provider=None,
                providers=EveryProviderRegistered(),
                today=self.today,
                now=self.now,
                key=self.key,
            )
            if isinstance(result, Rejection):
                self.rejected.append(result)
            else:
                checked.append(result)
        waiting = sorted(self.held.values(), key=lambda h: (h.held_at or at, h.event.event_id))
        held: dict[EpisodeKey_, list[HeldEvent]] = {}
        awaiting: dict[EventKey, list[HeldEvent]] = {}
        for h in waiting:
            if h.episode_id is not None:
                held.setdefault((h.event.source, h.episode_id), []).append(h)
            else:
                assert h.awaits_event_id is not None
                awaiting.setdefault((h.event.source, h.awaits_event_id), []).append(h)
        decision = decide_batch(
            checked, known=self.known, episodes=self.episodes, held=held, awaiting=awaiting
        )
        for key in decision.forgotten:
            self.known.pop(key, None)
        for record in (*decision.new_events.values(), *decision.changed_events.values()):
            key = (record.source, record.event_id)
            previous = self.known.get(key)
            self.known[key] = (
                replace(previous, status=record.status, episode_id=record.episode_id) if previous else record
            )
        for target, _ in decision.retracted:
            self.known[target] = replace(self.known[target], retracted=True)
        for key in decision.unhold:
            del self.held[key]
        self.episodes.update(decision.episodes)
        for key, h in decision.hold.items():
            self.held[key] = replace(h, held_at=h.held_at or at)
            self.ever_held += 1
        self.published.extend(decision.publish)
        self.rejected.extend(decision.late_rejections)
        for event, outcome in zip(checked, decision.outcomes, strict=True):
            out.append(
                Rejection(event.event_id, event.source, event.type, outcome.reasons)
                if outcome.status == "rejected"
                else outcome
            )
            if outcome.status == "rejected":
                self.rejected.append(out[-1])  # type: ignore[arg-type]
        return out

    def stored_events(self) -> list[StoredEvent]:
        """What measures stores of the published stream: decoded from the very messages ingest would send."""
        out = []
        for item in self.published:
            message = care_event_message(item, ingested_at=self.now)
            d = decode_care_event(message.headers, message.value)
            out.append(
                StoredEvent(
                    d.source, d.event_id, d.type, d.time, d.subject_ref, d.provider_id, d.episode_id, d.data
                )
            )
        return out
