"""Disclosure control for published tables: primary and complementary cell suppression.

A breakdown is a set of cells whose counts add up to a published total. A cell with fewer than
`min_cell` closed episodes is suppressed (primary). If then exactly one suppressed cell is unknown to the
reader, it could be recovered as total minus the published cells, so the smallest remaining cell is
suppressed too (complementary), and so on. Cells the reader already knows (a provider's own cells) count
as published for this purpose. Where no cell is left to add, the total is withheld instead.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_MIN_CELL = 10


@dataclass(frozen=True)
class Suppression(Generic[K]):
    cells: frozenset[K]  # suppressed cells
    primary: frozenset[K]
    total_suppressed: bool


def suppress(
    closed: Mapping[K, int], *, min_cell: int = DEFAULT_MIN_CELL, known: frozenset[K] | set[K] = frozenset()
) -> Suppression[K]:
    total = sum(closed.values())
    if total < min_cell:
        everything = frozenset(closed)
        return Suppression(everything, everything, True)
    primary = frozenset(k for k, n in closed.items() if n < min_cell)
    suppressed = set(primary)
    while True:
        hidden = [k for k in suppressed if k not in known]
        if len(hidden) != 1:
            return Suppression(frozenset(suppressed), primary, False)
        candidates = sorted(
            ((n, repr(k)), k) for k, n in closed.items() if k not in suppressed and k not in known
        )
        if not candidates:
            return Suppression(frozenset(suppressed), primary, True)
        suppressed.add(candidates[0][1])


def recoverable(
    closed: Mapping[K, int],
    suppressed: frozenset[K],
    total_suppressed: bool,
    known: frozenset[K] | set[K] = frozenset(),
) -> set[K]:
    """Suppressed cells a reader can compute by subtraction (for tests: should always be empty)."""
    if total_suppressed:
        return set()
    hidden = [k for k in suppressed if k not in known]
    return set(hidden) if len(hidden) == 1 else set()
