"""Bulk writes on real Postgres: a wide write through COPY and the staging table leaves exactly what the same
write through unnested arrays leaves, and returns the same rows, twice in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from utfall_platform import bulk
from utfall_platform.bulk import EVERY_OTHER_COLUMN, BulkInsert
from utfall_platform.db import connect

pytestmark = pytest.mark.asyncio(loop_scope="session")


def upsert(table: str) -> BulkInsert:
    return BulkInsert(
        table,
        (("a", "text"), ("b", "int"), ("doc", "jsonb"), ("tags", "text")),
        constants=(("at", "timestamptz"),),
        select={"tags": "coalesce(string_to_array(nullif(x.tags, ''), ','), '{}')"},
        conflict=("a",),
        update=EVERY_OTHER_COLUMN,
        update_where="t.b < EXCLUDED.b",
        returning="a, b",
    )


def rows(n: int, step: int) -> list[dict[str, object]]:
    return [
        {
            "a": f"k{i}",
            "b": i * step,
            "doc": {"i": i, "x": [1, "ä"]} if i % 3 else None,
            "tags": "p,q" if i % 2 else "",
        }
        for i in range(n)
    ]


async def written(
    conn: asyncpg.Connection, table: str, copy_from: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[object, ...]:
    monkeypatch.setattr(bulk, "COPY_FROM", copy_from)
    statement = upsert(table)
    at = datetime(2026, 12, 3, tzinfo=UTC)
    async with conn.transaction():
        first = await statement.write(conn, rows(300, 1), at)
        second = await statement.write(conn, rows(450, 2)[::-1], at)  # 300 updated (larger b), 150 new
    stored = await conn.fetch(f"SELECT a, b, doc, tags, at FROM {table} ORDER BY a")
    staged = await conn.fetchval("SELECT to_regclass('pg_temp.' || $1) IS NOT NULL", statement.staging)
    return sorted(map(tuple, first)), sorted(map(tuple, second)), [tuple(r) for r in stored], staged


async def test_copy_through_staging_writes_what_unnest_writes(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    conn = await connect(world.database_url)
    try:
        schema = f"bulk_{world.name[-6:]}"
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for table in ("by_copy", "by_unnest"):
            await conn.execute(
                f"CREATE TABLE {schema}.{table} (a text PRIMARY KEY, b int, doc jsonb, tags text[], at timestamptz)"
            )
        *by_copy, staged = await written(conn, f"{schema}.by_copy", 200, monkeypatch)
        *by_unnest, not_staged = await written(conn, f"{schema}.by_unnest", 10**9, monkeypatch)
        assert staged and not not_staged  # the wide write went through COPY, the other through arrays
        assert by_copy == by_unnest
        first, second, stored = by_copy
        assert len(first) == 300 and len(second) == 449 and len(stored) == 450  # k0: b stays 0, not replaced
        assert stored[1] == ("k1", 2, {"i": 1, "x": [1, "ä"]}, ["p", "q"], datetime(2026, 12, 3, tzinfo=UTC))
        assert stored[0][2] is None  # JSON null, as the arrays write it
        # rows are inserted in the order given (the outbox relays in id order)
        await conn.execute(f"CREATE TABLE {schema}.ordered (id bigserial PRIMARY KEY, a text)")
        names = [f"n{i:04d}" for i in range(1000)][::-1]
        async with conn.transaction():
            await BulkInsert(f"{schema}.ordered", (("a", "text"),)).write(conn, ({"a": a} for a in names))
        assert [r["a"] for r in await conn.fetch(f"SELECT a FROM {schema}.ordered ORDER BY id")] == names
        # the staging table was emptied by the insert and by the commit
        assert await conn.fetchval(f"SELECT count(*) FROM {upsert(f'{schema}.by_copy').staging}") == 0
    finally:
        await conn.close()
