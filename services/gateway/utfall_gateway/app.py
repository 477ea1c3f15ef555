"""Gateway: wiring. It reads the services' `*_read` views and publishes its acts (keys, providers, contract
commands, releases) to Kafka; `create_app()` builds everything, nothing connects until the app starts."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from utfall_platform.apikeys import KeyStore
from utfall_platform.clock import Clock, SystemClock
from utfall_platform.db import create_pool, migrate
from utfall_platform.logging import setup_logging
from utfall_platform.oidc import ClaimNames, identity_provider
from utfall_platform.registry import ProviderRegistry
from utfall_platform.service import ServiceRuntime, create_service_app, serve

from .audit_trail import AuditMiddleware, AuditTrail, CountedJSONResponse
from .people import People
from .release_store import ReleaseStore
from .routes import (
    admin,
    audit,
    contracts,
    disputes,
    events,
    forecast,
    measures,
    releases,
    signals,
    signin,
    statements,
    verification,
    webhooks,
)
from .session_store import SessionStore
from .settings import GatewaySettings
from .state import GatewayState
from .web import accessibility, definitions, page, provider

log = logging.getLogger(__name__)


def create_app(settings: GatewaySettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(
        name="gateway",
        settings=settings,
        clock=clock,
        schema=None,
        migrations=None,
        relay=False,
        database_url=settings.gateway_database_url.get_secret_value(),
    )
    keys = KeyStore(settings.kafka, service="gateway")
    providers = ProviderRegistry(settings.kafka, service="gateway")
    release_store = ReleaseStore(settings.kafka, service="gateway", deployment=settings.instance)
    state = GatewayState(runtime, settings, clock, release_store)
    # one chain per gateway process: replicas (another host, or another port here) never write the same chain
    chain = f"{settings.instance or 'gateway'}@{socket.gethostname()}:{settings.port}"
    trail = AuditTrail(settings.gateway_database_url.get_secret_value(), chain=chain)
    idp = identity_provider(settings)

    async def start_background() -> None:
        await migrate_own_schema(settings)
        if settings.audit_trail_enabled:
            runtime.spawn(trail.run(), "audit-trail")
        else:
            log.warning("the audit trail is OFF (UTFALL_AUDIT_TRAIL_ENABLED=false): nothing is recorded")
        runtime.spawn(keys.run(), "key-store")
        runtime.spawn(providers.run(), "provider-registry")
        runtime.spawn(release_store.run(), "release-store")
        if idp is not None:
            await idp.start()
            app.state.people = People(
                idp,
                SessionStore(runtime.pool),
                clock,
                claim_names=ClaimNames.with_overrides(settings.oidc_claim_names),
                session_hours=settings.session_hours,
                revalidate_seconds=settings.oidc_revalidate_seconds,
            )

    async def stop_background() -> None:
        await trail.close()
        if idp is not None:
            await idp.close()

    runtime.on_start(start_background)
    runtime.on_stop(stop_background)
    app = create_service_app(
        runtime,
        title="Utfall gateway",
        version="1.0.0",
        description=(
            "Read-only API over Utfall's read models: the measure catalogue, outcome results and open comparisons "
            "(disclosure-controlled), contracts, participants and payments, and event status. Authenticate with "
            "`Authorization: Bearer <key>`; without a key you are the public."
        ),
        openapi_url="/openapi.json",
        default_response_class=CountedJSONResponse,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.keys = keys
    app.state.people = None  # set at start when an identity provider is configured
    app.state.audit = trail
    app.add_middleware(
        AuditMiddleware, trail=lambda: trail if settings.audit_trail_enabled else None, now=clock.now
    )
    runtime.readiness_checks["api_keys"] = keys.caught_up.is_set
    app.state.providers = providers
    runtime.readiness_checks["provider_registry"] = providers.caught_up.is_set
    app.state.releases = release_store
    runtime.readiness_checks["releases"] = release_store.caught_up.is_set
    app.state.gateway = state
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins.split(","),
            allow_methods=["GET"],
            allow_headers=["Authorization"],
        )
    for router in (
        measures.router,
        contracts.router,
        statements.router,
        disputes.router,
        webhooks.router,
        forecast.router,
        events.router,
        admin.router,
        releases.router,
        verification.router,
        signals.router,
        page.router,
        definitions.router,
        accessibility.router,
        provider.router,
        signin.router,
        audit.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "web" / "static"), name="static")
    return app


async def migrate_own_schema(settings: GatewaySettings) -> None:
    """The gateway's schema (sessions, the audit trail), migrated as its owner; the gateway then writes there
    with its own read-only-by-default role."""
    owner = await create_pool(settings.database_url.get_secret_value(), min_size=1, max_size=1)
    try:
        await migrate(owner, "gateway", Path(__file__).parent / "migrations")
    finally:
        await owner.close()


def main() -> None:
    settings = GatewaySettings()
    setup_logging("gateway", settings.log_level, settings.log_format)
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
