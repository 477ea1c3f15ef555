"""Publishes the measure catalogue (versioned data) as a table the gateway reads through a view, with each
verifiable measure's verified counterpart (`<id>@register`, counted from the verified facts) beside it."""

from __future__ import annotations

import asyncpg

from utfall_events.catalogue import VERIFIED_CATALOGUE

from .domain.catalogue import CATALOGUE


async def sync_catalogue(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE measures.measure_catalogue SET is_current = false")
        for m in (*CATALOGUE, *VERIFIED_CATALOGUE):  # a verified measure is published beside its own
            await conn.execute(
                "INSERT INTO measures.measure_catalogue (id, version, kind, title_sv, title_en, definition_sv, "
                "definition_en, window_months, grace_days, source_fields, is_current) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, true) ON CONFLICT (id, version) DO UPDATE SET "
                "kind = EXCLUDED.kind, title_sv = EXCLUDED.title_sv, title_en = EXCLUDED.title_en, "
                "definition_sv = EXCLUDED.definition_sv, definition_en = EXCLUDED.definition_en, "
                "window_months = EXCLUDED.window_months, grace_days = EXCLUDED.grace_days, "
                "source_fields = EXCLUDED.source_fields, is_current = true",
                m.id,
                m.version,
                m.kind,
                m.title_sv,
                m.title_en,
                m.definition_sv,
                m.definition_en,
                m.window_months,
                m.grace_days,
                list(m.source_fields),
            )
