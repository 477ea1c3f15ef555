"""Contracts' Postgres adapter: what a reconciliation reads and writes, behind one small interface that
unit tests replace with an in-memory fake."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg

from utfall_events.contracts import ContractDefinitionV1
from utfall_events.outcomes import known_event_ref
from utfall_events.payments import PaymentV1
from utfall_platform.bulk import EVERY_OTHER_COLUMN, BulkInsert, key_arrays
from utfall_platform.outbox import enqueue

from . import metrics as contract_metrics
from .domain.book import ContractBook, EpisodeKey, FactInfo, StateKey
from .domain.cohort import PlacementFacts
from .domain.ledger import MilestoneState, Order
from .messages import payment_message

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
    async def facts(
        self, keys: Sequence[EpisodeKey], measure_ids: Sequence[str]
    ) -> dict[tuple[EpisodeKey, str], FactInfo]:
        """The stored facts of these measures for these episodes."""
        ...

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


def _placement_columns(p: PlacementFacts) -> dict[str, object]:
    return {
        "provider_id": p.provider_id,
        "episode_id": p.episode_id,
        "subject_ref": p.subject_ref,
        "municipality_code": p.municipality_code,
        "care_type": p.care_type,
        "legal_basis": p.legal_basis,
        "target_group": p.target_group,
        "age_at_start": p.age_at_start,
        "start_date": p.start_date,
    }


_PLACEMENT_TYPES = (
    ("provider_id", "text"),
    ("episode_id", "text"),
    ("subject_ref", "text"),
    ("municipality_code", "text"),
    ("care_type", "text"),
    ("legal_basis", "text"),
    ("target_group", "text"),
    ("age_at_start", "int"),
    ("start_date", "date"),
)
_INSERT_PLACEMENTS = BulkInsert(
    "contracts.placements",
    (("source", "text"), ("event_id", "text"), *_PLACEMENT_TYPES, ("time", "timestamptz")),
    conflict=(),
)
_UPSERT_FACTS = BulkInsert(
    "contracts.fact_status",
    (
        ("provider_id", "text"),
        ("episode_id", "text"),
        ("measure_id", "text"),
        ("measure_version", "int"),
        ("subject_ref", "text"),
        ("status", "text"),
        ("revision", "int"),
        ("evidence", "jsonb"),
        ("outcome_date", "date"),
    ),
    constants=(("updated_at", "timestamptz"),),
    conflict=("provider_id", "episode_id", "measure_id"),
    update=EVERY_OTHER_COLUMN,
    update_where="t.revision < EXCLUDED.revision",  # an older revision never overwrites a newer one
    returning="provider_id, episode_id",
)
_UPSERT_PARTICIPANTS = BulkInsert(
    "contracts.participants",
    _PLACEMENT_TYPES,
    constants=(
        ("contract_id", "text"),
        ("status", "text"),
        ("contract_version", "int"),
        ("enrolled_at", "timestamptz"),
        ("updated_at", "timestamptz"),
    ),
    conflict=("contract_id", "provider_id", "episode_id"),
    update=(*(name for name, _ in _PLACEMENT_TYPES[2:]), "status", "updated_at", "contract_version"),
    # a participant keeps the version it enrolled under; one who re-enrols takes the current one
    assign={
        "contract_version": "CASE WHEN t.status = 'enrolled' THEN t.contract_version ELSE EXCLUDED.contract_version END"
    },
)
_UPSERT_STATES = BulkInsert(
    "contracts.milestone_state",
    (
        ("provider_id", "text"),
        ("episode_id", "text"),
        ("milestone_id", "text"),
        ("occurrences", "int"),
        ("active_payment_id", "text"),
        ("active_amount_ore", "bigint"),
        ("entitled_ore", "bigint"),
        ("order_date", "date"),
        ("order_payment_id", "text"),
        ("disallowed", "bool"),
    ),
    constants=(("contract_id", "text"), ("updated_at", "timestamptz")),
    conflict=("contract_id", "provider_id", "episode_id", "milestone_id"),
    update=EVERY_OTHER_COLUMN,
)
_INSERT_LEDGER = BulkInsert(
    "contracts.ledger",
    (
        ("entry_id", "text"),
        ("payment_id", "text"),
        ("kind", "text"),
        ("occurrence", "int"),
        ("contract_id", "text"),
        ("contract_version", "int"),
        ("milestone_id", "text"),
        ("measure_id", "text"),
        ("measure_version", "int"),
        ("subject_ref", "text"),
        ("provider_id", "text"),
        ("episode_id", "text"),
        ("amount_ore", "bigint"),
        ("signed_amount_ore", "bigint"),
        ("capped", "bool"),
        ("evidence", "jsonb"),
        ("determined_at", "timestamptz"),
        ("reason", "text"),
        ("dispute", "jsonb"),
    ),
)
_LEDGER_FIELDS = [
    name for name in _INSERT_LEDGER.names if name not in ("signed_amount_ore", "evidence", "dispute")
]


_STATE_COLUMNS = (
    "provider_id, episode_id, milestone_id, occurrences, active_payment_id, active_amount_ore, entitled_ore, "
    "order_date, order_payment_id, disallowed"
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
            r["disallowed"],
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
        await _INSERT_PLACEMENTS.write(
            self.conn,
            (
                {**_placement_columns(s.facts), "source": s.source, "event_id": s.event_id, "time": s.time}
                for s in started
            ),
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
            *key_arrays(keys),
        )

    async def store_facts(self, updates: Sequence[FactUpdate], now: datetime) -> set[EpisodeKey]:
        if not updates:
            return set()
        rows = await _UPSERT_FACTS.write(
            self.conn,
            (
                {
                    "provider_id": u.key[0],
                    "episode_id": u.key[1],
                    "measure_id": u.measure_id,
                    "measure_version": u.fact.measure_version,
                    "subject_ref": u.fact.subject_ref,
                    "status": u.fact.status,
                    "revision": u.revision,
                    # what model_dump gives, without pydantic's serializer per reference
                    "evidence": [{"source": e.source, "id": e.id} for e in u.fact.evidence],
                    "outcome_date": u.fact.outcome_date,
                }
                for u in updates
            ),
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
            *key_arrays(keys),
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

    async def facts(
        self, keys: Sequence[EpisodeKey], measure_ids: Sequence[str]
    ) -> dict[tuple[EpisodeKey, str], FactInfo]:
        rows = await self.conn.fetch(
            "SELECT provider_id, episode_id, measure_id, measure_version, status, evidence, subject_ref, "
            "outcome_date FROM contracts.fact_status WHERE (provider_id, episode_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[])) AND measure_id = ANY($3::text[])",
            *key_arrays(keys),
            list(measure_ids),
        )
        # positional: the columns in the order selected (a name lookup per field was most of this loop)
        return {
            ((provider_id, episode_id), measure_id): FactInfo(
                status,
                measure_version,
                # our own rows, validated on the way in: no second validation, one object per reference
                tuple([known_event_ref(e["source"], e["id"]) for e in evidence]),
                subject_ref,
                outcome_date,
            )
            for provider_id, episode_id, measure_id, measure_version, status, evidence, subject_ref, outcome_date in rows
        }

    async def participants(
        self, contract_id: str, keys: Sequence[EpisodeKey]
    ) -> dict[EpisodeKey, tuple[str, str]]:
        rows = await self.conn.fetch(
            "SELECT provider_id, episode_id, status, subject_ref FROM contracts.participants WHERE contract_id = $1 "
            "AND (provider_id, episode_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))",
            contract_id,
            *key_arrays(keys),
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
            *key_arrays(keys),
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
            await _UPSERT_PARTICIPANTS.write(
                self.conn, map(_placement_columns, rows), book.contract_id, "enrolled", book.version, now, now
            )
        if leaving:
            await self.conn.execute(
                "UPDATE contracts.participants SET status = 'withdrawn', updated_at = $2 WHERE contract_id = $1 AND "
                "status = 'enrolled' AND (provider_id, episode_id) IN (SELECT * FROM unnest($3::text[], $4::text[]))",
                book.contract_id,
                now,
                *key_arrays(leaving),
            )

    async def save_book(self, book: ContractBook, now: datetime) -> int:
        if book.changed_states:
            items = sorted(book.changed_states)
            states = [book.states[k] for k in items]
            await _UPSERT_STATES.write(
                self.conn,
                (
                    {
                        "provider_id": key[0][0],
                        "episode_id": key[0][1],
                        "milestone_id": key[1],
                        "occurrences": st.occurrences,
                        "active_payment_id": st.active_payment_id,
                        "active_amount_ore": st.active_amount_ore,
                        "entitled_ore": st.entitled_ore,
                        "order_date": st.order[0] if st.order else None,
                        "order_payment_id": st.order[1] if st.order else None,
                        "disallowed": st.disallowed,
                    }
                    for key, st in zip(items, states, strict=True)
                ),
                book.contract_id,
                now,
            )
            await self.conn.execute(
                "UPDATE contracts.contract_totals SET paid_net_ore = $2, entitled_ore = $3 WHERE contract_id = $1",
                book.contract_id,
                book.paid_net_ore,
                book.entitled_total_ore,
            )
        return await append_ledger(self.conn, book.ledger)


async def append_ledger(conn: asyncpg.Connection, entries: Sequence[PaymentV1]) -> int:
    """Ledger entries and their `payments.v1` messages (the outbox), in the caller's transaction."""
    if not entries:
        return 0
    await _INSERT_LEDGER.write(
        conn,
        (
            {
                **{name: getattr(e, name) for name in _LEDGER_FIELDS},
                "signed_amount_ore": e.signed_amount_ore,
                "evidence": [ev.model_dump() for ev in e.evidence],
                "dispute": e.dispute.model_dump(mode="json") if e.dispute else None,
            }
            for e in entries
        ),
    )
    await enqueue(conn, SCHEMA, [payment_message(e) for e in entries])
    for e in entries:
        contract_metrics.PAYMENTS.labels(e.contract_id, e.kind).inc()
        contract_metrics.PAYMENT_AMOUNT.labels(e.contract_id, e.kind).inc(e.amount_ore)
    return len(entries)
