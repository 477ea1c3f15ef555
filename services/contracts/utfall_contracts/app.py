"""Contracts: wiring. `create_app()` builds everything; nothing connects until the app starts."""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg
from fastapi import FastAPI

from utfall_events.codec import UndecodableRecord
from utfall_events.topics import CARE_EVENTS, CONTRACT_COMMANDS, CONTRACTS_DEADLETTER, OUTCOMES, OUTCOMES_V2
from utfall_platform.clock import Clock, clock_from_offset_days
from utfall_platform.consumer import DeadLetterPolicy
from utfall_platform.logging import setup_logging
from utfall_platform.service import ServiceRuntime, create_service_app, serve

from . import metrics as contract_metrics
from .consumers import (
    apply_definition,
    care_events_handler,
    commands_handler,
    outcomes_handler,
    reallocate_pending,
)
from .contract_store import cap_use, load_yaml_contracts
from .settings import ContractsSettings
from .webhook_delivery import WebhookDeliverer, http_client

log = logging.getLogger(__name__)
# Only decoding says a record is bad input; any other exception (a ValidationError our code raises included)
# is a bug that stops the consumer.
POISON: tuple[type[BaseException], ...] = (UndecodableRecord,)


def create_app(settings: ContractsSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or ContractsSettings()
    clock = clock or clock_from_offset_days(settings.clock_offset_days)
    runtime = ServiceRuntime(
        name="contracts",
        settings=settings,
        clock=clock,
        schema="contracts",
        migrations=resources.files("utfall_contracts").joinpath("migrations"),
    )
    dead_letter = DeadLetterPolicy(CONTRACTS_DEADLETTER, poison=POISON)
    for name, topic, handler in (
        ("contracts-commands", CONTRACT_COMMANDS, commands_handler(clock)),
        ("contracts-care-events", CARE_EVENTS, care_events_handler(clock)),
        ("contracts-outcomes-v2", OUTCOMES_V2, outcomes_handler(clock, version=2)),
        ("contracts-outcomes", OUTCOMES, outcomes_handler(clock, version=1)),
    ):
        runtime.subscribe(name, topic, handler, dead_letter)

    webhooks = http_client(settings)

    async def load_contract_files() -> None:
        runtime.every(
            settings.metrics_sample_seconds, lambda: sample_contract_gauges(runtime.pool), "contract-gauges"
        )
        deliverer = WebhookDeliverer(runtime.pool, clock, settings, webhooks)
        runtime.every(settings.webhook_poll_seconds, deliverer.step, "webhooks")
        runtime.every(settings.metrics_sample_seconds, deliverer.sample_gauges, "webhook-gauges")
        runtime.every(3600, deliverer.prune_log, "webhook-log-retention")
        async with runtime.pool.acquire() as conn:
            for contract_id in await reallocate_pending(conn, clock=clock):
                log.info("contract %s re-allocated under the current payment rule", contract_id)
        if not settings.contracts_dir.is_dir():
            return
        for path, definition in load_yaml_contracts(settings.contracts_dir):
            async with runtime.pool.acquire() as conn, conn.transaction():
                version = await apply_definition(conn, definition, origin=f"yaml:{path.name}", clock=clock)
            if version is not None:
                log.info("contract %s version %d loaded from %s", definition.contract_id, version, path.name)

    runtime.on_start(load_contract_files)
    runtime.on_stop(webhooks.aclose)
    return create_service_app(
        runtime,
        title="Utfall contracts",
        description=(
            "Outcome contracts: enrolment by rule, milestones, the capped append-only payment ledger."
        ),
    )


async def sample_contract_gauges(pool: asyncpg.Pool) -> None:
    for r in await cap_use(pool):
        contract_metrics.PAID_NET.labels(r["contract_id"]).set(r["paid_net_ore"])
        contract_metrics.CAP_UTILISATION.labels(r["contract_id"]).set(
            r["paid_net_ore"] / r["total_cap_ore"] if r["total_cap_ore"] else 0
        )


def main() -> None:
    settings = ContractsSettings()
    setup_logging("contracts", settings.log_level, settings.log_format)
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
