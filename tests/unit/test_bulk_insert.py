"""The generated bulk statements: each value goes to the column named for it, in one statement."""

from __future__ import annotations

import pytest

from utfall_platform.bulk import EVERY_OTHER_COLUMN, BulkInsert, key_arrays

UPSERT = BulkInsert(
    "s.t",
    (("a", "text"), ("b", "int"), ("doc", "jsonb")),
    constants=(("at", "timestamptz"),),
    select={"b": "abs(x.b)"},
    conflict=("a",),
    update=EVERY_OTHER_COLUMN,
    update_where="t.b < EXCLUDED.b",
    assign={"at": "greatest(t.at, EXCLUDED.at)"},
    returning="a",
)


def test_upsert_statement_names_every_column() -> None:
    assert UPSERT.sql == (
        "INSERT INTO s.t AS t (a, b, doc, at) SELECT x.a, abs(x.b), x.doc, $4::timestamptz "
        "FROM unnest($1::text[], $2::int[], $3::text[]::jsonb[]) AS x(a, b, doc) "
        "ON CONFLICT (a) DO UPDATE SET b = EXCLUDED.b, doc = EXCLUDED.doc, at = greatest(t.at, EXCLUDED.at) "
        "WHERE t.b < EXCLUDED.b RETURNING a"
    )


def test_args_are_one_array_per_column_then_the_constants() -> None:
    rows = [{"doc": [{"k": 1}], "b": 2, "a": "x"}, {"a": "y", "b": -1, "doc": None}]
    assert UPSERT.args(rows, "now") == [["x", "y"], [2, -1], ['[{"k":1}]', "null"], "now"]
    with pytest.raises(TypeError):
        UPSERT.args(rows)
    with pytest.raises(KeyError):
        UPSERT.args([{"a": "x"}], "now")


def test_insert_or_skip_any_conflict() -> None:
    plain = BulkInsert("s.u", (("a", "text"),), conflict=())
    assert plain.sql.endswith("AS x(a) ON CONFLICT DO NOTHING")
    assert "ON CONFLICT" not in BulkInsert("s.u", (("a", "text"),)).sql


def test_key_arrays_are_sorted_pairs() -> None:
    assert key_arrays({("b", "1"), ("a", "2")}) == (["a", "b"], ["2", "1"])


def test_a_wide_write_inserts_from_its_staging_table_and_empties_it() -> None:
    assert UPSERT.staging_ddl == (
        "CREATE TEMP TABLE IF NOT EXISTS bulk_s_t (bulk_row int, a text, b int, doc text) ON COMMIT DELETE ROWS"
    )
    assert UPSERT.sql_from_staging == (
        "WITH x AS (DELETE FROM bulk_s_t RETURNING *) "
        "INSERT INTO s.t AS t (a, b, doc, at) SELECT x.a, abs(x.b), x.doc::jsonb, $1::timestamptz FROM x "
        "ORDER BY x.bulk_row ON CONFLICT (a) DO UPDATE SET b = EXCLUDED.b, doc = EXCLUDED.doc, at = greatest(t.at, EXCLUDED.at) "
        "WHERE t.b < EXCLUDED.b RETURNING a"
    )
