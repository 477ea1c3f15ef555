"""Contracts' Kafka entrypoints: thin handlers that store what arrived and reconcile the episodes it touches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from utfall_events.codec import UndecodableRecord, decode_care_event, decode_message
from utfall_events.contracts import ContractDefinitionV1
from utfall_events.outcomes import OutcomeFactV1
from utfall_events.vocabulary import EVENT_RETRACTED, PLACEMENT_STARTED
from utfall_platform import metrics
from utfall_platform.clock import Clock
from utfall_platform.consumer import Record
from utfall_platform.db import json_texts

from .contract_store import current_contracts, save_version
from .reconcile import EpisodeKey, reconcile, reconcile_contract
from .repository import PostgresRepository


class InvalidCommand(UndecodableRecord):
    """A contract command that is not a valid contract: dead-lettered with its reasons (and alerted on) while
    payments go on; the gateway refuses the same with 422 before it is ever published."""


Handler = Callable[[asyncpg.Connection, Sequence[Record]], Awaitable[None]]


def care_events_handler(clock: Clock) -> Handler:
    async def handle(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        events = [decode_care_event(r.headers, r.value) for r in records]
        started = [e for e in events if e.type == PLACEMENT_STARTED]
        retractions = [
            e
            for e in events
            if e.type == EVENT_RETRACTED and e.data.get("retracted_event_type") == PLACEMENT_STARTED
        ]
        if not started and not retractions:
            return
        if started:
            await conn.execute(
                "INSERT INTO contracts.placements (source, event_id, provider_id, episode_id, subject_ref, "
                "municipality_code, care_type, legal_basis, target_group, age_at_start, start_date, time) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
                "$7::text[], $8::text[], $9::text[], $10::int[], $11::date[], $12::timestamptz[]) "
                "ON CONFLICT DO NOTHING",
                [e.source for e in started],
                [e.event_id for e in started],
                [e.provider_id for e in started],
                [e.episode_id for e in started],
                [e.subject_ref for e in started],
                [e.data["municipality_code"] for e in started],
                [e.data["care_type"] for e in started],
                [e.data["legal_basis"] for e in started],
                [e.data["target_group"] for e in started],
                [int(e.data["age_at_start"]) for e in started],
                [_date(e.data["start_date"]) for e in started],
                [e.time for e in started],
            )
        if retractions:
            await conn.execute(
                "INSERT INTO contracts.retractions (source, retracted_event_id) SELECT * FROM "
                "unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
                [e.source for e in retractions],
                [str(e.data["retracted_event_id"]) for e in retractions],
            )
        # Retractions may arrive before the placement they retract: apply every known one.
        await conn.execute(
            "UPDATE contracts.placements p SET retracted = true FROM contracts.retractions r "
            "WHERE NOT p.retracted AND r.source = p.source AND r.retracted_event_id = p.event_id "
            "AND (p.provider_id, p.episode_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [e.provider_id for e in started + retractions],
            [e.episode_id for e in started + retractions],
        )
        keys = {(e.provider_id, e.episode_id) for e in started + retractions}
        now = clock.now()
        await reconcile(
            PostgresRepository(conn), await current_contracts(conn), keys, now=now, reason="placement"
        )
        for e in events:
            if e.ingested_at is not None:
                metrics.EVENT_TO_READ_MODEL.labels("contracts").observe(
                    max(0.0, (now - e.ingested_at).total_seconds())
                )

    return handle


def outcomes_handler(clock: Clock) -> Handler:
    async def handle(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        latest: dict[tuple[str, str, str], OutcomeFactV1] = {}
        for record in records:
            fact = decode_message(OutcomeFactV1, record.value)
            key = (fact.episode.provider_id, fact.episode_id, fact.measure_id)
            if key not in latest or latest[key].revision < fact.revision:
                latest[key] = fact
        facts = list(latest.values())
        rows = await conn.fetch(
            "INSERT INTO contracts.fact_status AS f (provider_id, episode_id, measure_id, measure_version, "
            "subject_ref, status, revision, evidence, outcome_date, updated_at) SELECT *, $10::timestamptz FROM "
            "unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::int[], "
            "$8::text[]::jsonb[], $9::date[]) "
            "ON CONFLICT (provider_id, episode_id, measure_id) DO UPDATE SET measure_version = EXCLUDED.measure_version, "
            "subject_ref = EXCLUDED.subject_ref, status = EXCLUDED.status, revision = EXCLUDED.revision, "
            "evidence = EXCLUDED.evidence, outcome_date = EXCLUDED.outcome_date, updated_at = EXCLUDED.updated_at "
            "WHERE f.revision < EXCLUDED.revision RETURNING provider_id, episode_id",
            [f.episode.provider_id for f in facts],
            [f.episode_id for f in facts],
            [f.measure_id for f in facts],
            [f.measure_version for f in facts],
            [f.subject_ref for f in facts],
            [f.status for f in facts],
            [f.revision for f in facts],
            json_texts([[e.model_dump() for e in f.evidence] for f in facts]),
            [f.outcome_date for f in facts],
            clock.now(),
        )
        keys: set[EpisodeKey] = {(r["provider_id"], r["episode_id"]) for r in rows}
        if keys:
            await reconcile(
                PostgresRepository(conn),
                await current_contracts(conn),
                keys,
                now=clock.now(),
                reason="outcome",
            )

    return handle


def commands_handler(clock: Clock) -> Handler:
    async def handle(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        for record in records:
            definition = decode_message(ContractDefinitionV1, record.value, InvalidCommand)
            await apply_definition(conn, definition, origin="command", clock=clock)

    return handle


async def apply_definition(
    conn: asyncpg.Connection, definition: ContractDefinitionV1, *, origin: str, clock: Clock
) -> int | None:
    version = await save_version(conn, definition, origin=origin, now=clock.now())
    if version is None:
        return None
    await reconcile_contract(
        PostgresRepository(conn),
        definition.contract_id,
        version,
        definition,
        now=clock.now(),
        reason="contract amended",
    )
    return version


async def reallocate_pending(conn: asyncpg.Connection, *, clock: Clock) -> list[str]:
    """Contracts whose stored state predates the payment rule (a migration lists them): every participant
    re-entitled and every milestone re-allocated, in one transaction per contract."""
    done = []
    contracts = await current_contracts(conn)
    for row in await conn.fetch("SELECT contract_id FROM contracts.pending_reallocation ORDER BY 1"):
        contract_id = row["contract_id"]
        async with conn.transaction():
            if contract_id in contracts:
                version, definition = contracts[contract_id]
                await reconcile_contract(
                    PostgresRepository(conn),
                    contract_id,
                    version,
                    definition,
                    now=clock.now(),
                    reason="reallocation",
                )
            await conn.execute(
                "DELETE FROM contracts.pending_reallocation WHERE contract_id = $1", contract_id
            )
        done.append(contract_id)
    return done


def _date(value: str):  # type: ignore[no-untyped-def]
    from datetime import date

    return date.fromisoformat(value)
