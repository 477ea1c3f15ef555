"""The interval audit (`utfall_stats.audit`): its bounds against scipy's own LP solver on generated tables,
and the protection loop on the cases a plain threshold rule gets wrong."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from utfall_stats.audit import Auditor, Cell, Knowledge, LinearTables, Requirement, protect
from utfall_stats.linked import Relation

pytestmark = pytest.mark.unit


def grid(
    values: dict[tuple[str, int], int],
) -> tuple[LinearTables, dict[object, tuple[int, ...]], list[Relation[object]]]:
    """Providers by year, with provider totals, year totals and the grand total: one count per atom."""
    providers = sorted({p for p, _ in values})
    years = sorted({y for _, y in values})
    atoms = {(p, y): ("n",) for p in providers for y in years}
    cells: dict[object, Cell] = {}
    exact: dict[object, tuple[int, ...]] = {}
    relations = []

    def add(key: object, members: list[tuple[str, int]]) -> object:
        cells[key] = Cell(tuple(members), (("n",),))
        exact[key] = (sum(values.get(m, 0) for m in members),)
        return key

    for p in providers:
        parts = [add(("py", p, y), [(p, y)]) for y in years]
        relations.append(Relation(add(("p", p), [(p, y) for y in years]), tuple(parts)))
    for y in years:
        relations.append(
            Relation(add(("y", y), [(p, y) for p in providers]), tuple(("py", p, y) for p in providers))
        )
    total = add(("all",), list(atoms))
    relations.append(Relation(total, tuple(("p", p) for p in providers)))
    relations.append(Relation(total, tuple(("y", y) for y in years)))
    return LinearTables(atoms, cells), exact, relations


def scipy_bounds(
    tables: LinearTables, published: dict[object, tuple[int, ...]], target: object
) -> tuple[float, float]:
    columns = {a: i for i, a in enumerate(tables.atoms)}
    rows, rhs = [], []
    for key, (value,) in published.items():
        row = np.zeros(len(columns))
        for a in tables.cells[key].atoms:
            row[columns[a]] = 1
        rows.append(row)
        rhs.append(value)
    objective = np.zeros(len(columns))
    for a in tables.cells[target].atoms:
        objective[columns[a]] = 1
    kwargs = {"A_eq": np.array(rows), "b_eq": np.array(rhs)} if rows else {}
    low = linprog(objective, bounds=(0, None), method="highs", **kwargs)
    high = linprog(-objective, bounds=(0, None), method="highs", **kwargs)
    assert low.status == 0
    return np.ceil(low.fun - 1e-6), (np.inf if high.status == 3 else np.floor(-high.fun + 1e-6))


@settings(max_examples=40, deadline=None)
@given(
    values=st.dictionaries(
        st.tuples(st.sampled_from("abcd"), st.integers(2020, 2023)),
        st.integers(0, 30),
        min_size=4,
        max_size=16,
    ),
    hide=st.sets(st.integers(0, 40), max_size=12),
)
def test_bounds_agree_with_scipy(values: dict[tuple[str, int], int], hide: set[int]) -> None:
    tables, exact, _ = grid(values)
    keys = sorted(exact, key=repr)
    hidden = {keys[i % len(keys)] for i in hide}
    published = {k: v for k, v in exact.items() if k not in hidden}
    auditor = Auditor(tables, published)
    for key in sorted(hidden, key=repr):
        ours = auditor.bounds(key, ("n",))
        low, high = scipy_bounds(tables, published, key)
        assert (ours.low, ours.high) == (low, high), key
        assert ours.low <= exact[key][0] <= ours.high  # the truth is always feasible


def test_a_provider_knowing_its_own_cell_narrows_its_neighbour() -> None:
    tables, exact, _ = grid({("a", 2020): 4, ("b", 2020): 12, ("c", 2020): 30})
    published = {
        k: v
        for k, v in exact.items()
        if k not in {("py", "a", 2020), ("py", "b", 2020), ("p", "a"), ("p", "b")}
    }
    auditor = Auditor(tables, published, nonempty=[("py", "a", 2020), ("py", "b", 2020)])
    assert (
        auditor.bounds(("py", "a", 2020), ("n",)).low,
        auditor.bounds(("py", "a", 2020), ("n",)).high,
    ) == (1, 15)
    b = Knowledge("provider:b", exact={("b", 2020): {"n": 12}})
    interval = auditor.bounds(("py", "a", 2020), ("n",), b)
    assert (interval.low, interval.high) == (4, 4)


def test_two_small_cells_hidden_together_are_not_protected_until_a_third_joins_them() -> None:
    """Cells of 3 and 4 hide each other exactly (no subtraction gives either), yet together they publish
    that they hold 7: each lies in [0, 7], narrower than the margin of 10. The audit adds a third cell."""
    values = {
        ("a", 2020): 3,
        ("b", 2020): 4,
        ("c", 2020): 40,
        ("a", 2021): 30,
        ("b", 2021): 25,
        ("c", 2021): 35,
    }
    tables, exact, relations = grid(values)
    small = [("py", "a", 2020), ("py", "b", 2020)]
    rectangle = {*small, ("py", "a", 2021), ("py", "b", 2021)}  # exact suppression's answer
    auditor = Auditor(tables, {k: v for k, v in exact.items() if k not in rectangle})
    assert auditor.bounds(small[0], ("n",)).width == 7
    result = protect(
        tables,
        exact,
        hidden=rectangle,
        requirements=[Requirement(k, ("n",), 10) for k in small],
        relations=relations,
        attackers=[Knowledge()],
        cost=lambda k: (k[0] != "py", exact[k], repr(k)),
    )
    assert rectangle < result.hidden
    assert all(f.interval.width >= 10 for f in result.findings)
    check = Auditor(tables, {k: v for k, v in exact.items() if k not in result.hidden})
    assert all(check.bounds(k, ("n",)).width >= 10 for k in small)


def test_an_attacker_is_not_protected_from_its_own_cell() -> None:
    values = {("a", 2020): 3, ("b", 2020): 40, ("a", 2021): 30, ("b", 2021): 25}
    tables, exact, relations = grid(values)
    a = Knowledge("provider:a", exact={("a", 2020): {"n": 3}, ("a", 2021): {"n": 30}})
    result = protect(
        tables,
        exact,
        hidden={("py", "a", 2020)},
        requirements=[Requirement(("py", "a", 2020), ("n",), 10)],
        relations=relations,
        attackers=[Knowledge(), a],
    )
    assert {f.attacker for f in result.findings} == {"public"}


def test_a_stalled_warm_start_falls_back_to_a_fresh_dual_simplex(monkeypatch: pytest.MonkeyPatch) -> None:
    """No time at all for the warm start: every bound comes from the fallback, and they are the same."""
    from utfall_stats import audit

    values = {(p, y): n for p, n in zip("abcd", (3, 14, 25, 7), strict=True) for y in (2020, 2021)}
    tables, exact, _ = grid(values)
    hidden = {("py", "a", 2020), ("py", "b", 2020), ("py", "d", 2021), ("py", "c", 2021)}
    published = {k: v for k, v in exact.items() if k not in hidden}
    warm = [Auditor(tables, published).bounds(k, ("n",)) for k in sorted(hidden, key=repr)]
    monkeypatch.setattr(audit, "WARM_SECONDS", 0.0)
    cold = [Auditor(tables, published).bounds(k, ("n",)) for k in sorted(hidden, key=repr)]
    assert cold == warm
