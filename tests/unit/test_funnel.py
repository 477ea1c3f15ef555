"""Funnel plot statistics against values worked out by hand (the working is in each docstring)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from utfall_stats.funnel import Unit, binomial_limit, funnel, limits, overdispersion, winsorised


def test_interpolated_binomial_limits_for_four_cases() -> None:
    """Bin(4, 0.5): P(R<=r) = 1/16, 5/16, 11/16, 15/16, 1. The 97.5 % point: r = 4 (15/16 < 0.975 <= 1),
    P(R=4) = 1/16, alpha = (1 - 0.975) / (1/16) = 0.4, limit = (4 - 0.4) / 4 = 0.9. The 2.5 % point: r = 0
    (1/16 >= 0.025), alpha = (1/16 - 0.025) / (1/16) = 0.6, limit = (0 - 0.6) / 4, clipped to 0."""
    assert binomial_limit(0.5, 4, 0.975) == pytest.approx(0.9)
    assert binomial_limit(0.5, 4, 0.025) == 0.0


def test_interpolated_binomial_limits_for_a_hundred_cases() -> None:
    """Bin(100, 0.5): P(R<=39) = 0.017600, P(R<=40) = 0.028444, P(R=40) = 0.010844, so the 2.5 % point is
    r = 40, alpha = (0.028444 - 0.025) / 0.010844 = 0.3176 and the limit (40 - 0.3176) / 100 = 0.3968.
    P(R<=59) = 0.971556, P(R<=60) = 0.982400: the 97.5 % point is r = 60, alpha = 0.0074 / 0.010844 = 0.6824,
    limit 0.5932. The normal approximation would say 0.5 -+ 1.96 * 0.05 = 0.402 and 0.598."""
    assert binomial_limit(0.5, 100, 0.025) == pytest.approx(0.3968, abs=5e-5)
    assert binomial_limit(0.5, 100, 0.975) == pytest.approx(0.5932, abs=5e-5)
    bounds = limits(0.5, 100)
    assert bounds.low_998 < bounds.low_95 < 0.5 < bounds.high_95 < bounds.high_998


def test_overdispersion_by_dersimonian_laird() -> None:
    """Target 0.5, four providers of 100 with rates 0.3, 0.5, 0.5, 0.7: s^2 = 0.25/100 = 0.0025, z = -4, 0, 0, 4
    (winsorising 10 % of four values moves none). phi = 32/4 = 8. w = 400 each: sum(w) = 1600,
    sum(w^2)/sum(w) = 400, so tau^2 = (4 * 8 - 3) / (1600 - 400) = 29/1200 = 0.024167. The 95 % limits at
    n = 100 widen to 0.5 -+ 1.959964 * sqrt(0.0025 + 0.024167) = 0.17994 and 0.82006: no provider stands out,
    where the exact binomial limits (0.3968, 0.5932) would call 0.3 lower and 0.7 higher."""
    units = [Unit("a", 30, 100), Unit("b", 50, 100), Unit("c", 50, 100), Unit("d", 70, 100)]
    phi, tau2 = overdispersion(units, 0.5)
    assert phi == pytest.approx(8.0)
    assert tau2 == pytest.approx(29 / 1200)
    judged = funnel(units, 0.5, method="additive")
    assert judged.method == "additive" and judged.tau2 == pytest.approx(29 / 1200)
    at_100 = judged.limits_at(100)
    assert at_100.low_95 == pytest.approx(0.17994, abs=1e-5) and at_100.high_95 == pytest.approx(
        0.82006, abs=1e-5
    )
    assert {u.unit_id: u.label for u in judged.units} == dict.fromkeys("abcd", "no_different")
    plain = funnel(units, 0.5, method="none")
    assert {u.unit_id: u.label for u in plain.units} == {
        "a": "lower",
        "b": "no_different",
        "c": "no_different",
        "d": "higher",
    }
    assert all(u.beyond_998 for u in plain.units if u.unit_id in "ad")
    multiplicative = funnel(units, 0.5, method="multiplicative")
    # phi = 8: the sd grows by sqrt(8); 0.5 -+ 1.959964 * 0.05 * 2.828427 = 0.22282 and 0.77718
    assert multiplicative.limits_at(100).low_95 == pytest.approx(0.22282, abs=1e-5)


def test_no_adjustment_when_the_providers_vary_as_chance_allows() -> None:
    units = [Unit("a", 49, 100), Unit("b", 50, 100), Unit("c", 51, 100), Unit("d", 50, 100)]
    judged = funnel(units, method="additive")
    assert (
        judged.target == pytest.approx(0.5)
        and judged.phi < 1
        and judged.method == "none"
        and judged.tau2 == 0
    )


def test_winsorising_pulls_in_ten_percent_each_side() -> None:
    assert winsorised([float(v) for v in range(1, 11)]) == [2.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 9.0]


def test_a_risk_adjusted_rate_is_what_is_judged() -> None:
    units = [Unit("a", 30, 100, rate=0.5), Unit("b", 50, 100), Unit("c", 70, 100, rate=0.5)]
    judged = funnel(units, 0.5, method="none")
    assert {u.unit_id: u.label for u in judged.units} == dict.fromkeys("abc", "no_different")


@given(p0=st.floats(0.02, 0.98), n=st.integers(1, 400))
def test_limits_are_ordered_around_the_target(p0: float, n: int) -> None:
    here = limits(p0, n)
    assert 0 <= here.low_998 <= here.low_95 <= here.high_95 <= here.high_998 <= 1
    assert not math.isnan(here.low_95)


@given(p0=st.floats(0.05, 0.95), n=st.integers(30, 300))
def test_limits_narrow_as_cases_grow(p0: float, n: int) -> None:
    """Exact limits step with the discrete binomial at small n; over a sixteenfold growth they narrow."""
    here, more = limits(p0, n), limits(p0, n * 16)
    assert more.high_95 - more.low_95 < here.high_95 - here.low_95
