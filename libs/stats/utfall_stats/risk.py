"""Risk adjustment by indirect standardisation: observed vs expected given each group's case mix."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from .wilson import Z95


@dataclass(frozen=True, slots=True)
class StratumCount:
    group: Hashable
    stratum: Hashable
    achieved: int
    denominator: int


@dataclass(frozen=True, slots=True)
class Standardised:
    observed: int
    expected: float
    denominator: int
    oe_ratio: float | None
    oe_low: float | None
    oe_high: float | None
    adjusted_rate: float | None  # O/E times the overall rate


def poisson_interval(observed: int, z: float = Z95) -> tuple[float, float]:
    """Byar's approximation to the exact Poisson 95% interval of a count."""
    if observed == 0:
        return 0.0, -math.log(0.025)
    o = observed
    lower = o * (1 - 1 / (9 * o) - z / (3 * math.sqrt(o))) ** 3
    upper = (o + 1) * (1 - 1 / (9 * (o + 1)) + z / (3 * math.sqrt(o + 1))) ** 3
    return max(0.0, lower), upper


def indirect_standardisation(counts: Iterable[StratumCount]) -> dict[Hashable, Standardised]:
    rows = list(counts)
    stratum_achieved: dict[Hashable, int] = {}
    stratum_n: dict[Hashable, int] = {}
    for r in rows:
        stratum_achieved[r.stratum] = stratum_achieved.get(r.stratum, 0) + r.achieved
        stratum_n[r.stratum] = stratum_n.get(r.stratum, 0) + r.denominator
    total_achieved = sum(stratum_achieved.values())
    total_n = sum(stratum_n.values())
    overall = total_achieved / total_n if total_n else None
    observed: dict[Hashable, int] = {}
    expected: dict[Hashable, float] = {}
    denominators: dict[Hashable, int] = {}
    for r in rows:
        rate = stratum_achieved[r.stratum] / stratum_n[r.stratum] if stratum_n[r.stratum] else 0.0
        observed[r.group] = observed.get(r.group, 0) + r.achieved
        expected[r.group] = expected.get(r.group, 0.0) + r.denominator * rate
        denominators[r.group] = denominators.get(r.group, 0) + r.denominator
    out: dict[Hashable, Standardised] = {}
    for group, o in observed.items():
        e = expected[group]
        if e > 0:
            low, high = poisson_interval(o)
            ratio = o / e
            out[group] = Standardised(
                o,
                e,
                denominators[group],
                ratio,
                low / e,
                high / e,
                min(1.0, ratio * overall) if overall is not None else None,
            )
        else:
            out[group] = Standardised(o, e, denominators[group], None, None, None, None)
    return out
