"""Register verification: each episode's verified fact beside what its provider reported."""

from __future__ import annotations

from . import Pool, Row


async def verified_facts(
    pool: Pool, measure_id: str, *, provider_id: str | None, year: int | None
) -> list[Row]:
    """Each episode's verified fact of one measure, beside what its provider reported."""
    return list(
        await pool.fetch(
            "SELECT provider_id, episode_id, discharge_year, status, reported_status, evidence "
            "FROM measures_read.verified_facts WHERE measure_id = $1 AND ($2::text IS NULL OR provider_id = $2) "
            "AND ($3::int IS NULL OR discharge_year = $3)",
            measure_id,
            provider_id,
            year,
        )
    )
