"""Interval audit of suppressed cells, as τ-Argus and sdcTable audit a suppression pattern: the attacker knows
every published cell and every way the cells add up, knows that counts are whole numbers of at least zero,
and may know some cells exactly (a provider knows its own). For each protected cell it bounds what the
cell can be by linear programming (HiGHS): minimise and maximise the cell subject to everything published.
A cell is protected when that feasible interval is wide enough, not merely when it has no exact solution.

The model is written in *atoms*: the finest pieces the published cells are sums of (a provider's episodes
of one care type in one discharge year, say). Every atom holds several counts (achieved, not achieved,
missing, pending of each measure); a cell is the sum of its atoms in some of those counts. What ties the
tables together is stated as:
- `cells`: each cell is the sum of its atoms, count by count;
- `balances`: two sets of atoms hold the same episodes (the providers of a year, and the sexes of that
  year), so their sums are equal, count by count;
- `identities`: within one atom, groups of counts with the same sum (every measure counts the same
  discharged episodes: its achieved + not achieved + missing + pending is the same number).

The LP relaxation gives bounds the integer problem can only tighten by rounding (we round inwards), as
τ-Argus's audit does; the attacker here is therefore at least as strong as any that solves the same
relations over the reals.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np

from .linked import Relation, neighbours

AtomKey = Any  # hashable: a tuple naming an atom
CellKey = Any  # hashable: a tuple naming a cell
Count = str


@dataclass(frozen=True)
class Cell:
    """A published cell: the sum of `atoms`, giving one number per entry of `sums` (each the total of some
    counts: a count alone, or several added up where only their total is shown)."""

    atoms: tuple[AtomKey, ...]
    sums: tuple[tuple[Count, ...], ...]

    @property
    def counts(self) -> tuple[Count, ...]:
        return tuple(dict.fromkeys(c for group in self.sums for c in group))


@dataclass(frozen=True)
class LinearTables:
    atoms: Mapping[AtomKey, tuple[Count, ...]]
    cells: Mapping[CellKey, Cell]
    balances: Sequence[tuple[tuple[AtomKey, ...], tuple[AtomKey, ...]]] = ()
    identities: Sequence[tuple[AtomKey, tuple[tuple[Count, ...], ...]]] = ()


@dataclass(frozen=True)
class Knowledge:
    """What one attacker knows beyond the published cells: atoms exactly (`exact`, count by count) and lower
    bounds on atoms (`at_least`: its own share of an atom it shares with others)."""

    name: str = "public"
    exact: Mapping[AtomKey, Mapping[Count, int]] = field(default_factory=dict)
    at_least: Mapping[AtomKey, Mapping[Count, int]] = field(default_factory=dict)


PUBLIC = Knowledge()


@dataclass(frozen=True)
class Interval:
    low: float
    high: float  # math.inf when nothing bounds the cell from above

    @property
    def width(self) -> float:
        return self.high - self.low


log = logging.getLogger("utfall.stats.audit")
WARM_SECONDS = 1.0  # a warm-started bound takes milliseconds; one that has not ended by then has stalled
Published = Mapping[CellKey, Sequence[int]]  # a shown cell's numbers, one per entry of its `sums`


class Auditor:
    """The attacker's linear program over one set of published tables. `published`: each shown cell's
    numbers (a cell absent from it is suppressed); `nonempty`: suppressed cells the tables list, so the
    attacker knows they hold at least one episode (the sum of all their counts is at least 1)."""

    def __init__(self, tables: LinearTables, published: Published, nonempty: Iterable[CellKey] = ()) -> None:
        self.tables = tables
        self.column: dict[tuple[AtomKey, Count], int] = {}
        for atom, counts in tables.atoms.items():
            for count in counts:
                self.column[(atom, count)] = len(self.column)
        rows: list[tuple[dict[int, float], float, float]] = []
        for key, values in published.items():
            cell = tables.cells[key]
            for group, number in zip(cell.sums, values, strict=True):
                rows.append((self._sum(cell.atoms, group), float(number), float(number)))
        for left, right in tables.balances:
            for count in sorted({c for a in (*left, *right) for c in tables.atoms[a]}):
                row = self._sum(left, (count,))
                for col, coef in self._sum(right, (count,)).items():
                    row[col] = row.get(col, 0.0) - coef
                rows.append((row, 0.0, 0.0))
        for atom, groups in tables.identities:
            first = self._sum((atom,), groups[0])
            for group in groups[1:]:
                row = dict(first)
                for col, coef in self._sum((atom,), group).items():
                    row[col] = row.get(col, 0.0) - coef
                rows.append((row, 0.0, 0.0))
        for key in nonempty:
            if key not in published:
                cell = tables.cells[key]
                rows.append((self._sum(cell.atoms, cell.counts), 1.0, highspy.kHighsInf))
        rows = _distinct(rows)
        self.rows = len(rows)
        self.highs = highspy.Highs()  # type: ignore[no-untyped-call]
        self.highs.setOptionValue("output_flag", False)
        # Primal simplex: a basis stays feasible when only the objective changes, so each bound after the
        # first starts where the last one ended (measured: 8-10 ms a bound on 4,000 columns, against
        # 60-120 ms with the default dual simplex).
        self.highs.setOptionValue("simplex_strategy", 4)
        lp = highspy.HighsLp()
        n = len(self.column)
        lp.num_col_ = n
        lp.num_row_ = len(rows)
        lp.col_cost_ = np.zeros(n)
        lp.col_lower_ = np.zeros(n)
        lp.col_upper_ = np.full(n, highspy.kHighsInf)
        lp.row_lower_ = np.array([r[1] for r in rows], dtype=float)
        lp.row_upper_ = np.array([r[2] for r in rows], dtype=float)
        starts: list[int] = [0]
        index: list[int] = []
        coefs: list[float] = []
        for row, _, _ in rows:
            for col, coef in sorted(row.items()):
                if coef:
                    index.append(col)
                    coefs.append(coef)
            starts.append(len(index))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(coefs, dtype=float)
        lp.a_matrix_.num_col_ = n
        lp.a_matrix_.num_row_ = len(rows)
        self.highs.passModel(lp)
        self._knowledge: Knowledge = PUBLIC
        self._cost: list[int] = []

    def _sum(self, atoms: Iterable[AtomKey], counts: Sequence[Count]) -> dict[int, float]:
        row: dict[int, float] = {}
        for atom in atoms:
            for count in counts:
                col = self.column.get((atom, count))
                if col is not None:
                    row[col] = row.get(col, 0.0) + 1.0
        return row

    def _know(self, knowledge: Knowledge) -> None:
        if knowledge is self._knowledge:
            return
        lower = np.zeros(len(self.column))
        upper = np.full(len(self.column), highspy.kHighsInf)
        for atom, values in knowledge.at_least.items():
            for count, value in values.items():
                col = self.column.get((atom, count))
                if col is not None:
                    lower[col] = value
        for atom, values in knowledge.exact.items():
            for count, value in values.items():
                col = self.column.get((atom, count))
                if col is not None:
                    lower[col] = upper[col] = value
        cols = np.arange(len(self.column), dtype=np.int32)
        self.highs.changeColsBounds(len(cols), cols, lower, upper)
        self._knowledge = knowledge

    def _objective(self, row: Mapping[int, float]) -> None:
        if self._cost:
            cols = np.array(self._cost, dtype=np.int32)
            self.highs.changeColsCost(len(cols), cols, np.zeros(len(cols)))
        self._cost = sorted(row)
        if self._cost:
            cols = np.array(self._cost, dtype=np.int32)
            self.highs.changeColsCost(len(cols), cols, np.array([row[c] for c in self._cost]))

    def _solve(self) -> highspy.HighsModelStatus:
        """One solve from the last basis. The primal simplex can stall on these degenerate programs (seen once
        in hundreds of releases); a solve that has not ended within `WARM_SECONDS` starts afresh with the dual
        simplex, which has no time limit."""
        # HiGHS's time limit counts the instance's whole run time, not this one solve's
        self.highs.setOptionValue("time_limit", self.highs.getRunTime() + WARM_SECONDS)
        self.highs.run()
        status = self.highs.getModelStatus()
        if status in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kUnbounded):
            return status
        log.warning("disclosure audit: a warm-started bound ended %s; solving it afresh", status)
        self.highs.clearSolver()
        self.highs.setOptionValue("simplex_strategy", 1)
        self.highs.setOptionValue("time_limit", highspy.kHighsInf)
        try:
            self.highs.run()
            return self.highs.getModelStatus()
        finally:
            self.highs.setOptionValue("simplex_strategy", 4)

    def bounds(self, cell: CellKey, counts: Sequence[Count], knowledge: Knowledge = PUBLIC) -> Interval:
        """The least and the most the cell's sum of `counts` can be, given everything published and
        `knowledge`, rounded inwards to whole numbers."""
        self._know(knowledge)
        self._objective(self._sum(self.tables.cells[cell].atoms, counts))
        found = []
        for sense in (highspy.ObjSense.kMinimize, highspy.ObjSense.kMaximize):
            self.highs.changeObjectiveSense(sense)
            status = self._solve()
            if status == highspy.HighsModelStatus.kUnbounded:
                found.append(math.inf)
            elif status == highspy.HighsModelStatus.kOptimal:
                found.append(self.highs.getInfo().objective_function_value)
            else:
                raise InfeasibleTables(f"the published tables have no solution ({status})")
        return Interval(
            math.ceil(found[0] - 1e-6), math.floor(found[1] + 1e-6) if found[1] != math.inf else math.inf
        )


def _distinct(
    rows: list[tuple[dict[int, float], float, float]],
) -> list[tuple[dict[int, float], float, float]]:
    """The same equation published twice (a cell unchanged between releases) is one row."""
    seen: set[tuple[tuple[tuple[int, float], ...], float, float]] = set()
    out = []
    for row, low, high in rows:
        key = (tuple(sorted(row.items())), low, high)
        if key not in seen:
            seen.add(key)
            out.append((row, low, high))
    return out


class InfeasibleTables(ValueError):
    """The relations and the published values contradict each other: the model does not describe the tables."""


@dataclass(frozen=True)
class Requirement:
    """A sensitive cell: the sum of its `counts` must stay uncertain by at least `margin` to every attacker
    that does not know the cell itself."""

    cell: CellKey
    counts: tuple[Count, ...]
    margin: float
    exempt: frozenset[str] = (
        frozenset()
    )  # attackers the cell is all their own (nothing of others' to protect)


@dataclass(frozen=True)
class Finding:
    requirement: Requirement
    attacker: str
    interval: Interval


@dataclass(frozen=True)
class Protection:
    hidden: frozenset[CellKey]
    findings: tuple[Finding, ...]  # the interval of every requirement against every attacker, as audited
    rounds: int


def protect(
    tables: LinearTables,
    exact: Published,
    *,
    hidden: Iterable[CellKey],
    requirements: Sequence[Requirement],
    relations: Sequence[Relation[CellKey]],
    attackers: Sequence[Knowledge],
    fixed: Published | None = None,
    nonempty: Iterable[CellKey] = (),
    cost: Callable[[CellKey], Any] = repr,
    together: Callable[[CellKey], Iterable[CellKey]] = lambda cell: (cell,),
    anchor: Callable[[CellKey], CellKey] = lambda cell: cell,
    useful: Callable[[CellKey], bool] = lambda cell: True,
) -> Protection:
    """Suppress cells of `exact` (the cells being published now, with their true values) beyond `hidden`
    until every requirement holds against every attacker: audit, and for each cell still too narrow hide
    the cheapest published cell that shares a relation with it (`cost` orders them), then audit again.
    Hiding more only widens intervals, so a requirement that holds once holds to the end and is not
    audited again. `fixed`: what the attacker has whatever is hidden now (cells of earlier releases, and
    zeros: cells the tables do not list); they constrain it and are never hidden. `together`: the cells
    hidden with a cell (the same episodes shown in other tables would give it away). `anchor`: where among
    the cells being published to look for complements of a sensitive cell (an earlier release's cell: the
    same cell now). `useful`: whether hiding a cell can help at all (one an earlier release showed, unchanged
    since, cannot)."""
    hidden_now = set(hidden)
    before = dict(fixed or {})
    touching: dict[CellKey, list[Relation[CellKey]]] = {}
    for relation in relations:
        for cell in (relation.total, *relation.parts):
            touching.setdefault(cell, []).append(relation)
    settled: dict[tuple[Requirement, str], Interval] = {}
    listed = list(nonempty)
    rounds = 0
    began = time.monotonic()
    while True:
        rounds += 1
        published = {**before, **{k: v for k, v in exact.items() if k not in hidden_now}}
        auditor = Auditor(tables, published, listed)
        failing: list[tuple[Requirement, Knowledge]] = []
        for attacker in attackers:
            for requirement in requirements:
                if (
                    (requirement, attacker.name) in settled
                    or attacker.name in requirement.exempt
                    or _knows(tables, attacker, requirement.cell)
                ):
                    continue
                interval = auditor.bounds(requirement.cell, requirement.counts, attacker)
                if interval.width >= requirement.margin:
                    settled[(requirement, attacker.name)] = interval
                else:
                    failing.append((requirement, attacker))
        log.info(
            "disclosure audit round %d: %d of %d requirements narrower than their margin, %d cells hidden, "
            "%.1f s",
            rounds,
            len(failing),
            len(requirements) * len(attackers),
            len(hidden_now),
            time.monotonic() - began,
        )
        if not failing:
            findings = tuple(
                Finding(requirement, name, interval) for (requirement, name), interval in settled.items()
            )
            return Protection(frozenset(hidden_now), findings, rounds)
        added: set[CellKey] = set()
        for requirement, attacker in failing:
            if requirement.cell in added:
                continue  # one complement per cell and round: the next audit says whether it was enough
            options = neighbours(
                [anchor(requirement.cell)],
                hidden_now,
                touching,
                lambda c, a=attacker: c in exact and useful(c) and not _knows(tables, a, c),  # type: ignore[misc]
            )
            if not options:
                if added:
                    continue  # hidden beside another cell this round: the next audit says if it is enough
                raise Unprotectable(
                    f"nothing left to hide beside {requirement.cell!r} against {attacker.name}"
                )
            chosen = min(options, key=cost)
            hidden_now.update(c for c in together(chosen) if c in exact)
            added.add(requirement.cell)


def _knows(tables: LinearTables, attacker: Knowledge, cell: CellKey) -> bool:
    return all(atom in attacker.exact for atom in tables.cells[cell].atoms)


class Unprotectable(ValueError):
    """Every cell that could protect a sensitive cell is hidden already and it is still too narrow."""
