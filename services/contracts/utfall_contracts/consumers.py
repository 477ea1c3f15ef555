"""Contracts' Kafka entrypoints: thin handlers that store what arrived and reconcile the episodes it touches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date

import asyncpg
import orjson

from utfall_events.codec import (
    DecodedCareEvent,
    UndecodableRecord,
    care_event_type,
    decode_care_event,
    decode_episode_outcomes,
    decode_message,
)
from utfall_events.contracts import ContractDefinitionV1
from utfall_events.ledger_commands import LedgerCommandV1
from utfall_events.outcomes import OutcomeFactV1, known_event_ref
from utfall_events.vocabulary import EVENT_RETRACTED, FOLLOWUP_RECORDED, PLACEMENT_ENDED, PLACEMENT_STARTED
from utfall_events.webhooks import WEBHOOK_COMMAND_PREFIX, WebhookCommandV1
from utfall_platform import metrics
from utfall_platform.clock import Clock
from utfall_platform.consumer import Record

from .contract_store import contracts_in_force, current_contracts, lock_definitions, save_version
from .domain.book import EpisodeKey, FactInfo
from .domain.cohort import PlacementFacts
from .ledger_commands import apply_ledger_command
from .reconcile import reconcile, reconcile_contract
from .repository import FactUpdate, PostgresRepository, StartedPlacement
from .webhook_commands import apply_webhook_command


class InvalidCommand(UndecodableRecord):
    """A contract command that is not a valid contract: dead-lettered with its reasons (and alerted on) while
    payments go on; the gateway refuses the same with 422 before it is ever published."""


Handler = Callable[[asyncpg.Connection, Sequence[Record]], Awaitable[None]]

# Care events contracts never reads: passed over by their type header, undecoded (about two thirds of the topic;
# decoding them was a tenth of contracts' CPU). Any other record, one without a type header too, is decoded,
# and dead-lettered if it is bad.
_NOT_READ = frozenset({PLACEMENT_ENDED, FOLLOWUP_RECORDED})


def care_events_handler(clock: Clock) -> Handler:
    async def handle(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        events = [
            decode_care_event(r.headers, r.value)
            for r in records
            if care_event_type(r.headers) not in _NOT_READ
        ]
        started = [e for e in events if e.type == PLACEMENT_STARTED]
        retractions = [
            e
            for e in events
            if e.type == EVENT_RETRACTED and e.data.get("retracted_event_type") == PLACEMENT_STARTED
        ]
        if not started and not retractions:
            return
        repository = PostgresRepository(conn)
        await repository.store_placements([_started(e) for e in started])
        await repository.store_retractions(
            [(e.source, str(e.data["retracted_event_id"])) for e in retractions]
        )
        keys = {(e.provider_id, e.episode_id) for e in started + retractions}
        # Retractions may arrive before the placement they retract: apply every known one.
        await repository.apply_retractions(sorted(keys))
        now = clock.now()
        await reconcile(repository, await contracts_in_force(conn), keys, now=now, reason="placement")
        for e in events:
            if e.ingested_at is not None:
                metrics.EVENT_TO_READ_MODEL.labels("contracts").observe(
                    max(0.0, (now - e.ingested_at).total_seconds())
                )

    return handle


def _started(event: DecodedCareEvent) -> StartedPlacement:
    data = event.data
    return StartedPlacement(
        event.source,
        event.event_id,
        event.time,
        PlacementFacts(
            event.provider_id,
            event.episode_id,
            event.subject_ref,
            data["municipality_code"],
            data["care_type"],
            data["legal_basis"],
            data["target_group"],
            int(data["age_at_start"]),
            date.fromisoformat(data["start_date"]),
        ),
    )


def outcomes_handler(clock: Clock, version: int = 2) -> Handler:
    """Outcome facts from `outcomes.v2` (an episode's changed facts per message) or, while its last records are
    read, the retired `outcomes.v1` (a fact per message): the same updates either way."""

    def updates(record: Record) -> list[FactUpdate]:
        if version == 1:
            fact = decode_message(OutcomeFactV1, record.value)
            info = FactInfo(
                fact.status, fact.measure_version, tuple(fact.evidence), fact.subject_ref, fact.outcome_date
            )
            return [
                FactUpdate((fact.episode.provider_id, fact.episode_id), fact.measure_id, fact.revision, info)
            ]
        message = decode_episode_outcomes(record.value)
        key = (message.episode.provider_id, message.episode_id)
        return [
            FactUpdate(
                key,
                f.measure_id,
                f.revision,
                FactInfo(
                    f.status,
                    f.measure_version,
                    tuple(known_event_ref(e.source, e.id) for e in f.evidence),
                    message.subject_ref,
                    f.outcome_date,
                ),
            )
            for f in message.facts
        ]

    async def handle(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        latest: dict[tuple[EpisodeKey, str], FactUpdate] = {}
        for record in records:
            for update in updates(record):
                previous = latest.get((update.key, update.measure_id))
                if previous is None or previous.revision < update.revision:
                    latest[(update.key, update.measure_id)] = update
        repository = PostgresRepository(conn)
        changed = await repository.store_facts(list(latest.values()), clock.now())
        if changed:
            await reconcile(
                repository, await contracts_in_force(conn), changed, now=clock.now(), reason="outcome"
            )

    return handle


def commands_handler(clock: Clock) -> Handler:
    async def handle(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        commands = [decode_command(record.value) for record in records]
        if any(isinstance(command, ContractDefinitionV1) for command in commands):
            await lock_definitions(conn)  # before a ledger command's row lock
        for command in commands:
            if isinstance(command, LedgerCommandV1):
                await apply_ledger_command(conn, command, now=clock.now())
            elif isinstance(command, WebhookCommandV1):
                await apply_webhook_command(conn, command, now=clock.now())
            else:
                await apply_definition(conn, command, origin="command", clock=clock)

    return handle


def decode_command(value: bytes | None) -> ContractDefinitionV1 | LedgerCommandV1 | WebhookCommandV1:
    """`contracts.commands.v1` carries contract definitions and, marked by a `command` field, commands on a
    contract's ledger or its webhook endpoints."""
    try:
        document = orjson.loads(value or b"")
    except orjson.JSONDecodeError:  # not JSON (or numbers past 64 bits): the definition's decoder says why
        document = None
    if isinstance(document, dict) and "command" in document:
        if str(document["command"]).startswith(WEBHOOK_COMMAND_PREFIX):
            return decode_message(WebhookCommandV1, value, InvalidCommand)
        return decode_message(LedgerCommandV1, value, InvalidCommand)
    return decode_message(ContractDefinitionV1, value, InvalidCommand)


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
    repository = PostgresRepository(conn)
    for contract_id in await repository.pending_reallocations():
        async with conn.transaction():
            if contract_id in contracts:
                version, definition = contracts[contract_id]
                await reconcile_contract(
                    repository, contract_id, version, definition, now=clock.now(), reason="reallocation"
                )
            await repository.reallocated(contract_id)
        done.append(contract_id)
    return done
