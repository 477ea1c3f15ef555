"""Contracts' service layer: bring enrolment and the ledger of some episodes in line with what is known.

Called when a placement arrives or is retracted, when an outcome fact changes, and when a contract is
created or amended. Every effect (participants, milestone state, ledger rows, totals, outbox messages)
is written in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

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
from .domain.cohort import PlacementFacts, enrols
from .domain.ledger import Action, Caps, MilestoneState, decide, evolve, payment_id, reversal_entry_id

SCHEMA = "contracts"
EpisodeKey = tuple[str, str]


@dataclass
class FactInfo:
    status: str
    measure_version: int
    evidence: list[dict[str, str]]
    subject_ref: str


@dataclass
class ContractBook:
    """What one contract's reconciliation reads and writes, loaded once per call."""

    contract_id: str
    version: int
    definition: ContractDefinitionV1
    paid_net_ore: int
    states: dict[tuple[EpisodeKey, str], MilestoneState] = field(default_factory=dict)
    blocked_at: dict[tuple[EpisodeKey, str], datetime] = field(default_factory=dict)
    participant_paid: dict[EpisodeKey, int] = field(default_factory=dict)
    changed_states: set[tuple[EpisodeKey, str]] = field(default_factory=set)
    ledger: list[PaymentV1] = field(default_factory=list)


async def current_placements(
    conn: asyncpg.Connection, keys: list[EpisodeKey]
) -> dict[EpisodeKey, PlacementFacts]:
    rows = await conn.fetch(
        "SELECT DISTINCT ON (provider_id, episode_id) * FROM contracts.placements "
        "WHERE NOT retracted AND (provider_id, episode_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) "
        "ORDER BY provider_id, episode_id, time DESC, event_id DESC",
        [k[0] for k in keys],
        [k[1] for k in keys],
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


async def load_facts(
    conn: asyncpg.Connection, keys: list[EpisodeKey]
) -> dict[tuple[EpisodeKey, str], FactInfo]:
    rows = await conn.fetch(
        "SELECT provider_id, episode_id, measure_id, measure_version, status, evidence, subject_ref "
        "FROM contracts.fact_status WHERE (provider_id, episode_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {
        ((r["provider_id"], r["episode_id"]), r["measure_id"]): FactInfo(
            r["status"], r["measure_version"], r["evidence"], r["subject_ref"]
        )
        for r in rows
    }


async def reconcile(
    conn: asyncpg.Connection,
    contracts: dict[str, tuple[int, ContractDefinitionV1]],
    keys: Iterable[EpisodeKey],
    *,
    now: datetime,
    reason: str,
) -> int:
    """Returns the number of ledger entries written."""
    episode_keys = sorted(set(keys))
    if not episode_keys or not contracts:
        return 0
    placements = await current_placements(conn, episode_keys)
    facts = await load_facts(conn, episode_keys)
    written = 0
    for contract_id in sorted(contracts):
        version, definition = contracts[contract_id]
        providers = set(definition.provider_ids)
        relevant = [k for k in episode_keys if k[0] in providers]
        if not relevant:
            continue
        book = await _open_book(conn, contract_id, version, definition, relevant)
        participants = await _participants(conn, contract_id, relevant)
        enrolled_now: dict[EpisodeKey, PlacementFacts] = {}
        for key in relevant:
            placement = placements.get(key)
            if placement is not None and enrols(definition, placement):
                enrolled_now[key] = placement
        await _write_participants(conn, book, participants, enrolled_now, relevant, now)
        any_reversal = False
        for key in relevant:
            if key not in enrolled_now and key not in participants:
                continue
            subject = enrolled_now[key].subject_ref if key in enrolled_now else participants[key]
            for milestone in definition.milestones:
                fact = facts.get((key, milestone.measure_id))
                achieved = key in enrolled_now and fact is not None and fact.status == "achieved"
                any_reversal |= _step(
                    book,
                    key,
                    subject,
                    milestone.milestone_id,
                    milestone.measure_id,
                    milestone.price_ore,
                    achieved,
                    fact,
                    now,
                    reason,
                )
        if any_reversal:
            await _pay_blocked(conn, book, now)
        written += await _write_book(conn, book, now)
    return written


def _step(
    book: ContractBook,
    key: EpisodeKey,
    subject: str,
    milestone_id: str,
    measure_id: str,
    price: int,
    achieved: bool,
    fact: FactInfo | None,
    now: datetime,
    reason: str,
) -> bool:
    state_key = (key, milestone_id)
    state = book.states.get(state_key, MilestoneState())
    caps = Caps(
        participant_left_ore=book.definition.per_participant_cap_ore - book.participant_paid.get(key, 0),
        total_left_ore=book.definition.total_cap_ore - book.paid_net_ore,
    )
    action = decide(state, achieved=achieved, price_ore=price, caps=caps)
    if action.kind == "none":
        return False
    new_id = None
    if action.kind == "trigger":
        new_id = payment_id(book.contract_id, subject, key[0], key[1], milestone_id, action.occurrence)
        book.paid_net_ore += action.amount_ore
        book.participant_paid[key] = book.participant_paid.get(key, 0) + action.amount_ore
        book.ledger.append(
            _entry(
                book,
                "payment.triggered",
                new_id,
                action,
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
        book.paid_net_ore -= action.amount_ore
        book.participant_paid[key] = book.participant_paid.get(key, 0) - action.amount_ore
        why = (
            "participant no longer in the cohort"
            if fact is not None and fact.status == "achieved"
            else (f"outcome is now {fact.status if fact else 'void'}")
        )
        book.ledger.append(
            _entry(
                book,
                "payment.reversed",
                state.active_payment_id,
                Action("reverse", action.amount_ore, state.occurrences),
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
        book.blocked_at[state_key] = now
    book.states[state_key] = evolve(state, action, new_payment_id=new_id)
    book.changed_states.add(state_key)
    return action.kind == "reverse"


def _entry(
    book: ContractBook,
    kind: str,
    pid: str,
    action: Action,
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
        entry_id=pid if kind == "payment.triggered" else reversal_entry_id(pid),
        payment_id=pid,
        occurrence=max(action.occurrence, 1),
        contract_id=book.contract_id,
        contract_version=book.version,
        milestone_id=milestone_id,
        measure_id=measure_id,
        measure_version=fact.measure_version if fact else 0,
        subject_ref=subject,
        provider_id=key[0],
        episode_id=key[1],
        amount_ore=action.amount_ore,
        capped=action.capped,
        evidence=[EventRef(**e) for e in fact.evidence] if fact else [],
        determined_at=now,
        reason=reason,
    )


async def _open_book(
    conn: asyncpg.Connection,
    contract_id: str,
    version: int,
    definition: ContractDefinitionV1,
    keys: list[EpisodeKey],
) -> ContractBook:
    await conn.execute(
        "INSERT INTO contracts.contract_totals (contract_id) VALUES ($1) ON CONFLICT DO NOTHING", contract_id
    )
    # The row lock serialises every payment decision of one contract: caps hold under concurrency.
    paid = await conn.fetchval(
        "SELECT paid_net_ore FROM contracts.contract_totals WHERE contract_id = $1 FOR UPDATE", contract_id
    )
    book = ContractBook(contract_id, version, definition, int(paid))
    rows = await conn.fetch(
        "SELECT provider_id, episode_id, milestone_id, occurrences, active_payment_id, active_amount_ore, blocked, "
        "blocked_at FROM contracts.milestone_state WHERE contract_id = $1 AND (provider_id, episode_id) IN "
        "(SELECT * FROM unnest($2::text[], $3::text[]))",
        contract_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    for r in rows:
        key = (r["provider_id"], r["episode_id"])
        book.states[(key, r["milestone_id"])] = MilestoneState(
            r["occurrences"], r["active_payment_id"], int(r["active_amount_ore"]), r["blocked"]
        )
        if r["blocked_at"] is not None:
            book.blocked_at[(key, r["milestone_id"])] = r["blocked_at"]
        book.participant_paid[key] = book.participant_paid.get(key, 0) + int(r["active_amount_ore"])
    return book


async def _participants(
    conn: asyncpg.Connection, contract_id: str, keys: list[EpisodeKey]
) -> dict[EpisodeKey, str]:
    rows = await conn.fetch(
        "SELECT provider_id, episode_id, subject_ref FROM contracts.participants WHERE contract_id = $1 AND "
        "(provider_id, episode_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))",
        contract_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["provider_id"], r["episode_id"]): r["subject_ref"] for r in rows}


async def _write_participants(
    conn: asyncpg.Connection,
    book: ContractBook,
    existing: dict[EpisodeKey, str],
    enrolled: dict[EpisodeKey, PlacementFacts],
    keys: list[EpisodeKey],
    now: datetime,
) -> None:
    rows = list(enrolled.values())
    if rows:
        await conn.execute(
            "INSERT INTO contracts.participants AS p (contract_id, provider_id, episode_id, subject_ref, status, "
            "contract_version, municipality_code, care_type, legal_basis, target_group, age_at_start, start_date, "
            "enrolled_at, updated_at) SELECT $1, a, b, c, 'enrolled', $2, d, e, f, g, h, i, $3, $3 FROM "
            "unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], "
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
    leaving = [k for k in keys if k in existing and k not in enrolled]
    if leaving:
        await conn.execute(
            "UPDATE contracts.participants SET status = 'withdrawn', updated_at = $2 WHERE contract_id = $1 AND "
            "status = 'enrolled' AND (provider_id, episode_id) IN (SELECT * FROM unnest($3::text[], $4::text[]))",
            book.contract_id,
            now,
            [k[0] for k in leaving],
            [k[1] for k in leaving],
        )
    contract_metrics.ENROLMENTS.labels(book.contract_id).inc(len([k for k in enrolled if k not in existing]))


async def _pay_blocked(conn: asyncpg.Connection, book: ContractBook, now: datetime) -> None:
    """A reversal freed room under the caps: pay blocked milestones, oldest first."""
    rows = await conn.fetch(
        "SELECT provider_id, episode_id, milestone_id, occurrences, active_payment_id, active_amount_ore, blocked, "
        "blocked_at FROM contracts.milestone_state WHERE contract_id = $1 AND blocked",
        book.contract_id,
    )
    for r in rows:
        state_key = ((r["provider_id"], r["episode_id"]), r["milestone_id"])
        if state_key not in book.states:  # the in-memory state of this call wins over the stored one
            book.states[state_key] = MilestoneState(
                r["occurrences"], r["active_payment_id"], int(r["active_amount_ore"]), r["blocked"]
            )
            book.blocked_at[state_key] = r["blocked_at"]
    blocked = sorted((book.blocked_at.get(sk, now), sk) for sk, st in book.states.items() if st.blocked)
    if not blocked:
        return
    keys = sorted({sk[0] for _, sk in blocked})
    unknown = [k for k in keys if k not in book.participant_paid]
    if unknown:
        for r in await conn.fetch(
            "SELECT provider_id, episode_id, sum(active_amount_ore) AS paid FROM contracts.milestone_state "
            "WHERE contract_id = $1 AND (provider_id, episode_id) IN (SELECT * FROM unnest($2::text[], $3::text[])) "
            "GROUP BY 1, 2",
            book.contract_id,
            [k[0] for k in unknown],
            [k[1] for k in unknown],
        ):
            book.participant_paid[(r["provider_id"], r["episode_id"])] = int(r["paid"])
    people = {
        (r["provider_id"], r["episode_id"]): (r["status"], r["subject_ref"])
        for r in await conn.fetch(
            "SELECT provider_id, episode_id, status, subject_ref FROM contracts.participants WHERE contract_id = $1 "
            "AND (provider_id, episode_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))",
            book.contract_id,
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
    }
    facts = await load_facts(conn, keys)
    milestones = {m.milestone_id: m for m in book.definition.milestones}
    for _, (key, milestone_id) in blocked:
        if book.definition.total_cap_ore - book.paid_net_ore <= 0:
            break
        milestone = milestones.get(milestone_id)
        person = people.get(key)
        if milestone is None or person is None:
            continue
        fact = facts.get((key, milestone.measure_id))
        achieved = person[0] == "enrolled" and fact is not None and fact.status == "achieved"
        _step(
            book,
            key,
            person[1],
            milestone_id,
            milestone.measure_id,
            milestone.price_ore,
            achieved,
            fact,
            now,
            "room under the cap",
        )


async def _write_book(conn: asyncpg.Connection, book: ContractBook, now: datetime) -> int:
    if book.changed_states:
        items = sorted(book.changed_states)
        await conn.execute(
            "INSERT INTO contracts.milestone_state AS s (contract_id, provider_id, episode_id, milestone_id, "
            "occurrences, active_payment_id, active_amount_ore, blocked, blocked_at, updated_at) "
            "SELECT $1, a, b, c, d, e, f, g, h, $2 FROM unnest($3::text[], $4::text[], $5::text[], $6::int[], "
            "$7::text[], $8::bigint[], $9::bool[], $10::timestamptz[]) AS u(a, b, c, d, e, f, g, h) "
            "ON CONFLICT (contract_id, provider_id, episode_id, milestone_id) DO UPDATE SET "
            "occurrences = EXCLUDED.occurrences, active_payment_id = EXCLUDED.active_payment_id, "
            "active_amount_ore = EXCLUDED.active_amount_ore, blocked = EXCLUDED.blocked, "
            "blocked_at = EXCLUDED.blocked_at, updated_at = EXCLUDED.updated_at",
            book.contract_id,
            now,
            [k[0][0] for k in items],
            [k[0][1] for k in items],
            [k[1] for k in items],
            [book.states[k].occurrences for k in items],
            [book.states[k].active_payment_id for k in items],
            [book.states[k].active_amount_ore for k in items],
            [book.states[k].blocked for k in items],
            [book.blocked_at.get(k) if book.states[k].blocked else None for k in items],
        )
    if not book.ledger:
        return 0
    entries = book.ledger
    await conn.execute(
        "INSERT INTO contracts.ledger (entry_id, payment_id, kind, occurrence, contract_id, contract_version, "
        "milestone_id, measure_id, measure_version, subject_ref, provider_id, episode_id, amount_ore, "
        "signed_amount_ore, capped, evidence, determined_at, reason) SELECT * FROM unnest($1::text[], $2::text[], "
        "$3::text[], $4::int[], $5::text[], $6::int[], $7::text[], $8::text[], $9::int[], $10::text[], $11::text[], "
        "$12::text[], $13::bigint[], $14::bigint[], $15::bool[], $16::text[]::jsonb[], $17::timestamptz[], $18::text[])",
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
    await conn.execute(
        "UPDATE contracts.contract_totals SET paid_net_ore = $2 WHERE contract_id = $1",
        book.contract_id,
        book.paid_net_ore,
    )
    await enqueue(conn, SCHEMA, [_payment_message(e) for e in entries])
    for e in entries:
        contract_metrics.PAYMENTS.labels(e.contract_id, e.kind).inc()
        contract_metrics.PAYMENT_AMOUNT.labels(e.contract_id, e.kind).inc(e.amount_ore)
    return len(entries)


def _payment_message(entry: PaymentV1) -> OutboxMessage:
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
