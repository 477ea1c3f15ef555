"""Disclosure control across linked tables: cell suppression that subtraction over all of them cannot undo.

A release publishes many tables of the same counts: provider by year, provider totals, national by year,
the national total, national breakdowns by year. They are linked: each total is the sum of its parts, in
every table it appears in. Suppressing small cells table by table is not enough: a provider's one small
year can be recovered from its all-years total minus its other years, even when every single table has two
suppressed cells.

The reader is modelled as the strongest linear attacker: it knows every published cell and every relation
(total = sum of parts), and solves the whole system exactly. A suppressed cell is disclosed when the system
fixes its value, whatever the other suppressed cells are. `suppress_linked` starts from the primary cells
(fewer than `min_cell`) and adds the smallest published cell beside a disclosed one until none is disclosed.
The check is exact (rational elimination), not a heuristic about how many cells a row hides.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Generic, TypeVar

from .disclosure import DEFAULT_MIN_CELL

K = TypeVar("K", bound=Hashable)
LOOKAHEAD = 6  # candidates tried per step: the cheapest few (each try is one elimination)


@dataclass(frozen=True)
class Relation(Generic[K]):
    """`total` is the sum of `parts` (in every count a cell holds)."""

    total: K
    parts: tuple[K, ...]


@dataclass(frozen=True)
class LinkedSuppression(Generic[K]):
    cells: frozenset[K]  # suppressed: primary and complementary
    primary: frozenset[K]


def disclosed(suppressed: Iterable[K], relations: Sequence[Relation[K]]) -> set[K]:
    """The suppressed cells whose value the published cells and the relations fix.

    Each relation is one linear equation over the suppressed cells (the published ones are constants). A
    cell's value is fixed exactly when its unit vector lies in the equations' row space: in the reduced row
    echelon form, its column is a pivot whose row has no other non-zero entry.
    """
    unknown = {cell: i for i, cell in enumerate(dict.fromkeys(suppressed))}
    rows: list[dict[int, Fraction]] = []
    for relation in relations:
        row: dict[int, Fraction] = {}
        for cell, sign in ((relation.total, 1), *((part, -1) for part in relation.parts)):
            if cell in unknown:
                column = unknown[cell]
                row[column] = row.get(column, Fraction(0)) + sign
        row = {c: v for c, v in row.items() if v != 0}
        if row:
            rows.append(row)
    pivots = _reduce(rows)
    cells = {i: cell for cell, i in unknown.items()}
    return {cells[column] for column, row in pivots.items() if len(row) == 1}


def _reduce(rows: list[dict[int, Fraction]]) -> dict[int, dict[int, Fraction]]:
    """Sparse Gauss-Jordan elimination: pivot column -> its fully reduced row (pivot entry 1)."""
    pivots: dict[int, dict[int, Fraction]] = {}
    for row in rows:
        row = dict(row)
        for column in [c for c in row if c in pivots]:  # eliminate the known pivots from the new row
            factor = row.get(column)
            if factor:
                _add(row, pivots[column], -factor)
        if not row:
            continue
        column = min(row)
        scale = row[column]
        row = {c: v / scale for c, v in row.items()}
        for other in pivots.values():  # and the new pivot from every earlier row (fully reduced form)
            factor = other.get(column)
            if factor:
                _add(other, row, -factor)
        pivots[column] = row
    return pivots


def _add(target: dict[int, Fraction], source: Mapping[int, Fraction], factor: Fraction) -> None:
    for column, value in source.items():
        updated = target.get(column, Fraction(0)) + factor * value
        if updated:
            target[column] = updated
        else:
            target.pop(column, None)


def suppress_linked(
    closed: Mapping[K, int],
    relations: Sequence[Relation[K]],
    *,
    min_cell: int = DEFAULT_MIN_CELL,
    hidden: Iterable[K] = (),
) -> LinkedSuppression[K]:
    """Primary suppression of cells under `min_cell`, then complementary suppression until no suppressed
    cell can be computed from the rest. The cell added shares a relation with a disclosed cell; of those, the
    one that leaves the fewest disclosed, then one that is not a total (a national figure is the last to
    go), then the smallest. `hidden`: cells already hidden for another reason, protected the same way."""
    primary = frozenset(k for k, n in closed.items() if n < min_cell)
    suppressed = set(primary) | set(hidden)
    totals = {r.total for r in relations}
    touching: dict[K, list[Relation[K]]] = {}
    for relation in relations:
        for cell in (relation.total, *relation.parts):
            touching.setdefault(cell, []).append(relation)
    open_cells = disclosed(suppressed, relations)
    while open_cells:
        candidates = _candidates(sorted(open_cells, key=repr), suppressed, touching)
        if not candidates:  # cannot happen: with every linked cell hidden, nothing is fixed
            raise AssertionError("suppressed cells stay disclosed with every linked cell suppressed")
        # One step of look-ahead: the candidate after which the fewest cells stay disclosed (two cells that
        # close a rectangle of four beat the two smallest cells), then the cheapest.
        cheapest = sorted(candidates, key=lambda c: (c in totals, closed.get(c, 0), repr(c)))[:LOOKAHEAD]
        scored = []
        for candidate in cheapest:
            after = disclosed(suppressed | {candidate}, relations)
            scored.append(
                (
                    (len(after), candidate in totals, closed.get(candidate, 0), repr(candidate)),
                    candidate,
                    after,
                )
            )
        _, chosen, open_cells = min(scored, key=lambda item: item[0])
        suppressed.add(chosen)
    return LinkedSuppression(frozenset(suppressed), primary)


def _candidates(open_cells: list[K], suppressed: set[K], touching: Mapping[K, list[Relation[K]]]) -> list[K]:
    return neighbours(open_cells, suppressed, touching)


def neighbours(
    cells: Iterable[K],
    hidden: set[K],
    touching: Mapping[K, list[Relation[K]]],
    eligible: Callable[[K], bool] = lambda _: True,
) -> list[K]:
    """The eligible published cells sharing a relation with one of `cells`; if there are none, those one
    relation further out (through hidden cells and cells that may not be hidden), and so on."""
    start = list(cells)
    seen: set[K] = set(start)
    frontier = start
    while frontier:
        found: set[K] = set()
        reached: list[K] = []
        for cell in frontier:
            for relation in touching.get(cell, ()):
                for other in (relation.total, *relation.parts):
                    if other not in hidden and other not in start and eligible(other):
                        found.add(other)
                    elif other not in seen:
                        seen.add(other)
                        reached.append(other)
        if found:
            return sorted(found, key=repr)
        frontier = reached
    return []
