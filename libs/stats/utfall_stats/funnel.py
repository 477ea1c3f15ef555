"""Funnel plots for comparing providers (Spiegelhalter 2005, "Funnel plots for comparing institutional
performance", Stat Med 24:1185-1202; and "Handling over-dispersion of performance indicators", Qual Saf
Health Care 14:347-351).

Each provider's rate is set against its number of cases, with control limits around the national rate that
narrow as the number grows: 95 % and 99.8 % limits from the exact binomial distribution with Spiegelhalter's
interpolation (so a limit moves smoothly with n). When the providers vary more than chance allows
(overdispersion), the limits widen, either multiplicatively by phi or additively by a between-provider
variance tau^2 (DerSimonian-Laird), both estimated from z-scores winsorised at 10 % as in the NHS Summary
Hospital-level Mortality Indicator. A provider is labelled higher than expected, lower than expected, or no
different: never ranked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

Method = Literal["none", "multiplicative", "additive"]
LEVELS = (0.95, 0.998)
WINSOR = 0.10


@dataclass(frozen=True, slots=True)
class Unit:
    unit_id: str
    events: int  # outcomes achieved
    n: int  # cases: the denominator of the rate
    rate: float | None = None  # the rate to judge (a risk-adjusted one), default events / n


@dataclass(frozen=True, slots=True)
class Limits:
    low_95: float
    high_95: float
    low_998: float
    high_998: float


@dataclass(frozen=True, slots=True)
class Judged:
    unit_id: str
    n: int
    rate: float
    z: float
    limits: Limits
    label: Literal["higher", "lower", "no_different"]
    beyond_998: bool  # outside the 99.8 % limits too (an alarm, where 95 % is a warning)


@dataclass(frozen=True, slots=True)
class Funnel:
    target: float  # the national rate
    method: Method
    phi: float  # the (winsorised) overdispersion factor; about 1 without overdispersion
    tau2: float  # the additive between-provider variance (0 unless method is additive)
    units: list[Judged]

    def limits_at(self, n: int) -> Limits:
        """The control limits for a provider of `n` cases (to draw the funnel)."""
        return limits(self.target, n, method=self.method, phi=self.phi, tau2=self.tau2)


def _binomial_cdf_table(n: int, p: float) -> list[float]:
    """P(R <= r) for r = 0..n, through the pmf in log space (stable for thousands of cases)."""
    if p <= 0.0:
        return [1.0] * (n + 1)
    if p >= 1.0:
        return [0.0] * n + [1.0]
    log_p, log_q = math.log(p), math.log1p(-p)
    log_nf = math.lgamma(n + 1)
    cdf, total = [], 0.0
    for r in range(n + 1):
        total += math.exp(log_nf - math.lgamma(r + 1) - math.lgamma(n - r + 1) + r * log_p + (n - r) * log_q)
        cdf.append(min(total, 1.0))
    return cdf


def binomial_limit(p0: float, n: int, quantile: float) -> float:
    """The `quantile` point of a proportion out of `n` under target `p0`: the binomial quantile r_p (the
    smallest r with P(R <= r) >= quantile), interpolated as Spiegelhalter (2005, appendix A.1.1):
    alpha = (P(R <= r_p) - quantile) / P(R = r_p), limit = (r_p - alpha) / n."""
    if n <= 0:
        raise ValueError("n must be positive")
    cdf = _binomial_cdf_table(n, p0)
    r = next(i for i, c in enumerate(cdf) if c >= quantile)
    point = cdf[r] - (cdf[r - 1] if r > 0 else 0.0)
    alpha = (cdf[r] - quantile) / point if point > 0 else 0.0
    return min(1.0, max(0.0, (r - alpha) / n))


def limits(p0: float, n: int, *, method: Method = "none", phi: float = 1.0, tau2: float = 0.0) -> Limits:
    """95 % and 99.8 % limits for `n` cases. Without overdispersion they are exact binomial; with it, normal
    limits around p0 whose variance is p0(1-p0)/n times phi (multiplicative) or plus tau^2 (additive)."""
    values: list[float] = []
    for level in LEVELS:
        tail = (1 - level) / 2
        if method == "none":
            values += [binomial_limit(p0, n, tail), binomial_limit(p0, n, 1 - tail)]
            continue
        variance = p0 * (1 - p0) / n
        variance = variance * phi if method == "multiplicative" else variance + tau2
        z = NormalDist().inv_cdf(1 - tail)
        values += [max(0.0, p0 - z * math.sqrt(variance)), min(1.0, p0 + z * math.sqrt(variance))]
    return Limits(*values)


def winsorised(values: Sequence[float], share: float = WINSOR) -> list[float]:
    """Values pulled in to the `share` and 1 - `share` points of their distribution (10 % each side)."""
    if not values:
        return []
    ordered = sorted(values)
    k = math.floor(share * len(ordered))
    low, high = ordered[k], ordered[len(ordered) - 1 - k]
    return [min(max(v, low), high) for v in values]


def overdispersion(units: Sequence[Unit], p0: float) -> tuple[float, float]:
    """(phi, tau^2) from z-scores winsorised at 10 %: phi = sum(z^2) / I; tau^2 by DerSimonian-Laird,
    (I * phi - (I - 1)) / (sum(w) - sum(w^2) / sum(w)) with w = 1 / s^2, s^2 = p0(1-p0)/n, and 0 when negative."""
    usable = [u for u in units if u.n > 0]
    if len(usable) < 2 or not 0 < p0 < 1:
        return 1.0, 0.0
    s2 = [p0 * (1 - p0) / u.n for u in usable]
    z = winsorised([(_rate(u) - p0) / math.sqrt(v) for u, v in zip(usable, s2, strict=True)])
    count = len(usable)
    phi = sum(x * x for x in z) / count
    w = [1 / v for v in s2]
    denominator = sum(w) - sum(x * x for x in w) / sum(w)
    tau2 = max(0.0, (count * phi - (count - 1)) / denominator) if denominator > 0 else 0.0
    return phi, tau2


def _rate(unit: Unit) -> float:
    return unit.rate if unit.rate is not None else unit.events / unit.n


def funnel(units: Iterable[Unit], p0: float | None = None, *, method: Method = "additive") -> Funnel:
    """Judge every unit with at least one case against the target (default: all units' pooled rate).
    With `additive` or `multiplicative`, the adjustment applies only when the data are overdispersed
    (phi > 1, hence tau^2 > 0); otherwise the exact binomial limits stand."""
    pool = [u for u in units if u.n > 0]
    if p0 is None:
        total = sum(u.n for u in pool)
        p0 = sum(u.events for u in pool) / total if total else 0.0
    phi, tau2 = overdispersion(pool, p0)
    used: Method = method if method != "none" and phi > 1.0 else "none"
    if used != "additive":  # tau^2 widens the limits only under the additive method
        tau2 = 0.0
    judged = []
    for u in pool:
        rate = _rate(u)
        bounds = limits(p0, u.n, method=used, phi=phi, tau2=tau2)
        sd = math.sqrt(p0 * (1 - p0) / u.n) if 0 < p0 < 1 else 0.0
        z = (rate - p0) / sd if sd else 0.0
        label: Literal["higher", "lower", "no_different"] = (
            "higher" if rate > bounds.high_95 else "lower" if rate < bounds.low_95 else "no_different"
        )
        beyond = rate > bounds.high_998 or rate < bounds.low_998
        judged.append(Judged(u.unit_id, u.n, rate, z, bounds, label, beyond))
    return Funnel(p0, used, phi, tau2, judged)
