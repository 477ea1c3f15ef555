"""Bulk writes: one statement for any number of rows, its SQL generated from one column list.

Every wide insert and upsert in the services is this shape: rows named after the table's own columns, so a
value cannot land in the wrong column when a list changes. A few rows travel as one array parameter per
column, unnested; from `COPY_FROM` rows on (inside a transaction) they are COPYed into a temporary staging
table and inserted from there. asyncpg checks every array element against collections.abc (several
`isinstance` calls each, a tenth of a rebuild's CPU); binary COPY has no such checks, but costs two more
round trips and a truncation at commit, so only wide writes take it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import asyncpg

from .db import json_texts

Row = Mapping[str, Any]
EVERY_OTHER_COLUMN = ("*",)
# Rows from which a write inside a transaction goes through COPY. Its fixed cost (the staging table's lookup,
# the COPY, its truncation at commit) is about 4 ms here; arrays cost about 20 µs more per row of 20 columns.
# Measured on a 20-column upsert: COPY is slower at 200 rows (13.0 against 10.6 ms), faster at 1,000 (35.7
# against 44.9 ms).
COPY_FROM = 500


@dataclass(frozen=True)
class BulkInsert:
    """`INSERT INTO table (...) SELECT ... FROM unnest($1::t1[], ...) AS x(...) [ON CONFLICT ...] [RETURNING ...]`.

    columns: (name, type) per array parameter; type `jsonb` travels as text (asyncpg would read a list of
    lists as a 2-D array). constants: (name, type) of scalar parameters after the arrays, the same on
    every row (e.g. `updated_at`). select: an SQL expression over `x.<name>` to store instead of the value.
    conflict: the conflict target (empty: any); update: the columns an upsert replaces (none: DO NOTHING;
    `EVERY_OTHER_COLUMN`: all written columns but the conflict target); update_where: a condition on the old row `t` and `EXCLUDED`; assign: an SQL expression to set a replaced
    column to instead of `EXCLUDED.<name>`.
    """

    table: str
    columns: Sequence[tuple[str, str]]
    constants: Sequence[tuple[str, str]] = ()
    select: Mapping[str, str] = field(default_factory=dict)
    conflict: Sequence[str] | None = None
    update: Sequence[str] = ()
    update_where: str | None = None
    assign: Mapping[str, str] = field(default_factory=dict)
    returning: str | None = None

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @cached_property  # built once per statement, not per call on the hot path
    def sql(self) -> str:
        arrays = ", ".join(
            f"${i}::text[]::jsonb[]" if kind == "jsonb" else f"${i}::{kind}[]"
            for i, (_, kind) in enumerate(self.columns, start=1)
        )
        return self._statement(f"unnest({arrays}) AS x({', '.join(self.names)})", len(self.columns) + 1, {})

    @cached_property
    def staging(self) -> str:
        """The session's staging table for COPY (jsonb as text, like the arrays); emptied by the insert."""
        return "bulk_" + self.table.replace(".", "_")

    @cached_property
    def staging_ddl(self) -> str:
        columns = ", ".join(f"{name} {'text' if kind == 'jsonb' else kind}" for name, kind in self.columns)
        return (
            f"CREATE TEMP TABLE IF NOT EXISTS {self.staging} (bulk_row int, {columns}) ON COMMIT DELETE ROWS"
        )

    @cached_property
    def sql_from_staging(self) -> str:
        # the insert empties the staging table as it reads it, so a second write in one transaction starts
        # clean; rows go in the order given, as from the arrays (outbox order, lock order)
        casts = {name: f"x.{name}::jsonb" for name, kind in self.columns if kind == "jsonb"}
        statement = self._statement("x", 1, casts, order="x.bulk_row")
        return f"WITH x AS (DELETE FROM {self.staging} RETURNING *) {statement}"

    def _statement(self, source: str, first_constant: int, casts: Mapping[str, str], order: str = "") -> str:
        names = self.names
        constants = [f"${i}::{kind}" for i, (_, kind) in enumerate(self.constants, start=first_constant)]
        target = ", ".join([*names, *(name for name, _ in self.constants)])
        selected = ", ".join(
            [*(self.select.get(name, casts.get(name, f"x.{name}")) for name in names), *constants]
        )
        sql = f"INSERT INTO {self.table} AS t ({target}) SELECT {selected} FROM {source}"
        if order:
            sql += f" ORDER BY {order}"
        if self.conflict is not None:
            on = f" ({', '.join(self.conflict)})" if self.conflict else ""
            if self.update:
                sql += f" ON CONFLICT{on} DO UPDATE SET " + ", ".join(
                    f"{n} = {self.assign.get(n, f'EXCLUDED.{n}')}" for n in self._updated
                )
                if self.update_where:
                    sql += f" WHERE {self.update_where}"
            else:
                sql += f" ON CONFLICT{on} DO NOTHING"
        if self.returning:
            sql += f" RETURNING {self.returning}"
        return sql

    async def write(
        self, conn: asyncpg.Connection, rows: Iterable[Row], *constants: Any
    ) -> list[asyncpg.Record]:
        """Write the rows (with `RETURNING`, return what it returns): unnested arrays for a few rows, COPY
        through the staging table for many inside a transaction."""
        rows = list(rows)
        if not rows:
            return []
        if len(rows) < COPY_FROM or not conn.is_in_transaction():
            args = self.args(rows, *constants)
            if self.returning:
                return list(await conn.fetch(self.sql, *args))
            await conn.execute(self.sql, *args)
            return []
        if len(constants) != len(self.constants):
            raise TypeError(f"{self.table}: {len(self.constants)} constants expected, got {len(constants)}")
        # a lookup is a tenth of the cost of CREATE ... IF NOT EXISTS on a table that exists
        if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"pg_temp.{self.staging}"):
            await conn.execute(self.staging_ddl)
        columns = [[row[name] for row in rows] for name in self.names]
        for i, (_, kind) in enumerate(self.columns):
            if kind == "jsonb":
                columns[i] = json_texts(columns[i])
        await conn.copy_records_to_table(
            self.staging,
            records=zip(range(len(rows)), *columns, strict=True),
            columns=["bulk_row", *self.names],
        )
        if self.returning:
            return list(await conn.fetch(self.sql_from_staging, *constants))
        await conn.execute(self.sql_from_staging, *constants)
        return []

    def args(self, rows: Iterable[Row], *constants: Any) -> list[Any]:
        """The statement's parameters: one list per column, in the columns' order, then the constants."""
        if len(constants) != len(self.constants):
            raise TypeError(f"{self.table}: {len(self.constants)} constants expected, got {len(constants)}")
        rows = list(rows)
        arrays: list[Any] = []
        for name, kind in self.columns:
            values = [row[name] for row in rows]
            arrays.append(json_texts(values) if kind == "jsonb" else values)
        return [*arrays, *constants]

    @property
    def _updated(self) -> list[str]:
        if tuple(self.update) != EVERY_OTHER_COLUMN:
            return list(self.update)
        written = [*self.names, *(name for name, _ in self.constants)]
        return [name for name in written if name not in (self.conflict or ())]


def key_arrays(keys: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Two-part keys as two arrays, for `(a, b) IN (SELECT * FROM unnest($1::text[], $2::text[]))`; sorted,
    so concurrent writers lock rows in one order."""
    ordered = sorted(keys)
    return [k[0] for k in ordered], [k[1] for k in ordered]
