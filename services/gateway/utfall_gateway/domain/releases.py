"""Releases of the open comparisons, as pure functions: every current measure's counts in; the released tables,
the page's views of them, the change list against the previous release and what the next audit needs out.

A release publishes the same episodes many ways: provider by discharge year, provider over all years,
national by year and over all years, and national breakdowns by sex, age band and target group. Which cells
to suppress is decided once for all of them, and for every earlier release with them (`disclosure.decide`);
every view then shows exactly the cells the tables show, so a cell has one answer however it is asked.

A preliminary cell (not every outcome window closed) publishes how many episodes it holds and the share of
windows closed, not its outcomes so far: those are biased, small, and would be counts an attacker could
use without any rate being shown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from utfall_events.catalogue import is_register_fact_id
from utfall_events.releases import (
    BREAKDOWNS,
    AuditAtomV1,
    CellChangeV1,
    ProviderShareV1,
    ReleaseAuditV1,
    ReleasedCellV1,
)

from .disclosure import CLOSED, MeasureRows, PublishedCell, Snapshot, decide, summary
from .policy import PUBLIC
from .results import (
    COUNTS,
    SHOWN,
    STRATA,
    TALLIES,
    ResultsQuery,
    build_cells,
    compare,
    comparison_query,
    disclose,
    funnel_of,
    in_verified_words,
    row,
)

CellKey = tuple[Any, ...]  # (measure id, source, table, *dimension values)
SOURCES = ("events", "self_reported")
SUPPRESSION = (
    "primary: fewer than min_cell episodes; complementary: across every table of this release and of every "
    "earlier release together, until no suppressed cell can be narrowed to an interval under the protection "
    "margin by any reader of them all (the public, or one provider knowing its own figures)"
)


@dataclass(frozen=True)
class MeasureCounts:
    """What a release reads of one measure, in one snapshot. `fine`: event-based counts (and
    `windows_closed`) per provider, sex, age band, target group, legal basis and discharge year, from which
    every event-based table and the comparisons' risk strata follow; `reported_year`: self-reported counts
    per provider and discharge year, and `reported`: the submissions that fit a comparison, per discharge
    year; `errors`: data errors per provider."""

    measure_id: str
    measure_version: int
    fine: Sequence[Mapping[str, Any]]
    errors: Mapping[str, int] = field(default_factory=dict)
    reported_year: Sequence[Mapping[str, Any]] = ()
    reported: Mapping[int, Sequence[Mapping[str, Any]]] = field(default_factory=dict)

    def years(self) -> list[int]:
        return sorted({int(r["discharge_year"]) for r in self.fine})

    def grouped(self, by: tuple[str, ...], year: int | None = None) -> list[dict[str, Any]]:
        """The fine counts added up by `by` (and one discharge year, when given)."""
        rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r in self.fine:
            if year is not None and int(r["discharge_year"]) != year:
                continue
            key = tuple(r[c] for c in by)
            out = rows.setdefault(key, {**dict(zip(by, key, strict=True)), **dict.fromkeys(TALLIES, 0)})
            for k in TALLIES:
                out[k] += int(r[k])
        return [rows[k] for k in sorted(rows, key=lambda k: tuple(str(x) for x in k))]


@dataclass
class MeasureRelease:
    tables: dict[str, list[ReleasedCellV1]]
    views: dict[str, Any]
    cells: int
    suppressed: int


@dataclass
class Release:
    measures: list[MeasureRelease]
    audit: ReleaseAuditV1


@dataclass(frozen=True)
class Earlier:
    """An earlier release as the next audit reads it: its snapshot and its open data."""

    snapshot: Snapshot
    cells: Sequence[ReleasedCellV1]


def build(
    counts: Sequence[MeasureCounts],
    *,
    release: int,
    min_cell: int,
    margin: int,
    earlier: Sequence[Earlier] = (),
) -> Release:
    decision = decide(
        [MeasureRows(c.measure_id, c.measure_version, c.fine, c.reported_year) for c in counts],
        release=release,
        min_cell=min_cell,
        margin=margin,
        earlier=[(e.snapshot, published_cells(e.snapshot, e.cells)) for e in earlier],
    )
    measures = [_measure(c, decision.hidden) for c in counts]
    return Release(measures, audit_record(release, decision.snapshot, min_cell, margin, summary(decision)))


def _measure(counts: MeasureCounts, hidden: frozenset[CellKey]) -> MeasureRelease:
    years = counts.years()
    # Every row is computed as the live API computes it, with nothing suppressed; the release's decision
    # then hides the same cells in every view and every table.
    comparisons = {
        year: compare(
            counts.grouped(("provider_id", *STRATA), year),
            counts.reported.get(year, []),
            counts.errors,
            comparison_query(counts.measure_id, year, {}),
            principal=PUBLIC,
            min_cell=0,
        )
        for year in years
    }
    breakdowns = {}
    for dim in BREAKDOWNS:
        q = ResultsQuery(counts.measure_id, "year", (dim,))
        by_period, period_dims = build_cells(counts.grouped((dim, "discharge_year")), q, PUBLIC)
        table = disclose(by_period, period_dims, principal=PUBLIC, filters={}, min_cell=0)
        breakdowns[dim] = {"rows": table.rows, "totals": table.totals}
    placed = _placements(counts.measure_id, comparisons, breakdowns)
    for key, r in placed:
        if key in hidden:
            _suppress(r)
        elif r["result"] == "preliminary":
            _outcomes_withheld(r)
    for comparison in comparisons.values():
        comparison["funnel"] = funnel_of(comparison["providers"], comparison["total"])
    tables = _tables(counts, placed)
    views = {
        "comparisons": {str(p): c for p, c in comparisons.items()},
        "national": {
            "totals": [
                {**comparisons[y]["total"], "discharge_year": y} for y in years if comparisons[y]["total"]
            ]
        },
        "per_provider": {
            "rows": [{**p, "discharge_year": y} for y in years for p in comparisons[y]["providers"]]
        },
        "breakdowns": breakdowns,
    }
    cells = sum(len(t) for t in tables.values())
    return MeasureRelease(tables, views, cells, sum(c.suppressed for t in tables.values() for c in t))


def _placements(
    measure_id: str,
    comparisons: Mapping[int, dict[str, Any]],
    breakdowns: Mapping[str, dict[str, Any]],
) -> list[tuple[CellKey, dict[str, Any]]]:
    """Each shown row with the release cell it is."""
    out: list[tuple[CellKey, dict[str, Any]]] = []
    for year, comparison in comparisons.items():
        for p in comparison["providers"]:
            out.append(((measure_id, p["source"], "provider_year", p["provider_id"], year), p))
        for source, total in (
            ("events", comparison["total"]),
            ("self_reported", comparison["self_reported_total"]),
        ):
            if total is not None:
                out.append(((measure_id, source, "national_year", year), total))
    for dim, table in breakdowns.items():
        for r in table["rows"]:
            out.append(((measure_id, "events", f"{dim}_year", r[dim], r["discharge_year"]), r))
        for t in table["totals"]:
            out.append(((measure_id, "events", "national_year", t["discharge_year"]), t))
    return out


def _suppress(r: dict[str, Any]) -> None:
    dims = {
        k: v for k, v in r.items() if k not in (*TALLIES, *SHOWN, "status", "exact", "source", "episodes")
    }
    r.update(row(dims, None, status="suppressed", exact=False, source=r["source"]))
    if "risk_adjusted" in r:
        r["risk_adjusted"] = None
    r.pop("funnel", None)
    r.pop("source_difference", None)


def _outcomes_withheld(r: dict[str, Any]) -> None:
    """A preliminary row keeps its size and the share of windows closed, not its outcomes so far."""
    r.update(dict.fromkeys((*COUNTS, "closed"), None))
    r.pop("source_difference", None)


def _tables(
    counts: MeasureCounts, placed: list[tuple[CellKey, dict[str, Any]]]
) -> dict[str, list[ReleasedCellV1]]:
    """The open-data tables: each cell once (a national figure shown in several views is one cell)."""
    cells: dict[CellKey, ReleasedCellV1] = {}
    for key, r in placed:
        if key in cells:
            continue
        _, source, table, *dims = key
        fields: dict[str, Any] = {}
        if table == "provider_year":
            fields["provider_id"] = dims[0]
        if table.endswith("_year") and table not in ("provider_year", "national_year"):
            fields["breakdown"] = table[: -len("_year")]
            fields["breakdown_value"] = None if dims[0] is None else str(dims[0])
        if table in ("provider_year", "national_year") or "breakdown" in fields:
            fields["discharge_year"] = dims[-1]
        shown = r["status"] != "suppressed"
        adjusted = r.get("risk_adjusted") or {}
        verified = is_register_fact_id(counts.measure_id)
        if verified:
            r = in_verified_words({**r, "source": source})
        cells[key] = ReleasedCellV1(
            measure_id=counts.measure_id,
            measure_version=counts.measure_version,
            table=table,
            source="verified" if verified else source,
            suppressed=not shown,
            **fields,
            **(
                {
                    "result": r["result"],
                    "episodes": r["episodes"],
                    **{k: r[k] for k in (*_COUNT_FIELDS[verified], "closed")},
                    **{
                        k: r[k]
                        for k in ("windows_closed_share", "observed_rate", "itt_rate", "ci_low", "ci_high")
                    },
                    **{k: adjusted.get(k) for k in ("oe_ratio", "oe_low", "oe_high")},
                    "funnel_label": (r.get("funnel") or {}).get("label"),
                }
                if shown
                else {}
            ),
        )
    tables: dict[str, list[ReleasedCellV1]] = {}
    for key in sorted(cells, key=lambda k: tuple(str(x) for x in k)):
        tables.setdefault(key[2], []).append(cells[key])
    return tables


# A released cell's counts in the order of the audit's (COUNTS: achieved, not achieved, missing, pending).
_COUNT_FIELDS = {
    False: ("achieved", "not_achieved", "missing", "pending"),
    True: ("achieved", "not_achieved", "excluded", "unverified"),
}


def cell_key(cell: ReleasedCellV1) -> CellKey:
    """A released cell's place in the audit's tables (without the release number): a verified measure's
    cells are its event-based cells, in its own words."""
    if cell.table == "provider_year":
        dims: tuple[Any, ...] = (cell.provider_id, cell.discharge_year)
    elif cell.table == "national_year":
        dims = (cell.discharge_year,)
    else:
        dims = (cell.breakdown_value, cell.discharge_year)
    return (cell.measure_id, "events" if cell.source == "verified" else cell.source, cell.table, *dims)


def published_cells(snap: Snapshot, cells: Sequence[ReleasedCellV1]) -> list[PublishedCell]:
    """An earlier release's open data as the audit reads it: each cell's published numbers (its outcome
    counts once final, its episodes while preliminary), or None when suppressed."""
    out = []
    for c in cells:
        key = (snap.release, *cell_key(c))
        if c.suppressed:
            out.append(PublishedCell(key, None))
        elif c.result == "final":
            counts = CLOSED if c.source == "self_reported" else _COUNT_FIELDS[c.source == "verified"]
            out.append(PublishedCell(key, tuple(int(getattr(c, k) or 0) for k in counts)))
        else:
            out.append(PublishedCell(key, (int(c.episodes or 0),)))
    return out


def audit_record(
    release: int, snap: Snapshot, min_cell: int, margin: int, figures: Mapping[str, Any]
) -> ReleaseAuditV1:
    """What the next release's audit needs of this one, kept beside it (never served): its atoms' exact counts
    and versions, and each provider's share of the breakdown atoms."""
    return ReleaseAuditV1(
        release=release,
        min_cell=min_cell,
        margin=margin,
        measures=[list(m) for m in snap.measures],
        atoms=[
            AuditAtomV1(
                key=list(key),
                version=snap.versions[key],
                counts=dict(values),
                windows=dict(snap.windows[key]),
            )
            for key, values in sorted(snap.atoms.items(), key=lambda kv: repr(kv[0]))
        ],
        shares=[
            ProviderShareV1(provider_id=provider, key=list(key), counts=dict(values))
            for provider, shares in sorted(snap.shares.items())
            for key, values in sorted(shares.items(), key=lambda kv: repr(kv[0]))
        ],
        figures=dict(figures),
    )


def snapshot_of(record: ReleaseAuditV1) -> Snapshot:
    shares: dict[str, dict[tuple[Any, ...], dict[str, int]]] = defaultdict(dict)
    for share in record.shares:
        shares[share.provider_id][tuple(share.key)] = dict(share.counts)
    return Snapshot(
        record.release,
        tuple((m[0], m[1]) for m in record.measures),
        {tuple(a.key): dict(a.counts) for a in record.atoms},
        {tuple(a.key): dict(a.windows) for a in record.atoms},
        {tuple(a.key): a.version for a in record.atoms},
        dict(shares),
    )


KEY_FIELDS = ("table", "source", "provider_id", "breakdown", "breakdown_value", "discharge_year")
VALUE_FIELDS = tuple(f for f in ReleasedCellV1.model_fields if f not in (*KEY_FIELDS, "measure_id"))


def changes(
    previous: Mapping[str, Sequence[ReleasedCellV1]] | None, current: Mapping[str, Sequence[ReleasedCellV1]]
) -> list[CellChangeV1]:
    """Cells added, removed or changed (any figure, or whether it is suppressed) since the previous release."""
    if previous is None:
        return []

    def index(tables: Mapping[str, Sequence[ReleasedCellV1]]) -> dict[tuple[Any, ...], ReleasedCellV1]:
        return {tuple(getattr(c, f) for f in KEY_FIELDS): c for cells in tables.values() for c in cells}

    before, after = index(previous), index(current)
    out = []
    for key in sorted(before.keys() | after.keys(), key=lambda k: tuple(str(x) for x in k)):
        named = {f: v for f, v in zip(KEY_FIELDS[1:], key[1:], strict=True) if v is not None}
        if key not in before:
            out.append(CellChangeV1(table=key[0], key=named, change="added"))
        elif key not in after:
            out.append(CellChangeV1(table=key[0], key=named, change="removed"))
        else:
            differ = [f for f in VALUE_FIELDS if getattr(before[key], f) != getattr(after[key], f)]
            if differ:
                out.append(CellChangeV1(table=key[0], key=named, change="changed", fields=differ))
    return out
