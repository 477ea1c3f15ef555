"""Suppression across linked tables: no suppressed cell can be computed from everything published."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.attacker import recovered
from utfall_stats.disclosure import suppress
from utfall_stats.linked import Relation, disclosed, suppress_linked


def provider_year_tables(
    counts: dict[tuple[str, int], int],
) -> tuple[dict[object, int], list[Relation[object]]]:
    """Provider by year, provider totals, national by year, the national total: all linked."""
    providers = sorted({p for p, _ in counts})
    years = sorted({y for _, y in counts})
    cells: dict[object, int] = {("py", p, y): n for (p, y), n in counts.items()}
    relations: list[Relation[object]] = []
    for p in providers:
        parts = tuple(("py", p, y) for y in years if (p, y) in counts)
        cells[("p", p)] = sum(cells[c] for c in parts)
        relations.append(Relation(("p", p), parts))
    for y in years:
        parts = tuple(("py", p, y) for p in providers if (p, y) in counts)
        cells[("y", y)] = sum(cells[c] for c in parts)
        relations.append(Relation(("y", y), parts))
    cells[("all",)] = sum(counts.values())
    relations.append(Relation(("all",), tuple(("y", y) for y in years)))
    relations.append(Relation(("all",), tuple(("p", p) for p in providers)))
    return cells, relations


def attack(
    cells: dict[object, int], suppressed: frozenset[object], relations: list[Relation[object]]
) -> dict:
    published = {c: (None if c in suppressed else float(n)) for c, n in cells.items()}
    return recovered(published, [(r.total, r.parts) for r in relations])


def test_one_small_year_is_recoverable_from_the_providers_total_unless_linked() -> None:
    # Provider b has one small year. Per table, year 2024 hides b and the smallest other provider, so every
    # single table is safe; but b's all-years total minus its other years gives b's 2024 back.
    counts = {
        ("a", 2023): 40,
        ("a", 2024): 30,
        ("b", 2023): 25,
        ("b", 2024): 4,
        ("c", 2023): 50,
        ("c", 2024): 12,
    }
    cells, relations = provider_year_tables(counts)
    per_table = suppress({p: counts[(p, 2024)] for p in "abc"})
    naive = frozenset(("py", p, 2024) for p in per_table.cells)
    assert naive == {("py", "b", 2024), ("py", "c", 2024)}
    assert attack(cells, naive, relations) == {("py", "b", 2024): 4.0, ("py", "c", 2024): 12.0}
    assert disclosed(naive, relations) == naive  # our own check sees it too

    linked = suppress_linked(cells, relations)
    assert linked.primary == {("py", "b", 2024)}
    assert attack(cells, linked.cells, relations) == {}
    assert ("all",) not in linked.cells  # the national figure is the last thing to go
    # b's 2024 stays hidden by hiding a second year of b and of the provider beside it: a 2x2 rectangle
    assert linked.cells == {("py", "b", 2024), ("py", "c", 2024), ("py", "b", 2023), ("py", "c", 2023)}


def test_a_small_total_with_one_part_hides_both() -> None:
    cells, relations = provider_year_tables({("a", 2024): 3, ("b", 2024): 30, ("c", 2024): 40})
    linked = suppress_linked(cells, relations)
    assert {("py", "a", 2024), ("p", "a")} <= linked.cells
    assert attack(cells, linked.cells, relations) == {}


def test_nothing_small_nothing_hidden() -> None:
    cells, relations = provider_year_tables({("a", 2024): 30, ("b", 2024): 30, ("a", 2023): 11})
    assert suppress_linked(cells, relations).cells == frozenset()


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.tuples(st.sampled_from("abcdef"), st.integers(2020, 2024)),
        st.integers(0, 60),
        min_size=1,
        max_size=24,
    )
)
def test_no_suppressed_cell_is_recoverable_by_subtraction(counts: dict[tuple[str, int], int]) -> None:
    cells, relations = provider_year_tables(counts)
    linked = suppress_linked(cells, relations, min_cell=10)
    assert {c for c, n in cells.items() if n < 10} <= linked.cells
    assert attack(cells, linked.cells, relations) == {}
