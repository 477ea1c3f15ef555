"""Wilson intervals, disclosure control (property-tested: no suppressed cell recoverable by subtraction),
indirect standardisation and quantiles."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utfall_stats.disclosure import recoverable, suppress
from utfall_stats.quantiles import quantile, quartiles
from utfall_stats.risk import StratumCount, indirect_standardisation, poisson_interval
from utfall_stats.wilson import wilson_interval


def test_wilson_known_values() -> None:
    low, high = wilson_interval(81, 263)  # textbook example
    assert low == pytest.approx(0.2553, abs=1e-3) and high == pytest.approx(0.3662, abs=1e-3)
    assert wilson_interval(0, 0) is None
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0


@given(n=st.integers(1, 5000), data=st.data())
def test_wilson_contains_the_estimate_and_stays_in_bounds(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n))
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n + 1e-12 <= high + 1e-12 <= 1.0 + 1e-12


def test_primary_and_complementary_suppression() -> None:
    result = suppress({"a": 50, "b": 30, "c": 4}, min_cell=10)
    assert result.primary == {"c"} and result.cells == {"c", "b"} and not result.total_suppressed
    assert suppress({"a": 3, "b": 4}, min_cell=10).total_suppressed
    assert suppress({"a": 40, "b": 12}, min_cell=10).cells == frozenset()
    own = suppress({"mine": 4, "a": 50, "b": 30, "c": 5}, min_cell=10, known={"mine"})
    assert {"c", "b"} <= own.cells  # the reader's own cell is known, so c alone would be derivable


@settings(max_examples=500)
@given(
    cells=st.dictionaries(st.text(min_size=1, max_size=3), st.integers(0, 60), min_size=1, max_size=12),
    min_cell=st.integers(1, 15),
    data=st.data(),
)
def test_no_suppressed_value_is_derivable_by_subtraction(
    cells: dict[str, int], min_cell: int, data: st.DataObject
) -> None:
    known = frozenset(data.draw(st.sets(st.sampled_from(sorted(cells)), max_size=max(0, len(cells) - 1))))
    result = suppress(cells, min_cell=min_cell, known=known)
    assert result.primary == {k for k, n in cells.items() if n < min_cell} or result.total_suppressed
    assert all(k in result.cells for k, n in cells.items() if n < min_cell)
    assert not recoverable(cells, result.cells, result.total_suppressed, known)
    # brute force: published cells (not suppressed, or known) and the total leave ≥2 unknowns or none
    if not result.total_suppressed:
        unknown = [k for k in cells if k in result.cells and k not in known]
        assert len(unknown) != 1


def test_indirect_standardisation() -> None:
    counts = [
        StratumCount("A", "young", 8, 10),
        StratumCount("A", "old", 2, 10),
        StratumCount("B", "young", 16, 20),
        StratumCount("B", "old", 10, 40),
    ]
    out = indirect_standardisation(counts)
    # stratum rates: young 24/30 = 0.8, old 12/50 = 0.24
    assert out["A"].expected == pytest.approx(10 * 0.8 + 10 * 0.24)
    assert out["A"].oe_ratio == pytest.approx(10 / (8 + 2.4))
    assert out["B"].expected == pytest.approx(20 * 0.8 + 40 * 0.24)
    assert out["A"].oe_low < out["A"].oe_ratio < out["A"].oe_high
    total_o = sum(r.observed for r in out.values())
    total_e = sum(r.expected for r in out.values())
    assert total_o == pytest.approx(total_e)  # indirect standardisation is calibrated overall


def test_poisson_interval() -> None:
    assert poisson_interval(0) == (0.0, pytest.approx(-math.log(0.025)))
    low, high = poisson_interval(10)
    assert low == pytest.approx(4.795, abs=0.02) and high == pytest.approx(18.39, abs=0.05)


def test_quantiles() -> None:
    assert quartiles([1, 2, 3, 4, 5]) == (2, 3, 4)
    assert quantile([], 0.5) is None
    assert quantile([10, 20], 0.5) == 15
