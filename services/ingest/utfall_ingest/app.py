"""Ingest: wiring. `create_app()` builds everything; nothing connects until the app starts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources

import asyncpg
from fastapi import FastAPI

from utfall_events.sealed import Unsealer
from utfall_events.topics import (
    CARE_EVENTS_REJECTED,
    RAW_TOPICS_PATTERN,
    REGISTER_RAW_PATTERN,
    register_of_raw_topic,
)
from utfall_platform.apikeys import KeyStore
from utfall_platform.clock import Clock, clock_from_offset_days
from utfall_platform.consumer import DeadLetterPolicy, Record
from utfall_platform.logging import setup_logging
from utfall_platform.oidc import ClaimNames, identity_provider
from utfall_platform.registry import ProviderRegistry
from utfall_platform.service import ServiceRuntime, create_service_app, serve

from .admission_service import admit
from .domain.registers import RegisterScope, register_scope
from .domain.validation import PseudonymKey, named_providers
from .expiry import expire_held
from .http import router
from .intake import Intake
from .raw_consumer import decode_all
from .register_consumer import take_parts
from .register_http import router as register_router
from .settings import DEV_PSEUDONYM_KEY, IngestSettings

log = logging.getLogger(__name__)


def create_app(settings: IngestSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or IngestSettings()
    clock = clock or clock_from_offset_days(settings.clock_offset_days)
    sealing = Unsealer(settings.person_id_keys.get_secret_value()) if settings.person_id_keys else None
    key = PseudonymKey(
        settings.pseudonym_key_version,
        settings.pseudonym_key.get_secret_value().encode(),
        sealing.unseal if sealing else None,
    )
    runtime = ServiceRuntime(
        name="ingest",
        settings=settings,
        clock=clock,
        schema="ingest",
        migrations=resources.files("utfall_ingest").joinpath("migrations"),
    )
    keys = KeyStore(settings.kafka, service="ingest")
    providers = ProviderRegistry(settings.kafka, service="ingest")

    async def handle_raw(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        raws, positions, senders = decode_all(records)
        await admit(
            conn,
            raws,
            provider_id=senders,
            channel="kafka",
            clock=clock,
            key=key,
            providers=await providers.ensure(named_providers(raws)),
            positions=positions,
        )

    runtime.subscribe("ingest-raw", RAW_TOPICS_PATTERN, handle_raw, DeadLetterPolicy(CARE_EVENTS_REJECTED))

    async def handle_register_parts(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        await keys.caught_up.wait()
        senders = {r for r in (register_of_raw_topic(rec.topic) for rec in records) if r}
        if any(not isinstance(register_scope(keys.keys.values(), r), RegisterScope) for r in senders):
            await keys.refresh()  # a register's key may have been created a moment ago
        await take_parts(conn, records, keys=keys.keys.values(), clock=clock, key=key)

    # every part is answered on the register's receipts topic (nothing is dead-lettered: decoding never raises)
    runtime.subscribe(
        "ingest-registers",
        REGISTER_RAW_PATTERN,
        handle_register_parts,
        DeadLetterPolicy(CARE_EVENTS_REJECTED),
    )

    async def start_background() -> None:
        if settings.pseudonym_key.get_secret_value() == DEV_PSEUDONYM_KEY:
            log.warning("UTFALL_PSEUDONYM_KEY is the development default; set a secret key in production")
        runtime.spawn(keys.run(), "key-store")
        runtime.spawn(providers.run(), "provider-registry")
        runtime.every(300, lambda: expire_held(runtime.pool, clock, settings.hold_days), "held-expiry")

    idp = identity_provider(settings)

    async def start_idp() -> None:
        if idp is not None:
            await idp.start()

    async def stop_idp() -> None:
        if idp is not None:
            await idp.close()

    runtime.on_start(start_background)
    runtime.on_start(start_idp)
    runtime.on_stop(stop_idp)
    app = create_service_app(
        runtime,
        title="Utfall ingest",
        description=(
            "The provider-facing front door: CloudEvents over HTTP, validated, pseudonymised, published."
        ),
    )
    app.state.keys = keys
    app.state.idp = idp
    app.state.claim_names = ClaimNames.with_overrides(settings.oidc_claim_names)
    app.state.providers = providers
    runtime.readiness_checks["api_keys"] = keys.caught_up.is_set
    runtime.readiness_checks["provider_registry"] = providers.caught_up.is_set
    app.state.intake = Intake(runtime, settings, key, providers, sealing)
    app.include_router(router)
    app.include_router(register_router)
    return app


def main() -> None:
    settings = IngestSettings()
    setup_logging("ingest", settings.log_level, settings.log_format)
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
