"""Who sees which figures, and from where (pure).

Outcome figures reach a reader two ways:
- **exactly and live**, for the cells within the reader's scope: an operator's everything, a provider's own
  cells, a municipality's own placements;
- **from a release**, for everything else: the public sees nothing but releases, and a key holder sees others'
  cells as the public does. A release is suppressed once, jointly over all of its tables and every earlier
  release (`disclosure.py`), so a cell has one public answer however it is asked.

A question no release answers (a filter or grouping the releases do not publish) is refused to the public
(`NotPublished`) and answered to a key holder with its own cells only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from utfall_events.releases import BREAKDOWNS, ReleasedCellV1, ReleaseMeasureV1, ReleaseV1

from .policy import Principal, sees_exactly
from .results import RATES, ResultsQuery

PUBLISHED_DIMENSIONS = ("provider_id", *BREAKDOWNS)
COMPARISON_FILTERS: tuple[str, ...] = ()  # a release compares providers year by year, unfiltered


class NotPublished(Exception):
    """The question needs figures that no release publishes."""


def release_info(release: ReleaseV1) -> dict[str, Any]:
    return {
        "number": release.release,
        "data_as_of": release.data_as_of.isoformat(),
        "min_cell": release.min_cell,
    }


def published_table(q: ResultsQuery) -> str:
    """The release table that answers a results query: by discharge year, over one dimension at most (the
    dimension grouped by, or filtered on), among provider, sex, age band and target group."""
    if q.period != "year" or q.quarter is not None:
        raise NotPublished("releases publish results by discharge year, not by quarter")
    dims = set(q.group_by) | {name for name, _ in q.filters}
    if len(q.group_by) > 1 or len(dims) > 1:
        raise NotPublished("releases publish one breakdown at a time")
    if not dims:
        return "national_year"
    (dim,) = dims
    if dim not in PUBLISHED_DIMENSIONS:
        raise NotPublished(f"releases publish no breakdown by {dim}")
    return "provider_year" if dim == "provider_id" else f"{dim}_year"


def check_published(q: ResultsQuery) -> None:
    """Raises `NotPublished` when no release table answers the query."""
    published_table(q)


def cell_row(cell: ReleasedCellV1, dims: Mapping[str, Any]) -> dict[str, Any]:
    """A released cell as a results row (the live rows' shape): no number when suppressed. A verified cell in
    the live rows' vocabulary too (source events, excluded as missing, unverified as pending): every answer
    is put in the verified measure's own words where it leaves (`in_verified_words`)."""
    shown = not cell.suppressed
    episodes = cell.episodes if shown else None
    share = cell.windows_closed_share if shown else None
    verified = cell.source == "verified"
    counts = {
        "achieved": cell.achieved,
        "not_achieved": cell.not_achieved,
        "missing": cell.excluded if verified else cell.missing,
        "pending": cell.unverified if verified else cell.pending,
    }
    return {
        **dims,
        "discharge_year": cell.discharge_year,
        "source": "events" if verified else cell.source,
        **counts,
        "closed": cell.closed,
        "episodes": episodes,
        "windows_closed": round(share * episodes) if share is not None and episodes is not None else None,
        "windows_closed_share": share,
        "result": cell.result,
        **{k: getattr(cell, k) for k in RATES},
        "status": "ok" if shown else "suppressed",
        "exact": False,
    }


def release_results(
    measure: ReleaseMeasureV1, q: ResultsQuery, source: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows and totals of a results query, from a release's tables (`NotPublished` if they hold no answer)."""
    table = published_table(q)
    filters = dict(q.filters)
    dim = next(iter(set(q.group_by) | set(filters)), None)

    def wanted(c: ReleasedCellV1) -> bool:
        internal = "events" if c.source == "verified" else c.source
        return (source == "all" or internal == source) and (q.year is None or c.discharge_year == q.year)

    def value(c: ReleasedCellV1) -> Any:
        return c.provider_id if dim == "provider_id" else c.breakdown_value

    rows = []
    for c in measure.tables.get(table, []):
        if not wanted(c) or (dim in filters and value(c) != filters[dim]):
            continue
        rows.append(cell_row(c, {dim: value(c)} if dim in q.group_by else {}))
    if q.group_by:
        totals = [cell_row(c, {}) for c in measure.tables.get("national_year", []) if wanted(c)]
    else:
        totals = [{k: v for k, v in r.items()} for r in rows]
    return rows, totals


def latest_final_year(measure: ReleaseMeasureV1) -> int | None:
    """The latest discharge year whose national result is final (the latest year when none is yet): what a
    comparison shows when no year is asked for. Releases compare providers year by year only."""
    totals = measure.views["national"]["totals"]
    final = [t["discharge_year"] for t in totals if t.get("status") == "ok" and t.get("result") == "final"]
    years = [t["discharge_year"] for t in totals]
    return max(final) if final else (max(years) if years else None)


def published_comparison(filters: Mapping[str, str]) -> None:
    """Releases compare providers over one discharge year at a time, without further filters."""
    if any(name not in COMPARISON_FILTERS for name in filters):
        raise NotPublished("releases compare providers year by year, without further filters")


def release_comparison(
    measure: ReleaseMeasureV1, year: int | None, filters: Mapping[str, str]
) -> dict[str, Any]:
    """A release's comparison of providers over one discharge year (no year: the latest final one)."""
    published_comparison(filters)
    if year is None:
        year = latest_final_year(measure)
    view = measure.views["comparisons"].get(str(year)) if year is not None else None
    if view is None:
        return {
            "measure_id": measure.measure_id,
            "year": year,
            "filters": {},
            "providers": [],
            "total": None,
            "self_reported_total": None,
            "funnel": None,
        }
    return dict(view)


def overlay(
    released: Mapping[str, Any] | None, live: Mapping[str, Any], who: Principal, filters: Mapping[str, str]
) -> dict[str, Any]:
    """A key holder's comparison: the release's, with the reader's own rows exact and live (and only its own
    rows when no release answers the question). A question wholly within the reader's scope (a municipality
    filtered to itself) is answered live."""
    if sees_exactly(who, {}, dict(filters)):
        return dict(live)
    own = [
        p for p in live["providers"] if sees_exactly(who, {"provider_id": p["provider_id"]}, dict(filters))
    ]
    mine = {(p["provider_id"], p["source"]) for p in own}
    if released is None:
        base: dict[str, Any] = {
            **live,
            "providers": [],
            "total": None,
            "self_reported_total": None,
            "funnel": None,
        }
    else:
        base = dict(released)
    others = [p for p in base["providers"] if (p["provider_id"], p["source"]) not in mine]
    providers = sorted([*others, *own], key=lambda p: (p["provider_id"], p["source"]))
    return {**base, "providers": providers}


def overlay_rows(
    released: Sequence[Mapping[str, Any]] | None, live: Iterable[Mapping[str, Any]], keys: Sequence[str]
) -> list[dict[str, Any]]:
    """Results rows: the reader's own (exact, live) in place of the release's same rows; the release's others."""
    own = [dict(r) for r in live if r.get("exact")]

    def key(r: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(r.get(k) for k in (*keys, "discharge_year", "source"))

    mine = {key(r) for r in own}
    rows = [dict(r) for r in released or () if key(r) not in mine]
    return sorted([*rows, *own], key=lambda r: tuple(str(x) for x in key(r)))
