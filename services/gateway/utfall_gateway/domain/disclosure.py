"""What a release may publish: the attacker model of everything public, and the suppression that holds
against it (pure; `releases.py` builds the tables and views from its answer).

The attacker holds every release (old ones stay public), knows how the tables add up, knows which care
types each provider has (the registry publishes them), knows that a cell a table does not list is zero and
one it lists holds at least one episode, and may be a provider that knows its own figures exactly. It
solves all of that as one linear program (`utfall_stats.audit`) and bounds every suppressed cell.

The tables are written in atoms, the finest pieces every published cell is a sum of:
- `("P", provider, care type, year)`: a provider's episodes of one care type discharged in one year. Provider
  cells, national cells and the care-type breakdown are sums of these; a provider has atoms only for the care
  types it has (so a care type with one provider is that provider, as an attacker reading the registry
  knows);
- `("S", dimension, value, year)` for sex, age band and target group: each breakdown of a year is its own
  partition of the same episodes (a balance ties it to the year's providers);
- `("R", measure, provider, year)`: a provider's aggregated, self-reported figures.
Every atom holds the counts of every measure (`<measure>@<version>:achieved` …); within an atom every
measure counts the same discharged episodes, so achieved + not achieved + missing + pending agree across
measures (an identity the attacker uses to carry what one measure shows into another).

Releases are linked by atoms that did not change between them: an atom keeps its version while its counts
stay the same, and every release's cells are written over the versions of its day. So a cell hidden in one
release and shown, unchanged, in a later one is the same unknown to the attacker, as it is in fact.

A sensitive cell (fewer than `min_cell` closed episodes) is protected when, to every attacker that does not
know it, its closed count can be anything in an interval at least `margin` wide (τ-Argus's protection
interval; `margin` defaults to `min_cell`, so two small cells hidden together can never be told apart from a
cell below the threshold, the case a plain threshold rule misses).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from utfall_events.releases import BREAKDOWNS
from utfall_events.vocabulary import AGE_BANDS, SEXES, TARGET_GROUPS
from utfall_stats.audit import (
    Cell,
    Knowledge,
    LinearTables,
    Requirement,
    protect,
)
from utfall_stats.linked import Relation, suppress_linked

AtomKey = tuple[Any, ...]
CellKey = tuple[Any, ...]  # (release, measure id, source, table, *dimension values)
Values = dict[str, int]

COUNTS = ("achieved", "not_achieved", "missing", "pending")
CLOSED = ("achieved", "not_achieved", "missing")
MARGINS = BREAKDOWNS  # breakdowns that are partitions of their own
SOURCES = ("events", "self_reported")


@dataclass(frozen=True)
class MeasureRows:
    """One measure's exact counts as a release reads them. `fine`: event-based counts (and `windows_closed`)
    per provider, sex, age band, target group and discharge year (further columns are ignored here);
    `reported`: self-reported counts per provider and discharge year."""

    measure_id: str
    measure_version: int
    fine: Sequence[Mapping[str, Any]]
    reported: Sequence[Mapping[str, Any]] = ()

    @property
    def tag(self) -> str:
        return f"{self.measure_id}@{self.measure_version}"


@dataclass(frozen=True)
class Snapshot:
    """The atoms of one release: each atom's exact counts, how many of its episodes have their outcome window
    closed (per measure), its version (the release since which it has not changed), and each provider's own
    share of the breakdown atoms (what that provider knows of them)."""

    release: int
    measures: tuple[tuple[str, str], ...]  # (measure id, tag) of every measure released
    atoms: Mapping[AtomKey, Values]
    windows: Mapping[AtomKey, Values]  # tag -> episodes whose window has closed
    versions: Mapping[AtomKey, int]
    shares: Mapping[str, Mapping[AtomKey, Values]]


def count_name(tag: str, count: str) -> str:
    return f"{tag}:{count}"


def snapshot(release: int, measures: Sequence[MeasureRows], previous: Snapshot | None) -> Snapshot:
    """The atoms of the release being built, versioned against the previous release's."""
    atoms: dict[AtomKey, Values] = defaultdict(dict)
    windows: dict[AtomKey, Values] = defaultdict(dict)
    shares: dict[str, dict[AtomKey, Values]] = defaultdict(lambda: defaultdict(dict))
    years: set[int] = set()
    providers: set[str] = set()
    reporters: dict[str, set[str]] = defaultdict(set)
    for m in measures:
        for r in m.fine:
            provider, year = r["provider_id"], int(r["discharge_year"])
            years.add(year)
            providers.add(provider)
            keys = [("P", provider, year), *(("S", d, r[d], year) for d in MARGINS)]
            for key in keys:
                _add(atoms[key], m.tag, COUNTS, r)
                windows[key][m.tag] = windows[key].get(m.tag, 0) + int(r["windows_closed"])
            for key in keys[1:]:
                _add(shares[provider][key], m.tag, COUNTS, r)
        for r in m.reported:
            key = ("R", m.tag, r["provider_id"], int(r["discharge_year"]))
            years.add(key[3])
            reporters[m.tag].add(key[2])
            _add(atoms[key], m.tag, CLOSED, r)
            windows[key][m.tag] = windows[key].get(m.tag, 0) + int(r["windows_closed"])
    # the atoms a reader knows exist, zero or not: every provider and breakdown value in every year, every
    # year of each provider that reports figures of its own
    tags = [m.tag for m in measures]
    for year in years:
        for provider in providers:
            _zero(atoms[("P", provider, year)], windows[("P", provider, year)], tags, COUNTS)
        for dim in MARGINS:
            for value in _values(dim, measures):
                _zero(atoms[("S", dim, value, year)], windows[("S", dim, value, year)], tags, COUNTS)
        for tag, reporting in reporters.items():
            for provider in reporting:
                _zero(atoms[("R", tag, provider, year)], windows[("R", tag, provider, year)], [tag], CLOSED)
    versions = {
        key: (
            previous.versions[key]
            if previous is not None
            and key in previous.versions
            and previous.atoms.get(key) == values
            and previous.windows.get(key) == windows[key]
            else release
        )
        for key, values in atoms.items()
    }
    return Snapshot(
        release,
        tuple((m.measure_id, m.tag) for m in measures),
        dict(atoms),
        dict(windows),
        versions,
        {p: dict(s) for p, s in shares.items()},
    )


def _add(target: Values, tag: str, counts: Iterable[str], row: Mapping[str, Any]) -> None:
    for count in counts:
        name = count_name(tag, count)
        target[name] = target.get(name, 0) + int(row.get(count) or 0)


def _zero(target: Values, windows: Values, tags: Iterable[str], counts: Iterable[str]) -> None:
    for tag in tags:
        windows.setdefault(tag, 0)
        for count in counts:
            target.setdefault(count_name(tag, count), 0)


def _values(dim: str, measures: Sequence[MeasureRows]) -> set[str]:
    vocabulary = {"sex": SEXES, "age_band": AGE_BANDS, "target_group": TARGET_GROUPS}[dim]
    return set(vocabulary) | {r[dim] for m in measures for r in m.fine}


@dataclass
class Frame:
    """The cells one release publishes, over versioned atoms: what each cell sums, and what every reader
    knows ties them (balances, identities; `relations` for choosing complementary cells)."""

    cells: dict[CellKey, Cell] = field(default_factory=dict)
    balances: list[tuple[tuple[AtomKey, ...], tuple[AtomKey, ...]]] = field(default_factory=list)
    identities: list[tuple[AtomKey, tuple[tuple[str, ...], ...]]] = field(default_factory=list)
    relations: list[Relation[CellKey]] = field(default_factory=list)  # a total is the sum of its parts


def is_final(snap: Snapshot, tag: str, atoms: Iterable[AtomKey]) -> bool:
    """Every episode's outcome window has closed: the cell publishes its outcomes. Until then it is
    preliminary and publishes only how many episodes it holds (outcomes so far are biased: failures come
    early, successes at the window's end)."""
    keys = list(atoms)
    members = sum(v for k in keys for c, v in snap.atoms[k].items() if c.startswith(tag + ":"))
    return sum(snap.windows[k].get(tag, 0) for k in keys) >= members


def frame(snap: Snapshot) -> Frame:
    """Every cell of a release's tables, each measure and source apart, over the snapshot's atoms."""
    out = Frame()
    release = snap.release

    def atom(key: AtomKey) -> AtomKey:
        return (snap.versions[key], *key)

    p_atoms = sorted((k for k in snap.atoms if k[0] == "P"), key=repr)
    years = sorted({k[-1] for k in snap.atoms})
    for measure_id, tag in snap.measures:

        def cell(
            *key: Any,
            atoms: Sequence[AtomKey],
            counts: tuple[str, ...] = COUNTS,
            tag: str = tag,
            measure_id: str = measure_id,
        ) -> CellKey:
            names = tuple(count_name(tag, c) for c in counts)
            sums = tuple((n,) for n in names) if is_final(snap, tag, atoms) else (names,)
            full = (release, measure_id, *key)
            out.cells[full] = Cell(tuple(atom(a) for a in atoms), sums)
            return full

        for k in p_atoms:
            cell("events", "provider_year", k[1], k[2], atoms=[k])
        for y in years:
            of_year = [k for k in p_atoms if k[2] == y]
            national = cell("events", "national_year", y, atoms=of_year)
            out.relations.append(
                Relation(
                    national,
                    tuple((release, measure_id, "events", "provider_year", k[1], y) for k in of_year),
                )
            )
            for dim in MARGINS:
                margin_atoms = sorted(
                    (k for k in snap.atoms if k[0] == "S" and k[1] == dim and k[3] == y), key=repr
                )
                parts = tuple(cell("events", f"{dim}_year", k[2], y, atoms=[k]) for k in margin_atoms)
                out.relations.append(Relation(national, parts))
                if tag == snap.measures[0][1]:  # the same episodes for every measure: one balance per year
                    out.balances.append(
                        (tuple(atom(k) for k in of_year), tuple(atom(k) for k in margin_atoms))
                    )
        reported = sorted((k for k in snap.atoms if k[0] == "R" and k[1] == tag), key=repr)
        for y in sorted({k[3] for k in reported}):
            of_year = [k for k in reported if k[3] == y]
            national = cell("self_reported", "national_year", y, atoms=of_year, counts=CLOSED)
            parts = tuple(
                cell("self_reported", "provider_year", k[2], y, atoms=[k], counts=CLOSED) for k in of_year
            )
            out.relations.append(Relation(national, parts))
    for key, values in snap.atoms.items():
        if key[0] == "R":
            continue
        by_members: dict[int, list[str]] = defaultdict(list)
        for _, tag in snap.measures:
            by_members[sum(values.get(count_name(tag, c), 0) for c in COUNTS)].append(tag)
        for tags in by_members.values():
            if len(tags) > 1:  # only what holds in fact: an attacker assuming more would be wrong
                out.identities.append(
                    (atom(key), tuple(tuple(count_name(t, c) for c in COUNTS) for t in tags))
                )
    return out


def numbers_of(snap: Snapshot, cells: Mapping[CellKey, Cell]) -> dict[CellKey, tuple[int, ...]]:
    """Each cell's exact numbers, one per entry of its sums."""
    by_atom = {(snap.versions[k], *k): v for k, v in snap.atoms.items()}
    return {
        key: tuple(sum(int(by_atom[a].get(count, 0)) for a in c.atoms for count in group) for group in c.sums)
        for key, c in cells.items()
    }


def size_of(numbers: Sequence[int]) -> int:
    """How many episodes a cell holds: what disclosure control protects. Once final a cell's episodes are
    all closed (none pending), so this is its closed count; while preliminary it is the one number the
    cell publishes."""
    return sum(numbers)


def size_counts(snap: Snapshot, measure_id: str, cell: Cell) -> tuple[str, ...]:
    """The counts whose sum is the cell's size, in the first measure that counts the same episodes in each
    of the cell's atoms: every measure's cell over the same atoms then has one requirement, not eight."""
    tags = dict(snap.measures)
    own = tags[measure_id]
    names = [n for group in cell.sums for n in group]
    if not names or not names[0].startswith(own + ":") or not all(a[1] in ("P", "S") for a in cell.atoms):
        return tuple(names)
    atoms = [snap.atoms[tuple(a[1:])] for a in cell.atoms]
    for _, tag in snap.measures:
        if all(_members(a, tag) == _members(a, own) for a in atoms):
            return tuple(count_name(tag, c) for c in COUNTS)
    return tuple(names)


def _requirement(snap: Snapshot, key: CellKey, cell: Cell, margin: int) -> Requirement:
    """A small cell must stay `margin` wide to every attacker but a provider whose own episodes are all of it
    (its own figures are no secret to it, and nobody else's are in the cell)."""
    counts = size_counts(snap, key[1], cell)
    wanted = set(counts)
    atoms = [tuple(a[1:]) for a in cell.atoms]
    size = sum(v for a in atoms for c, v in snap.atoms[a].items() if c in wanted)
    exempt = set()
    for provider in {a[1] if a[0] == "P" else a[2] for a in atoms if a[0] in ("P", "R")} | set(snap.shares):
        own = 0
        for a in atoms:
            if (a[0] == "P" and a[1] == provider) or (a[0] == "R" and a[2] == provider):
                own += sum(v for c, v in snap.atoms[a].items() if c in wanted)
            elif a[0] == "S":
                own += sum(v for c, v in snap.shares.get(provider, {}).get(a, {}).items() if c in wanted)
        if own == size:
            exempt.add(f"provider:{provider}")
    return Requirement(key, counts, margin, frozenset(exempt))


def _members(values: Values, tag: str) -> int:
    return sum(values.get(count_name(tag, c), 0) for c in COUNTS)


@dataclass(frozen=True)
class PublishedCell:
    """A cell of an earlier release as its open data shows it: its numbers, or None when suppressed."""

    key: CellKey
    numbers: tuple[int, ...] | None


@dataclass(frozen=True)
class Decision:
    hidden: frozenset[CellKey]  # cells of this release to suppress: (measure id, source, table, *dims)
    final: frozenset[CellKey]  # cells whose outcomes are published (the others: how many episodes only)
    snapshot: Snapshot
    requirements: int
    attackers: int
    widths: tuple[float, ...]  # every audited interval's width (sensitive cell × attacker)
    rounds: int


def decide(
    measures: Sequence[MeasureRows],
    *,
    release: int,
    min_cell: int,
    margin: int,
    earlier: Sequence[tuple[Snapshot, Sequence[PublishedCell]]] = (),
) -> Decision:
    """Which cells of the release being built to suppress so that no sensitive cell, of this release or of
    an earlier one, narrows below `margin` for any attacker (the public, or any one provider knowing its own
    figures) holding this release and every earlier one (`earlier`: each one's snapshot and open data)."""
    previous = earlier[-1][0] if earlier else None
    snap = snapshot(release, measures, previous)
    current = frame(snap)
    exact = numbers_of(snap, current.cells)
    listed = {k for k, v in exact.items() if sum(v) > 0}
    shown = {k: v for k, v in exact.items() if k in listed}
    fixed: dict[CellKey, tuple[int, ...]] = {k: v for k, v in exact.items() if k not in listed}  # zeros
    nonempty = set(listed)
    cells = dict(current.cells)
    balances = list(current.balances)
    identities = list(current.identities)
    requirements = [
        _requirement(snap, k, cells[k], margin) for k, v in shown.items() if size_of(v) < min_cell
    ]
    for old, open_data in earlier:
        old_frame = frame(old)
        cells.update(old_frame.cells)
        balances += old_frame.balances
        identities += old_frame.identities
        published = {item.key: item.numbers for item in open_data if item.key in old_frame.cells}
        for key, numbers in numbers_of(old, old_frame.cells).items():
            if key not in published:
                fixed[key] = numbers  # not listed: zero
            elif published[key] is None:
                nonempty.add(key)
                if size_of(numbers) < min_cell:
                    # a small cell an earlier release hid must stay hidden with this one beside it
                    requirements.append(_requirement(old, key, old_frame.cells[key], margin))
            else:
                fixed[key] = published[key]  # type: ignore[assignment]
    # a cell an earlier release showed, over the same atoms at the same versions, is public already
    shown_before = {cells[k] for k, v in fixed.items() if k[0] != release and sum(v) > 0}
    atoms: dict[AtomKey, tuple[str, ...]] = {}
    for s in (*(o for o, _ in earlier), snap):
        for key, values in s.atoms.items():
            atoms[(s.versions[key], *key)] = tuple(values)
    hidden = _starting_point(snap, release, shown, current, min_cell, earlier)
    knowledge = _providers_knowledge([*(o for o, _ in earlier), snap])
    hidden_before = {k for k in nonempty if k[0] != release}
    # No table spans discharge years, so each year is a problem of its own (across every release).
    decided: set[CellKey] = set()
    widths: list[float] = []
    rounds = 0
    counted_requirements = 0
    attacker_names: set[str] = set()
    for year in sorted({k[-1] for k in cells}):

        def of_year(key: tuple[Any, ...], year: int = year) -> bool:
            return bool(key[-1] == year)

        tables = LinearTables(
            {a: c for a, c in atoms.items() if of_year(a)},
            {k: c for k, c in cells.items() if of_year(k)},
            [b for b in balances if of_year(b[0][0])],
            [i for i in identities if of_year(i[0])],
        )
        wanted = _distinct([r for r in requirements if of_year(r.cell)], tables)
        counted_requirements += len(wanted)
        exact = {k: v for k, v in shown.items() if of_year(k)}
        chosen = {k for k in hidden if of_year(k)}
        while True:  # until every provider merged as all-shown is still all-shown
            owners = {_owner(k) for k in (*chosen, *hidden_before) if of_year(k)} - {None}
            attackers, names = _attackers(knowledge, year, owners)
            protection = protect(
                tables,
                exact,
                hidden=chosen,
                requirements=[_exempting(r, names) for r in wanted],
                relations=[r for r in current.relations if of_year(r.total)],
                attackers=attackers,
                fixed={k: v for k, v in fixed.items() if of_year(k)},
                nonempty=[k for k in nonempty if of_year(k)],
                cost=lambda k: (_is_total(k), size_of(shown[k]), repr(k)),
                together=lambda k: _together(k, snap),
                anchor=lambda k: (release, *k[1:]),
                useful=lambda k: cells[k] not in shown_before,
            )
            rounds += protection.rounds
            chosen = set(protection.hidden)
            now = {_owner(k) for k in chosen} - {None}
            if not (now - owners) & names["merged"]:
                break
        decided |= chosen
        widths += [f.interval.width for f in protection.findings]
        attacker_names |= {a.name for a in attackers}
    return Decision(
        frozenset(k[1:] for k in decided),
        frozenset(k[1:] for k, c in current.cells.items() if len(c.sums) > 1),
        snap,
        counted_requirements,
        len(attacker_names),
        tuple(widths),
        rounds,
    )


MERGED = "providers:all-shown"


def _owner(key: CellKey) -> str | None:
    """The provider a provider cell belongs to."""
    return str(key[4]) if key[3] == "provider_year" else None


def _attackers(
    knowledge: Sequence[Knowledge], year: int, hiding: set[str | None]
) -> tuple[list[Knowledge], dict[str, set[str]]]:
    """The attackers of one discharge year: the public; each provider with a hidden cell that year, knowing
    its own figures; and the providers whose cells are all shown that year merged into one (their own cells
    are public already; their shares of the breakdowns are taken at the largest, so the merged attacker is at
    least as strong as each of them)."""
    merged_exact: dict[AtomKey, Values] = {}
    merged_least: dict[AtomKey, Values] = {}
    members: set[str] = set()
    out = [Knowledge("public")]
    for k in knowledge:
        provider = k.name.removeprefix("provider:")
        exact = {a: v for a, v in k.exact.items() if a[-1] == year}
        least = {a: v for a, v in k.at_least.items() if a[-1] == year}
        if not exact and not least:
            continue
        if provider in hiding:
            out.append(Knowledge(k.name, exact=exact, at_least=least))
            continue
        members.add(provider)
        merged_exact.update(exact)
        for a, values in least.items():
            known = merged_least.setdefault(a, {})
            for count, value in values.items():
                known[count] = max(known.get(count, 0), value)
    if members:
        out.append(Knowledge(MERGED, exact=merged_exact, at_least=merged_least))
    return out, {"merged": members}


def _exempting(requirement: Requirement, names: Mapping[str, set[str]]) -> Requirement:
    """The merged attacker is exempt where one of its providers is: the cell holds nobody else's episodes."""
    if any(f"provider:{p}" in requirement.exempt for p in names.get("merged", set())):
        return Requirement(
            requirement.cell, requirement.counts, requirement.margin, requirement.exempt | {MERGED}
        )
    return requirement


def _distinct(requirements: Sequence[Requirement], tables: LinearTables) -> list[Requirement]:
    """One requirement per distinct sum: a small cell unchanged since an earlier release is one unknown."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for r in requirements:
        key = (tuple(sorted(tables.cells[r.cell].atoms, key=repr)), r.counts)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _together(key: CellKey, snap: Snapshot) -> list[CellKey]:
    """An event-based cell is hidden in every measure at once: every measure shows how many episodes it
    holds, so a cell hidden in one measure and shown in another is not hidden."""
    if key[2] != "events":
        return [key]
    return [(key[0], measure_id, *key[2:]) for measure_id, _ in snap.measures]


def _is_total(key: CellKey) -> bool:
    return bool(key[3] == "national_year")


def _providers_knowledge(snaps: Sequence[Snapshot]) -> list[Knowledge]:
    """One attacker per provider: its own atoms exactly, in every release, and at least its own share of
    every breakdown atom."""
    exact: dict[str, dict[AtomKey, Values]] = defaultdict(dict)
    at_least: dict[str, dict[AtomKey, Values]] = defaultdict(dict)
    for s in snaps:
        for key, values in s.atoms.items():
            owner = key[1] if key[0] == "P" else key[2] if key[0] == "R" else None
            if owner is not None:
                exact[owner][(s.versions[key], *key)] = values
        for provider, shares in s.shares.items():
            for key, values in shares.items():
                versioned = (s.versions[key], *key)
                known = at_least[provider].setdefault(versioned, {})
                for count, value in values.items():
                    known[count] = max(known.get(count, 0), value)
    return [Knowledge(f"provider:{p}", exact=exact[p], at_least=at_least.get(p, {})) for p in sorted(exact)]


def _starting_point(
    snap: Snapshot,
    release: int,
    shown: Mapping[CellKey, tuple[int, ...]],
    current: Frame,
    min_cell: int,
    earlier: Sequence[tuple[Snapshot, Sequence[PublishedCell]]],
) -> set[CellKey]:
    """Where the audit starts: the small cells; the cells the last release hid that have not changed since
    (an unchanged cell keeps its answer); and, per measure and source, complementary cells until no hidden
    cell follows exactly from the others (`suppress_linked`, cheap and exact, before the costlier audit)."""
    sizes = {k: size_of(v) for k, v in shown.items()}
    hidden = {k for k, n in sizes.items() if n < min_cell}
    groups: dict[tuple[Any, ...], dict[CellKey, int]] = defaultdict(dict)
    for key, n in sizes.items():
        groups[(key[1], key[2])][key] = n
    for (measure_id, source), closed in groups.items():
        relations = [
            Relation(r.total, tuple(p for p in r.parts if p in shown))
            for r in current.relations
            if r.total[1:3] == (measure_id, source) and r.total in shown
        ]
        hidden |= suppress_linked(closed, relations, min_cell=min_cell).cells
    if earlier:  # added after the exact closure, which would otherwise protect them too (they need not be)
        old, open_data = earlier[-1]
        old_cells = frame(old).cells
        for item in open_data:
            key = (release, *item.key[1:])
            if item.numbers is None and key in shown and item.key in old_cells:
                if old_cells[item.key] == current.cells[key]:  # the same atoms at the same versions
                    hidden.add(key)
    return {c for k in hidden for c in _together(k, snap) if c in shown}


def summary(decision: Decision) -> dict[str, Any]:
    """The audit in figures, for the release's manifest and the operators' logs."""
    widths = sorted(decision.widths)
    return {
        "sensitive_cells": decision.requirements,
        "attackers": decision.attackers,
        "intervals_audited": len(widths),
        "narrowest_interval": widths[0] if widths else None,
        "median_interval": median(widths) if widths else None,
        "rounds": decision.rounds,
    }
