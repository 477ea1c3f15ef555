"""Postgres: an asyncpg pool with JSON codecs, and a small numbered-SQL migrations runner.

Each service owns one schema (plus a `<service>_read` schema of views for the gateway) and keeps its
migrations as `migrations/NNNN_name.sql` files applied at start, each in its own transaction, under an
advisory lock so replicas starting together do not race.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from .locks import migration_lock

log = logging.getLogger(__name__)

READER_ROLE = "utfall_reader"  # NOLOGIN group role the gateway's login role is a member of


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ, encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
        )


async def connect(dsn: str, *, command_timeout: float = 60.0, **kwargs: Any) -> asyncpg.Connection:
    """One connection with the same codecs as a pool's (a worker process that needs only one)."""
    conn = await asyncpg.connect(dsn, command_timeout=command_timeout, **kwargs)
    await _init_connection(conn)
    return conn


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 8, command_timeout: float = 60.0, **kwargs: Any
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        command_timeout=command_timeout,
        **kwargs,
    )
    assert pool is not None
    return pool


def _migration_files(directory: Traversable | Path) -> list[tuple[int, str, str]]:
    out = []
    for entry in directory.iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        number = int(name.split("_", 1)[0])
        out.append((number, name, entry.read_text("utf-8")))
    out.sort()
    numbers = [n for n, _, _ in out]
    if len(numbers) != len(set(numbers)):
        raise RuntimeError(f"duplicate migration numbers in {directory}")
    return out


async def migrate(
    pool: asyncpg.Pool,
    schema: str,
    directory: Traversable | Path,
    *,
    after: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> list[str]:
    """Apply pending migrations of one schema; returns the names applied."""
    applied: list[str] = []
    lock_key = migration_lock(schema)
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
                " version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await conn.execute(
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'utfall_reader') "
                "THEN CREATE ROLE utfall_reader NOLOGIN; END IF; "
                "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            )
            done = {
                r["version"] for r in await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
            }
            for number, name, sql in _migration_files(directory):
                if number in done:
                    continue
                async with conn.transaction():
                    await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                    await conn.execute(sql)
                    await conn.execute(
                        f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES ($1, $2)',
                        number,
                        name,
                    )
                applied.append(name)
                log.info("applied migration %s/%s", schema, name)
            if after is not None:
                await after(conn)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
    return applied


def json_texts(values: list[Any]) -> list[str]:
    """JSON values for a `$n::text[]::jsonb[]` parameter (a list of lists would read as a 2-D array)."""
    return [orjson.dumps(v, default=str).decode() for v in values]


async def grant_readers(conn: asyncpg.Connection, schema: str) -> None:
    """The gateway's role reads the `<schema>_read` views and nothing else."""
    read_schema = f"{schema}_read"
    if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", read_schema):
        return
    await conn.execute(f'GRANT USAGE ON SCHEMA "{read_schema}" TO {READER_ROLE}')
    await conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{read_schema}" TO {READER_ROLE}')


TRANSIENT_PG_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # raised when a connection dies mid-protocol (server shutting down)
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.QueryCanceledError,
    ConnectionError,
    OSError,
    TimeoutError,
)
