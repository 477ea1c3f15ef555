"""Bulk writes through `unnest`: one statement for any number of rows, its SQL generated from one column list.

Every wide insert and upsert in the services is this shape: one array parameter per column, unnested into
rows named after the table's own columns, so a value cannot land in the wrong column when a list changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .db import json_texts

Row = Mapping[str, Any]
EVERY_OTHER_COLUMN = ("*",)


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
        names = self.names
        arrays = ", ".join(
            f"${i}::text[]::jsonb[]" if kind == "jsonb" else f"${i}::{kind}[]"
            for i, (_, kind) in enumerate(self.columns, start=1)
        )
        constants = [
            f"${i}::{kind}" for i, (_, kind) in enumerate(self.constants, start=len(self.columns) + 1)
        ]
        target = ", ".join([*names, *(name for name, _ in self.constants)])
        selected = ", ".join([*(self.select.get(name, f"x.{name}") for name in names), *constants])
        sql = f"INSERT INTO {self.table} AS t ({target}) SELECT {selected} FROM unnest({arrays}) AS x({', '.join(names)})"
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
