"""Contracts' Postgres adapter: what a reconciliation reads and writes, behind one small interface that
unit tests replace with an in-memory fake."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg
import orjson

from utfall_events.cloudevents import binary_headers
from utfall_events.contracts import ContractDefinitionV1
from utfall_events.outcomes import EventRef
from utfall_events.payments import PAYMENT_REVERSED, PAYMENT_TRIGGERED, PaymentV1
from utfall_events.topics import PAYMENTS
from utfall_platform.db import json_texts
from utfall_platform.outbox import OutboxMessage, enqueue

from . import metrics as contract_metrics
from .domain.book import ContractBook, EpisodeKey, FactInfo, StateKey
from .domain.cohort import PlacementFacts
from .domain.ledger import MilestoneState, Order

SCHEMA = "contracts"


@dataclass(frozen=True, slots=True)
class StartedPlacement:
    """A placement.started event as contracts keep it: the latest live one of an episode counts."""

    source: str
    event_id: str
    time: datetime
    facts: PlacementFacts


@dataclass(frozen=True, slots=True)
class FactUpdate:
    """One outcome fact at a revision; an older revision never overwrites a newer one."""

    key: EpisodeKey
    measure_id: str
    revision: int
    fact: FactInfo


class ContractsRepository(Protocol):
    async def store_placements(self, started: Sequence[StartedPlacement]) -> None: ...
    async def store_retractions(self, retracted: Sequence[tuple[str, str]]) -> None:
        """(source, retracted event id) pairs; a retraction may arrive before what it retracts."""
        ...

    async def apply_retractions(self, keys: Sequence[EpisodeKey]) -> None:
        """Mark every placement of these episodes that a known retraction names as retracted."""
        ...

    async def store_facts(self, updates: Sequence[FactUpdate], now: datetime) -> set[EpisodeKey]:
        """Keep each fact at its newest revision; the episodes whose facts changed."""
        ...

    async def lock_contracts(self, contract_ids: Sequence[str]) -> None:
        """Serialise reconciliations of these contracts until the transaction ends (taken in id order)."""
        ...

    async def current_placements(self, keys: Sequence[EpisodeKey]) -> dict[EpisodeKey, PlacementFacts]: ...
    async def facts(self, keys: Sequence[EpisodeKey]) -> dict[tuple[EpisodeKey, str], FactInfo]: ...
    async def participants(
        self, contract_id: str, keys: Sequence[EpisodeKey]
    ) -> dict[EpisodeKey, tuple[str, str]]:
        """(status, subject_ref) of each episode that is or was a participant."""
        ...

    async def contract_episodes(self, contract_id: str, provider_ids: Sequence[str]) -> list[EpisodeKey]:
        """Every episode a contract may concern: placements of its providers and its participants."""
        ...

    async def open_book(
        self, contract_id: str, version: int, definition: ContractDefinitionV1, keys: Sequence[EpisodeKey]
    ) -> ContractBook:
        """The contract's totals and the milestone states of these episodes; lock_contracts comes first."""
        ...

    async def unsettled(self, contract_id: str) -> dict[StateKey, MilestoneState]:
        """Milestones whose standing payment differs from their entitlement (a cap cut them)."""
        ...

    async def ordered_states(
        self, contract_id: str, from_order: Order | None
    ) -> tuple[dict[StateKey, MilestoneState], int]:
        """Milestones earned or paid whose payment order is `from_order` or later (None: all), and the sum of
        the entitlements ordered before it."""
        ...

    async def save_participants(
        self,
        book: ContractBook,
        enrolled: dict[EpisodeKey, PlacementFacts],
        leaving: Sequence[EpisodeKey],
        now: datetime,
    ) -> None: ...
    async def save_book(self, book: ContractBook, now: datetime) -> int: ...


def _unnest(keys: Sequence[EpisodeKey]) -> tuple[list[str], list[str]]:
    return [k[0] for k in keys], [k[1] for k in keys]


_STATE_COLUMNS = (
    "provider_id, episode_id, milestone_id, occurrences, active_payment_id, active_amount_ore, entitled_ore, "
    "order_date, order_payment_id"
)


def _state(r: asyncpg.Record) -> tuple[StateKey, MilestoneState]:
    order = (r["order_date"], r["order_payment_id"]) if r["order_date"] is not None else None
    return (
        ((r["provider_id"], r["episode_id"]), r["milestone_id"]),
        MilestoneState(
            r["occurrences"],
            r["active_payment_id"],
            int(r["active_amount_ore"]),
            int(r["entitled_ore"]),
            order,
        ),
    )


class PostgresRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def pending_reallocations(self) -> list[str]:
        """Contracts a migration listed for re-allocation under the current payment rule."""
        rows = await self.conn.fetch("SELECT contract_id FROM contracts.pending_reallocation ORDER BY 1")
        return [r["contract_id"] for r in rows]

    async def reallocated(self, contract_id: str) -> None:
        await self.conn.execute(
            "DELETE FROM contracts.pending_reallocation WHERE contract_id = $1", contract_id
        )

    async def store_placements(self, started: Sequence[StartedPlacement]) -> None:
        if not started:
            return
        await self.conn.execute(
            "INSERT INTO contracts.placements (source, event_id, provider_id, episode_id, subject_ref, "
            "municipality_code, care_type, legal_basis, target_group, age_at_start, start_date, time) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
            "$7::text[], $8::text[], $9::text[], $10::int[], $11::date[], $12::timestamptz[]) "
            "ON CONFLICT DO NOTHING",
            [s.source for s in started],
            [s.event_id for s in started],
            [s.facts.provider_id for s in started],
            [s.facts.episode_id for s in started],
            [s.facts.subject_ref for s in started],
            [s.facts.municipality_code for s in started],
            [s.facts.care_type for s in started],
            [s.facts.legal_basis for s in started],
            [s.facts.target_group for s in started],
            [s.facts.age_at_start for s in started],
            [s.facts.start_date for s in started],
            [s.time for s in started],
        )

    async def store_retractions(self, retracted: Sequence[tuple[str, str]]) -> None:
        if not retracted:
            return
        await self.conn.execute(
            "INSERT INTO contracts.retractions (source, retracted_event_id) SELECT * FROM "
            "unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
            [source for source, _ in retracted],
            [event_id for _, event_id in retracted],
        )

    async def apply_retractions(self, keys: Sequence[EpisodeKey]) -> None:
        await self.conn.execute(
            "UPDATE contracts.placements p SET retracted = true FROM contracts.retractions r "
            "WHERE NOT p.retracted AND r.source = p.source AND r.retracted_event_id = p.event_id "
            "AND (p.provider_id, p.episode_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            *_unnest(keys),
        )

    async def store_facts(self, updates: Sequence[FactUpdate], now: datetime) -> set[EpisodeKey]:
        if not updates:
            return set()
        rows = await self.conn.fetch(
            "INSERT INTO contracts.fact_status AS f (provider_id, episode_id, measure_id, measure_version, "
            "subject_ref, status, revision, evidence, outcome_date, updated_at) SELECT *, $10::timestamptz FROM "
            "unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::int[], "
            "$8::text[]::jsonb[], $9::date[]) "
            "ON CONFLICT (provider_id, episode_id, measure_id) DO UPDATE SET measure_version = EXCLUDED.measure_version, "
            "subject_ref = EXCLUDED.subject_ref, status = EXCLUDED.status, revision = EXCLUDED.revision, "
            "evidence = EXCLUDED.evidence, outcome_date = EXCLUDED.outcome_date, updated_at = EXCLUDED.updated_at "
            "WHERE f.revision < EXCLUDED.revision RETURNING provider_id, episode_id",
            [u.key[0] for u in updates],
            [u.key[1] for u in updates],
            [u.measure_id for u in updates],
            [u.fact.measure_version for u in updates],
            [u.fact.subject_ref for u in updates],
            [u.fact.status for u in updates],
            [u.revision for u in updates],
            json_texts([[e.model_dump() for e in u.fact.evidence] for u in updates]),
            [u.fact.outcome_date for u in updates],
            now,
        )
        return {(r["provider_id"], r["episode_id"]) for r in rows}

    async def lock_contracts(self, contract_ids: Sequence[str]) -> None:
        ids = sorted(set(contract_ids))
        await self.conn.execute(
            "INSERT INTO contracts.contract_totals (contract_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
            ids,
        )
        await self.conn.execute(
            "SELECT 1 FROM contracts.contract_totals WHERE contract_id = ANY($1::text[]) "
            "ORDER BY contract_id FOR UPDATE",
            ids,
        )

    async def current_placements(self, keys: Sequence[EpisodeKey]) -> dict[EpisodeKey, PlacementFacts]:
        rows = await self.conn.fetch(
            "SELECT DISTINCT ON (provider_id, episode_id) * FROM contracts.placements WHERE NOT retracted AND "
            "(provider_id, episode_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) "
            "ORDER BY provider_id, episode_id, time DESC, event_id DESC",
            *_unnest(keys),
        )
        return {
            (r["provider_id"], r["episode_id"]): PlacementFacts(
                r["provider_id"],
                r["episode_id"],
                r["subject_ref"],
                r["municipality_code"],
                r["care_type"],
                r["legal_basis"],
                r["target_group"],
                r["age_at_start"],
                r["start_date"],
            )
            for r in rows
        }

    async def facts(self, keys: Sequence[EpisodeKey]) -> dict[tuple[EpisodeKey, str], FactInfo]:
        rows = await self.conn.fetch(
            "SELECT provider_id, episode_id, measure_id, measure_version, status, evidence, subject_ref, "
            "outcome_date FROM contracts.fact_status WHERE (provider_id, episode_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))",
            *_unnest(keys),
        )
        return {
            ((r["provider_id"], r["episode_id"]), r["measure_id"]): FactInfo(
                r["status"],
                r["measure_version"],
                # read back from our own table, validated on the way in: no second validation per row
                tuple(EventRef.model_construct(**e) for e in r["evidence"]),
                r["subject_ref"],
                r["outcome_date"],
            )
            for r in rows
        }

    async def participants(
        self, contract_id: str, keys: Sequence[EpisodeKey]
    ) -> dict[EpisodeKey, tuple[str, str]]:
        rows = await self.conn.fetch(
            "SELECT provider_id, episode_id, status, subject_ref FROM contracts.participants WHERE contract_id = $1 "
            "AND (provider_id, episode_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))",
            contract_id,
            *_unnest(keys),
        )
        return {(r["provider_id"], r["episode_id"]): (r["status"], r["subject_ref"]) for r in rows}

    async def contract_episodes(self, contract_id: str, provider_ids: Sequence[str]) -> list[EpisodeKey]:
        rows = await self.conn.fetch(
            "SELECT DISTINCT provider_id, episode_id FROM contracts.placements WHERE provider_id = ANY($1::text[]) "
            "UNION SELECT provider_id, episode_id FROM contracts.participants WHERE contract_id = $2 ORDER BY 1, 2",
            list(provider_ids),
            contract_id,
        )
        return [(r["provider_id"], r["episode_id"]) for r in rows]

    async def open_book(
        self, contract_id: str, version: int, definition: ContractDefinitionV1, keys: Sequence[EpisodeKey]
    ) -> ContractBook:
        # The caller holds the contract's row lock (lock_contracts): every payment decision of one contract is
        # serialised, so caps hold under concurrency.
        totals = await self.conn.fetchrow(
            "SELECT paid_net_ore, entitled_ore FROM contracts.contract_totals WHERE contract_id = $1",
            contract_id,
        )
        book = ContractBook(
            contract_id, version, definition, int(totals["paid_net_ore"]), int(totals["entitled_ore"])
        )
        rows = await self.conn.fetch(
            f"SELECT {_STATE_COLUMNS} FROM contracts.milestone_state WHERE contract_id = $1 AND "
            "(provider_id, episode_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))",
            contract_id,
            *_unnest(keys),
        )
        book.states.update(_state(r) for r in rows)
        return book

    async def unsettled(self, contract_id: str) -> dict[StateKey, MilestoneState]:
        rows = await self.conn.fetch(
            f"SELECT {_STATE_COLUMNS} FROM contracts.milestone_state WHERE contract_id = $1 "
            "AND active_amount_ore <> entitled_ore",
            contract_id,
        )
        return dict(_state(r) for r in rows)

    async def ordered_states(
        self, contract_id: str, from_order: Order | None
    ) -> tuple[dict[StateKey, MilestoneState], int]:
        if from_order is None:
            rows = await self.conn.fetch(
                f"SELECT {_STATE_COLUMNS} FROM contracts.milestone_state WHERE contract_id = $1 "
                "AND (entitled_ore > 0 OR active_amount_ore > 0)",
                contract_id,
            )
            return dict(_state(r) for r in rows), 0
        rows = await self.conn.fetch(
            f"SELECT {_STATE_COLUMNS} FROM contracts.milestone_state WHERE contract_id = $1 "
            "AND (entitled_ore > 0 OR active_amount_ore > 0) AND (order_date, order_payment_id) >= ($2, $3)",
            contract_id,
            *from_order,
        )
        before = await self.conn.fetchval(
            "SELECT coalesce(sum(entitled_ore), 0) FROM contracts.milestone_state WHERE contract_id = $1 "
            "AND (entitled_ore > 0 OR active_amount_ore > 0) AND (order_date, order_payment_id) < ($2, $3)",
            contract_id,
            *from_order,
        )
        return dict(_state(r) for r in rows), int(before)

    async def save_participants(
        self,
        book: ContractBook,
        enrolled: dict[EpisodeKey, PlacementFacts],
        leaving: Sequence[EpisodeKey],
        now: datetime,
    ) -> None:
        rows = list(enrolled.values())
        if rows:
            await self.conn.execute(
                "INSERT INTO contracts.participants AS p (contract_id, provider_id, episode_id, subject_ref, status, "
                "contract_version, municipality_code, care_type, legal_basis, target_group, age_at_start, "
                "start_date, enrolled_at, updated_at) SELECT $1, a, b, c, 'enrolled', $2, d, e, f, g, h, i, $3, $3 "
                "FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], "
                "$11::int[], $12::date[]) AS u(a, b, c, d, e, f, g, h, i) "
                "ON CONFLICT (contract_id, provider_id, episode_id) DO UPDATE SET status = 'enrolled', "
                "subject_ref = EXCLUDED.subject_ref, municipality_code = EXCLUDED.municipality_code, "
                "care_type = EXCLUDED.care_type, legal_basis = EXCLUDED.legal_basis, "
                "target_group = EXCLUDED.target_group, age_at_start = EXCLUDED.age_at_start, "
                "start_date = EXCLUDED.start_date, updated_at = EXCLUDED.updated_at, "
                "contract_version = CASE WHEN p.status = 'enrolled' THEN p.contract_version "
                "ELSE EXCLUDED.contract_version END",
                book.contract_id,
                book.version,
                now,
                [p.provider_id for p in rows],
                [p.episode_id for p in rows],
                [p.subject_ref for p in rows],
                [p.municipality_code for p in rows],
                [p.care_type for p in rows],
                [p.legal_basis for p in rows],
                [p.target_group for p in rows],
                [p.age_at_start for p in rows],
                [p.start_date for p in rows],
            )
        if leaving:
            await self.conn.execute(
                "UPDATE contracts.participants SET status = 'withdrawn', updated_at = $2 WHERE contract_id = $1 AND "
                "status = 'enrolled' AND (provider_id, episode_id) IN (SELECT * FROM unnest($3::text[], $4::text[]))",
                book.contract_id,
                now,
                *_unnest(leaving),
            )

    async def save_book(self, book: ContractBook, now: datetime) -> int:
        if book.changed_states:
            items = sorted(book.changed_states)
            states = [book.states[k] for k in items]
            await self.conn.execute(
                "INSERT INTO contracts.milestone_state AS s (contract_id, provider_id, episode_id, milestone_id, "
                "occurrences, active_payment_id, active_amount_ore, entitled_ore, order_date, order_payment_id, "
                "updated_at) SELECT $1, a, b, c, d, e, f, g, h, i, $2 FROM unnest($3::text[], $4::text[], "
                "$5::text[], $6::int[], $7::text[], $8::bigint[], $9::bigint[], $10::date[], $11::text[]) "
                "AS u(a, b, c, d, e, f, g, h, i) "
                "ON CONFLICT (contract_id, provider_id, episode_id, milestone_id) DO UPDATE SET "
                "occurrences = EXCLUDED.occurrences, active_payment_id = EXCLUDED.active_payment_id, "
                "active_amount_ore = EXCLUDED.active_amount_ore, entitled_ore = EXCLUDED.entitled_ore, "
                "order_date = EXCLUDED.order_date, order_payment_id = EXCLUDED.order_payment_id, "
                "updated_at = EXCLUDED.updated_at",
                book.contract_id,
                now,
                [k[0][0] for k in items],
                [k[0][1] for k in items],
                [k[1] for k in items],
                [st.occurrences for st in states],
                [st.active_payment_id for st in states],
                [st.active_amount_ore for st in states],
                [st.entitled_ore for st in states],
                [st.order[0] if st.order else None for st in states],
                [st.order[1] if st.order else None for st in states],
            )
            await self.conn.execute(
                "UPDATE contracts.contract_totals SET paid_net_ore = $2, entitled_ore = $3 WHERE contract_id = $1",
                book.contract_id,
                book.paid_net_ore,
                book.entitled_total_ore,
            )
        entries = book.ledger
        if not entries:
            return 0
        await self.conn.execute(
            "INSERT INTO contracts.ledger (entry_id, payment_id, kind, occurrence, contract_id, contract_version, "
            "milestone_id, measure_id, measure_version, subject_ref, provider_id, episode_id, amount_ore, "
            "signed_amount_ore, capped, evidence, determined_at, reason) SELECT * FROM unnest($1::text[], "
            "$2::text[], $3::text[], $4::int[], $5::text[], $6::int[], $7::text[], $8::text[], $9::int[], "
            "$10::text[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::bool[], $16::text[]::jsonb[], "
            "$17::timestamptz[], $18::text[])",
            [e.entry_id for e in entries],
            [e.payment_id for e in entries],
            [e.kind for e in entries],
            [e.occurrence for e in entries],
            [e.contract_id for e in entries],
            [e.contract_version for e in entries],
            [e.milestone_id for e in entries],
            [e.measure_id for e in entries],
            [e.measure_version for e in entries],
            [e.subject_ref for e in entries],
            [e.provider_id for e in entries],
            [e.episode_id for e in entries],
            [e.amount_ore for e in entries],
            [e.amount_ore if e.kind == "payment.triggered" else -e.amount_ore for e in entries],
            [e.capped for e in entries],
            json_texts([[ev.model_dump() for ev in e.evidence] for e in entries]),
            [e.determined_at for e in entries],
            [e.reason for e in entries],
        )
        await enqueue(self.conn, SCHEMA, [payment_message(e) for e in entries])
        for e in entries:
            contract_metrics.PAYMENTS.labels(e.contract_id, e.kind).inc()
            contract_metrics.PAYMENT_AMOUNT.labels(e.contract_id, e.kind).inc(e.amount_ore)
        return len(entries)


def payment_message(entry: PaymentV1) -> OutboxMessage:
    headers = binary_headers(
        event_id=entry.entry_id,
        source="utfall/contracts",
        type_=PAYMENT_TRIGGERED if entry.kind == "payment.triggered" else PAYMENT_REVERSED,
        time=entry.determined_at,
        subject=entry.payment_id,
        extra={},
    )
    return OutboxMessage(
        PAYMENTS, entry.contract_id.encode(), orjson.dumps(entry.model_dump(mode="json")), headers
    )
