"""Attackers on published tables, written apart from the suppression they test.

`recovered`: knows every published cell and every relation (a total is the sum of its parts) and solves the
whole linear system with numpy: a suppressed cell is recovered when the system fixes its value.

`IntervalAttacker`: the strongest reader the public allows. It holds every release's open data (cells as
the JSON download gives them), the registry's list of providers, and optionally one provider's own exact
figures; it knows that counts are whole numbers of at least zero, that a cell a table does not list is zero
and one it lists (even suppressed) holds at least one episode, that every measure counts the same
discharged episodes, and it assumes a discharge year whose every published figure is unchanged between two
releases did not change at all. It bounds every suppressed cell by linear programming (HiGHS, through its
own modelling API, not `utfall_stats.audit`).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np

from utfall_events.vocabulary import AGE_BANDS, SEXES, TARGET_GROUPS


def recovered(
    published: Mapping[Hashable, float | None], relations: Sequence[tuple[Hashable, Sequence[Hashable]]]
) -> dict[Hashable, float]:
    """Suppressed cells (value None) whose value subtraction over all relations gives, with that value."""
    unknown = sorted((cell for cell, value in published.items() if value is None), key=repr)
    index = {cell: i for i, cell in enumerate(unknown)}
    rows, constants = [], []
    for total, parts in relations:
        row = np.zeros(len(unknown))
        constant = 0.0
        for cell, sign in ((total, 1.0), *((part, -1.0) for part in parts)):
            if cell in index:
                row[index[cell]] += sign
            else:
                value = published[cell]
                assert value is not None
                constant -= sign * value
        if row.any():
            rows.append(row)
            constants.append(constant)
    if not rows:
        return {}
    matrix = np.array(rows)
    rank = np.linalg.matrix_rank(matrix)
    solution = np.linalg.lstsq(matrix, np.array(constants), rcond=None)[0]
    found = {}
    for cell, i in index.items():
        probe = np.zeros(len(unknown))
        probe[i] = 1.0
        if np.linalg.matrix_rank(np.vstack([matrix, probe])) == rank:
            found[cell] = round(float(solution[i]), 6)
    return found


EVENT_COUNTS = ("achieved", "not_achieved", "missing", "pending")
REPORTED_COUNTS = ("achieved", "not_achieved", "missing")
MARGINS = {"sex": SEXES, "age_band": AGE_BANDS, "target_group": TARGET_GROUPS}


@dataclass
class OwnFigures:
    """One provider's exact figures, as it knows them: per discharge year and measure, its counts; and per
    breakdown (sex, age band, target group), value and year, its own part of the national cell."""

    provider_id: str
    years: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)  # (measure, year) -> counts
    shares: dict[tuple[str, str, str, int], dict[str, int]] = field(
        default_factory=dict
    )  # (measure, dim, value, year)


@dataclass(frozen=True)
class Bound:
    release: int
    cell: tuple[Any, ...]  # (measure id, source, table, *dims)
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low


def _key(cell: Mapping[str, Any]) -> tuple[Any, ...]:
    table = cell["table"]
    if table == "provider_year":
        dims: tuple[Any, ...] = (cell["provider_id"], cell["discharge_year"])
    elif table == "provider_all_years":
        dims = (cell["provider_id"],)
    elif table == "national_year":
        dims = (cell["discharge_year"],)
    elif table == "national_all_years":
        dims = ()
    else:
        dims = (cell["breakdown_value"], cell["discharge_year"])
    return (cell["measure_id"], cell["source"], table, *dims)


def _as_event_cell(cell: Mapping[str, Any]) -> dict[str, Any]:
    """A verified measure's cell (`<id>@register`, source `verified`) counts the same episodes as every
    measure, in four counts of its own (achieved, not achieved, excluded, unverified), as the release's
    documentation says: the attacker reads it as one more event-based measure."""
    out = dict(cell)
    if out.get("source") == "verified":
        out["source"] = "events"
        out["missing"], out["pending"] = out.pop("excluded", None), out.pop("unverified", None)
    return out


class IntervalAttacker:
    def __init__(
        self,
        releases: Mapping[int, Sequence[Mapping[str, Any]]],
        registry: Iterable[str] = (),
        own: Mapping[int, OwnFigures] | None = None,
    ) -> None:
        """`releases`: each release's cells (data.json's `cells`); `registry`: provider ids the public
        registry lists; `own`: per release, the attacking provider's exact figures as of that release."""
        self.releases = {n: [_as_event_cell(c) for c in cells] for n, cells in sorted(releases.items())}
        self.registry = set(registry)
        self.own = dict(own or {})
        # No published table spans discharge years (and years are linked only to the same year of another
        # release), so the attacker's program is one independent program per year: the same bounds, solved
        # in far smaller programs.
        self.models: dict[int, Any] = {}
        self._domains: dict[int, tuple[list[str], list[int], dict[str, list[str]], list[str]]] = {}
        self.vars: dict[Hashable, Any] = {}
        self.alias: dict[Hashable, Hashable] = {}
        self.infeasible_links: list[tuple[int, int]] = []
        self._link_unchanged_years()
        self._constrain()

    # --- which discharge years did not change between releases ---------------------------------------------
    def _link_unchanged_years(self) -> None:
        numbers = sorted(self.releases)
        for before, after in itertools.pairwise(numbers):
            years_before = self._by_year(self.releases[before])
            years_after = self._by_year(self.releases[after])
            for year, cells in years_after.items():
                if years_before.get(year) == cells:
                    for atom in self._atoms_of_year(after, year):
                        self.alias[(after, *atom)] = self._root((before, *atom))

    @staticmethod
    def _by_year(cells: Sequence[Mapping[str, Any]]) -> dict[int, list[tuple[Any, ...]]]:
        out: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        for c in cells:
            if c["discharge_year"] is not None:
                out[c["discharge_year"]].append(
                    (_key(c), c["suppressed"], *(c.get(k) for k in (*EVENT_COUNTS, "episodes", "result")))
                )
        return {y: sorted(v, key=repr) for y, v in out.items()}

    def _root(self, key: Hashable) -> Hashable:
        while key in self.alias:
            key = self.alias[key]
        return key

    # --- the model ---------------------------------------------------------------------------------------------
    def _domain(self, number: int) -> tuple[list[str], list[int], dict[str, list[str]], list[str]]:
        if number not in self._domains:
            self._domains[number] = self._domain_of(number)
        return self._domains[number]

    def _domain_of(self, number: int) -> tuple[list[str], list[int], dict[str, list[str]], list[str]]:
        cells = self.releases[number]
        providers = sorted(
            {c["provider_id"] for c in cells if c["source"] == "events" and c["provider_id"]} | self.registry
        )
        years = sorted({c["discharge_year"] for c in cells if c["table"] == "national_year"})
        measures = sorted({c["measure_id"] for c in cells})
        reporters: dict[str, list[str]] = {
            m: sorted(
                {
                    c["provider_id"]
                    for c in cells
                    if c["source"] == "self_reported" and c["measure_id"] == m and c["provider_id"]
                }
            )
            for m in measures
        }
        return providers, years, reporters, measures

    def _atoms_of_year(self, number: int, year: int) -> list[tuple[Any, ...]]:
        providers, _, reporters, measures = self._domain(number)
        atoms: list[tuple[Any, ...]] = []
        for m in measures:
            atoms += [(m, "P", p, year, c) for p in providers for c in EVENT_COUNTS]
            atoms += [
                (m, "S", d, v, year, c) for d, values in MARGINS.items() for v in values for c in EVENT_COUNTS
            ]
            atoms += [(m, "R", p, year, c) for p in reporters[m] for c in REPORTED_COUNTS]
        return atoms

    def _h(self, year: int) -> Any:
        if year not in self.models:
            h = highspy.Highs()
            h.silent()
            h.setOptionValue("simplex_strategy", 4)
            self.models[year] = h
        return self.models[year]

    def _var(self, number: int, *atom: Any) -> Any:
        key = self._root((number, *atom))
        if key not in self.vars:
            year = (
                atom[4] if atom[1] == "S" else atom[3]
            )  # (m, S, dim, value, year, c) or (m, P|R, p, year, c)
            self.vars[key] = self._h(year).addVariable(lb=0.0)
        return self.vars[key]

    def _cell_atoms(self, number: int, key: tuple[Any, ...], count: str) -> list[Any]:
        providers, years, reporters, _ = self._domain(number)
        measure, source, table, *dims = key
        kind = "R" if source == "self_reported" else "P"
        who = reporters[measure] if source == "self_reported" else providers
        if table.endswith("_year") and table not in ("provider_year", "national_year"):
            return [self._var(number, measure, "S", table[: -len("_year")], dims[0], dims[1], count)]
        if table == "provider_year":
            pick = [(dims[0], dims[1])]
        elif table == "provider_all_years":
            pick = [(dims[0], y) for y in years]
        elif table == "national_year":
            pick = [(p, dims[0]) for p in who]
        else:
            pick = [(p, y) for p in who for y in years]
        return [self._var(number, measure, kind, p, y, count) for p, y in pick]

    def _constrain(self) -> None:
        self.targets: list[tuple[int, tuple[Any, ...], list[Any]]] = []
        for number, cells in self.releases.items():
            providers, years, reporters, measures = self._domain(number)
            listed = {_key(c): c for c in cells}
            # every cell the tables could hold: listed ones as published, the others zero
            possible: list[tuple[Any, ...]] = []
            for m in measures:
                possible += [(m, "events", "provider_year", p, y) for p in providers for y in years]
                possible += [
                    (m, "events", f"{d}_year", v, y) for d, vs in MARGINS.items() for v in vs for y in years
                ]
                possible += [(m, "self_reported", "provider_year", p, y) for p in reporters[m] for y in years]
            for key in {*possible, *listed}:
                assert not key[2].endswith("_all_years"), "a table over every year: the years are not apart"
                h = self._h(key[-1])
                counts = REPORTED_COUNTS if key[1] == "self_reported" else EVENT_COUNTS
                cell = listed.get(key)
                per_count = {c: self._cell_atoms(number, key, c) for c in counts}
                everything = [v for vs in per_count.values() for v in vs]
                if cell is None:
                    for v in everything:
                        h.addConstr(v == 0)
                elif cell["suppressed"]:
                    h.addConstr(h.qsum(everything) >= 1)
                    self.targets.append((number, key, everything))
                elif cell["result"] == "final":
                    for c, vs in per_count.items():
                        h.addConstr(h.qsum(vs) == float(cell[c] or 0))
                else:
                    h.addConstr(h.qsum(everything) == float(cell["episodes"]))
            for m in measures:  # a year's providers and each of its breakdowns are the same episodes
                for y in years:
                    h = self._h(y)
                    for d, values in MARGINS.items():
                        for c in EVENT_COUNTS:
                            h.addConstr(
                                h.qsum([self._var(number, m, "P", p, y, c) for p in providers])
                                == h.qsum([self._var(number, m, "S", d, v, y, c) for v in values])
                            )
            for m in measures[1:]:  # every measure counts the same episodes
                for y in years:
                    h = self._h(y)
                    atoms = [("P", p, y) for p in providers] + [
                        ("S", d, v, y) for d, vs in MARGINS.items() for v in vs
                    ]
                    for atom in atoms:
                        h.addConstr(
                            h.qsum([self._var(number, m, *atom, c) for c in EVENT_COUNTS])
                            == h.qsum([self._var(number, measures[0], *atom, c) for c in EVENT_COUNTS])
                        )
            own = self.own.get(number)
            if own is not None:
                for (m, y), counts in own.years.items():
                    for c in EVENT_COUNTS:
                        self._h(y).addConstr(
                            self._var(number, m, "P", own.provider_id, y, c) == float(counts.get(c, 0))
                        )
                for (m, d, v, y), counts in own.shares.items():
                    for c in EVENT_COUNTS:
                        self._h(y).addConstr(self._var(number, m, "S", d, v, y, c) >= float(counts.get(c, 0)))

    def bounds(self, wanted: Callable[[int, tuple[Any, ...]], bool] | None = None) -> list[Bound]:
        """The feasible interval of every suppressed cell's number of episodes, in every release (only of the
        cells `wanted` picks, when given: what a test asserts on; each bound is two linear programs)."""
        out = []
        done: dict[tuple[Any, ...], tuple[float, float]] = {}
        for number, key, variables in self.targets:
            if wanted is not None and not wanted(number, key):
                continue
            if (
                self.own
                and key[1] == "events"
                and self.own.get(number)
                and key[3:4] == (self.own[number].provider_id,)
            ):
                continue  # the attacker's own cell
            ident = tuple(sorted(id(v) for v in variables))
            if ident not in done:
                h = self._h(key[-1])
                expr = h.qsum(variables)
                done[ident] = (_bound(h, expr, minimise=True), _bound(h, expr, minimise=False))
            out.append(Bound(number, key, *done[ident]))
        return out


def _bound(h: Any, expr: Any, *, minimise: bool) -> float:
    """The least (or most) `expr` can be, rounded inwards to a whole number; inf when nothing bounds it."""
    if minimise:
        h.minimize(expr)
    else:
        h.maximize(expr)
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kUnbounded:
        return float("inf")
    assert status == highspy.HighsModelStatus.kOptimal, f"the public answers contradict each other: {status}"
    value = float(h.getInfo().objective_function_value)
    return float(np.ceil(value - 1e-6)) if minimise else float(np.floor(value + 1e-6))


class SumsAttacker:
    """A reader of answers that are sums of fine groups of episodes (a provider's episodes of one care type,
    target group and legal basis, say): each shown answer fixes its sum, each suppressed one that is listed
    holds at least one episode. Bounds any sum by linear programming. For answers that were not built as
    release tables: the live API's per-answer suppression (the control)."""

    def __init__(self, atoms: Iterable[Hashable]) -> None:
        self.h = highspy.Highs()
        self.h.silent()
        self.h.setOptionValue("simplex_strategy", 4)
        self.vars = {atom: self.h.addVariable(lb=0.0) for atom in atoms}

    def shown(self, atoms: Iterable[Hashable], value: float) -> None:
        self.h.addConstr(self.h.qsum([self.vars[a] for a in atoms]) == float(value))

    def listed(self, atoms: Iterable[Hashable]) -> None:
        self.h.addConstr(self.h.qsum([self.vars[a] for a in atoms]) >= 1.0)

    def bounds(self, atoms: Iterable[Hashable]) -> tuple[float, float]:
        expr = self.h.qsum([self.vars[a] for a in atoms])
        return _bound(self.h, expr, minimise=True), _bound(self.h, expr, minimise=False)
