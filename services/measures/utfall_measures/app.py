"""Measures: wiring. `create_app()` builds everything; nothing connects until the app starts."""

from __future__ import annotations

from importlib import resources

import asyncpg
from fastapi import FastAPI

from utfall_events.codec import UndecodableRecord
from utfall_events.topics import AGGREGATES, CARE_EVENTS, MEASURES_DEADLETTER, REGISTERS
from utfall_platform.clock import Clock, clock_from_offset_days
from utfall_platform.consumer import DeadLetterPolicy
from utfall_platform.logging import setup_logging
from utfall_platform.service import ServiceRuntime, create_service_app, serve

from .catalogue_store import sync_catalogue
from .consumer import care_events_handler
from .rebuild import PROJECTION_LOCK, finish_interrupted_rebuild
from .registers import registers_handler
from .self_reported import handle_aggregates
from .settings import MeasuresSettings
from .tick import tick

CONSUMER = "measures-care-events"


def create_app(settings: MeasuresSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or MeasuresSettings()
    clock = clock or clock_from_offset_days(settings.clock_offset_days)
    runtime = ServiceRuntime(
        name="measures",
        settings=settings,
        clock=clock,
        schema="measures",
        migrations=resources.files("utfall_measures").joinpath("migrations"),
    )
    dead_letter = DeadLetterPolicy(MEASURES_DEADLETTER, poison=(UndecodableRecord,))
    runtime.subscribe(CONSUMER, CARE_EVENTS, care_events_handler(clock), dead_letter)
    runtime.subscribe("measures-aggregates", AGGREGATES, handle_aggregates, dead_letter)
    runtime.subscribe("measures-registers", REGISTERS, registers_handler(clock), dead_letter)

    async def start_background() -> None:
        # Hold the projection lock shared while running; a rebuild takes it exclusively.
        lock = await asyncpg.connect(runtime.database_url)
        await lock.execute("SELECT pg_advisory_lock_shared($1)", PROJECTION_LOCK)
        runtime.on_stop(lock.close)
        await finish_interrupted_rebuild(runtime.pool, clock)
        await sync_catalogue(runtime.pool)
        runtime.every(settings.tick_seconds, lambda: tick(runtime.pool, clock), "tick")

    runtime.on_start(start_background)
    return create_service_app(
        runtime,
        title="Utfall measures",
        description=(
            "Episode projections and outcome facts from care.events.v1; read models for the gateway."
        ),
    )


def main() -> None:
    settings = MeasuresSettings()
    setup_logging("measures", settings.log_level, settings.log_format)
    serve(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
