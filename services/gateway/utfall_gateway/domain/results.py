"""Outcome results and comparisons: intervals, risk adjustment and disclosure control applied for the reader,
as pure functions over the counts `readmodel/results.py` fetches (`results_service.py` puts the two together)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from utfall_events.catalogue import is_register_fact_id
from utfall_events.vocabulary import EPISODE_DIMENSIONS, RISK_STRATA
from utfall_stats.disclosure import suppress
from utfall_stats.funnel import Unit, funnel
from utfall_stats.risk import StratumCount, indirect_standardisation
from utfall_stats.wilson import wilson_interval

from .policy import Principal, sees_exactly

DIMENSIONS = EPISODE_DIMENSIONS
PERIODS: dict[str, tuple[str, ...]] = {
    "year": ("discharge_year",),
    "quarter": ("discharge_year", "discharge_quarter"),
    "all": (),  # every discharge period together (a comparison of one year or of all)
}
PERIOD_COLUMNS = ("discharge_year", "discharge_quarter")
COUNTS = ("achieved", "not_achieved", "missing", "pending")
# ...and how many of those episodes have their outcome window closed (see `Window`)
TALLIES = (*COUNTS, "windows_closed")


@dataclass(frozen=True)
class Window:
    """A measure's outcome window, and the day results are read on. An episode's window has closed when its
    discharge date plus `months` plus `grace_days` lies before `today`; a measure without a window (decided at
    discharge) has every window closed. A cohort's result is final only when every member's window has closed:
    until then early outcomes (a re-placement decides "not achieved" at once, success only at the window's
    end) would bias its rate, so it is preliminary and has no rate (right-censoring)."""

    months: int | None
    grace_days: int
    today: date


@dataclass(frozen=True)
class ResultsQuery:
    measure_id: str
    period: str = "year"
    group_by: tuple[str, ...] = ()
    filters: tuple[tuple[str, str], ...] = ()
    year: int | None = None
    quarter: int | None = None
    window: Window | None = None  # None: results are read as final

    @property
    def period_columns(self) -> tuple[str, ...]:
        return PERIODS[self.period]

    @property
    def filterable(self) -> tuple[str, ...]:
        return DIMENSIONS


@dataclass
class Cell:
    key: tuple[Any, ...]
    dims: dict[str, Any]
    counts: dict[str, int]
    source: str = "events"
    own: bool = False

    @property
    def closed(self) -> int:
        return self.counts["achieved"] + self.counts["not_achieved"] + self.counts["missing"]


def rates(counts: dict[str, int]) -> dict[str, float | None]:
    achieved, not_achieved, missing = counts["achieved"], counts["not_achieved"], counts["missing"]
    observed_n = achieved + not_achieved
    itt_n = observed_n + missing
    interval = wilson_interval(achieved, observed_n)
    return {
        "observed_rate": achieved / observed_n if observed_n else None,
        "itt_rate": achieved / itt_n if itt_n else None,
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
    }


def row(
    cell_dims: dict[str, Any],
    counts: dict[str, int] | None,
    *,
    status: str,
    exact: bool,
    source: str = "events",
) -> dict[str, Any]:
    """One published row: counts and rates, or nothing but the dimensions when suppressed. A preliminary
    cohort (not every member's window closed) shows its counts so far and the share of windows closed, and
    no rate: a rate that can still only fall or only rise is not one to compare."""
    out: dict[str, Any] = dict(cell_dims)
    out["source"] = source
    if counts is None:
        out.update(dict.fromkeys((*TALLIES, *SHOWN), None))
    else:
        out.update({k: counts[k] for k in COUNTS})
        members = sum(counts[k] for k in COUNTS)
        closed_windows = counts.get("windows_closed", members)
        final = closed_windows >= members
        out["closed"] = counts["achieved"] + counts["not_achieved"] + counts["missing"]
        out["episodes"] = members
        out["windows_closed"] = closed_windows
        out["windows_closed_share"] = closed_windows / members if members else None
        out["result"] = "final" if final else "preliminary"
        out.update(rates(counts) if final else dict.fromkeys(RATES, None))
    out["status"] = status
    out["exact"] = exact
    return out


# A verified measure (`<id>@register`) is counted in the results' vocabulary (readmodel: excluded where
# reported results count missing, unverified where they count pending); answers use its own words.
VERIFIED_WORDS = {"missing": "excluded", "pending": "unverified"}


def in_verified_words(value: Any) -> Any:
    """Every results row within `value` (a dict holding `source` and `achieved`) in a verified measure's
    words: source `verified`, `excluded` and `unverified` for missing and pending, and no intention-to-treat
    rate (an excluded episode is neither a success nor a failure)."""
    if isinstance(value, list):
        return [in_verified_words(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: in_verified_words(v) for k, v in value.items()}
    if out.get("source") == "events" and "achieved" in out:
        out = {VERIFIED_WORDS.get(k, k): v for k, v in out.items()}
        out["source"] = "verified"
        if "itt_rate" in out:
            out["itt_rate"] = None
    return out


def in_measure_words(measure_id: str, value: Any) -> Any:
    """An answer about `measure_id` in that measure's words: a verified measure's rows as `in_verified_words`
    puts them, any other measure's as they are."""
    return in_verified_words(value) if is_register_fact_id(measure_id) else value


RATES = ("observed_rate", "itt_rate", "ci_low", "ci_high")
SHOWN = ("closed", "episodes", "windows_closed_share", "result", *RATES)


@dataclass
class Table:
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: list[dict[str, Any]] = field(default_factory=list)
    source_differences: int = 0  # cells whose self-reported and event-based intervals do not overlap


def disclose(
    cells_by_period: dict[tuple[Any, ...], list[Cell]],
    period_dims: dict[tuple[Any, ...], dict[str, Any]],
    *,
    principal: Principal,
    filters: dict[str, str],
    min_cell: int,
) -> Table:
    """Apply primary and complementary suppression per period and source (each a breakdown with its own
    published total), sparing the reader's own cells, which it sees exactly and which count as known when
    checking what subtraction reveals."""
    table = Table()
    for period_key in sorted(cells_by_period, key=lambda k: tuple(str(x) for x in k)):
        period_cells = cells_by_period[period_key]
        for source in sorted({c.source for c in period_cells}):
            cells = [c for c in period_cells if c.source == source]
            known = frozenset(c.key for c in cells if c.own)
            result = suppress({c.key: c.closed for c in cells}, min_cell=min_cell, known=known)
            total_counts = {k: sum(c.counts.get(k, 0) for c in cells) for k in TALLIES}
            all_own = bool(cells) and all(c.own for c in cells)
            for cell in cells:
                if cell.own or cell.key not in result.cells:
                    table.rows.append(
                        row(cell.dims, cell.counts, status="ok", exact=cell.own, source=cell.source)
                    )
                else:
                    table.rows.append(
                        row(cell.dims, None, status="suppressed", exact=False, source=cell.source)
                    )
            if all_own or not result.total_suppressed:
                table.totals.append(
                    row(period_dims[period_key], total_counts, status="ok", exact=all_own, source=source)
                )
            else:
                table.totals.append(
                    row(period_dims[period_key], None, status="suppressed", exact=False, source=source)
                )
    table.source_differences = flag_differences(table.rows)
    return table


def flag_differences(rows: list[dict[str, Any]]) -> int:
    """Where a cell has both event-based and self-reported figures and both are shown, say whether they differ
    (non-overlapping 95% intervals). Returns how many differ."""
    by_dims: dict[tuple[tuple[str, Any], ...], dict[str, dict[str, Any]]] = {}
    for r in rows:
        dims = tuple(
            sorted((k, v) for k, v in r.items() if k in (*DIMENSIONS, "discharge_year", "discharge_quarter"))
        )
        by_dims.setdefault(dims, {})[r["source"]] = r
    differing = 0
    for pair in by_dims.values():
        events, own = pair.get("events"), pair.get("self_reported")
        if events is None or own is None:
            continue
        visible = (
            events["status"] == "ok"
            and own["status"] == "ok"
            and events["observed_rate"] is not None
            and own["observed_rate"] is not None
        )
        for r in (events, own):
            r["both_sources"] = True
        if not visible:
            continue
        differs = events["ci_high"] < own["ci_low"] or own["ci_high"] < events["ci_low"]
        difference = own["observed_rate"] - events["observed_rate"]
        for r in (events, own):
            r["source_difference"] = {"self_reported_minus_events": difference, "differs": differs}
        differing += differs
    return differing


def differing(rows: Sequence[Mapping[str, Any]]) -> int:
    """How many cells `flag_differences` found differing (each is flagged on its event-based row)."""
    return sum(
        1 for r in rows if r.get("source") == "events" and (r.get("source_difference") or {}).get("differs")
    )


SELF_REPORTED_DIMS = ("provider_id", "target_group", "care_type", "legal_basis", "sex", "age_band")
OPTIONAL_SELF_REPORTED = ("care_type", "legal_basis", "sex", "age_band")


def self_reported_fit(q: ResultsQuery) -> tuple[str, ...] | None:
    """Which aggregated submissions fit this query, as WHERE clauses; None when none can. A submission fits when
    it is broken down by exactly the optional dimensions the query groups or filters by (so totals and
    breakdowns never double count), for the same kind of period (yearly unless the query is by quarter)."""
    used = set(q.group_by) | {name for name, _ in q.filters}
    if not used <= set(SELF_REPORTED_DIMS):
        return None
    fixed = tuple(f"{name} IS {'NOT ' if name in used else ''}NULL" for name in OPTIONAL_SELF_REPORTED)
    return (*fixed, "discharge_quarter IS NOT NULL" if q.period == "quarter" else "discharge_quarter IS NULL")


def merge_cells(
    *parts: tuple[dict[tuple[Any, ...], list[Cell]], dict[tuple[Any, ...], dict[str, Any]]],
) -> tuple[dict[tuple[Any, ...], list[Cell]], dict[tuple[Any, ...], dict[str, Any]]]:
    cells: dict[tuple[Any, ...], list[Cell]] = {}
    periods: dict[tuple[Any, ...], dict[str, Any]] = {}
    for by_period, dims in parts:
        for key, items in by_period.items():
            cells.setdefault(key, []).extend(items)
        periods.update(dims)
    return cells, periods


def build_cells(
    records: Sequence[Mapping[str, Any]], q: ResultsQuery, principal: Principal, source: str = "events"
) -> tuple[dict[tuple[Any, ...], list[Cell]], dict[tuple[Any, ...], dict[str, Any]]]:
    filters = dict(q.filters)
    by_period: dict[tuple[Any, ...], list[Cell]] = {}
    period_dims: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        period_key = tuple(r[c] for c in q.period_columns)
        period_dims[period_key] = {c: r[c] for c in q.period_columns}
        dims = {**period_dims[period_key], **{c: r[c] for c in q.group_by}}
        cell = Cell((*tuple(r[c] for c in q.group_by), source), dims, {k: int(r[k]) for k in TALLIES}, source)
        cell.own = sees_exactly(principal, dims, filters)
        by_period.setdefault(period_key, []).append(cell)
    return by_period, period_dims


STRATA = RISK_STRATA


def comparison_query(measure_id: str, year: int | None, filters: Mapping[str, str]) -> ResultsQuery:
    """Providers side by side over one discharge year, or all of them."""
    return ResultsQuery(measure_id, "all", ("provider_id",), tuple(sorted(filters.items())), year)


def compare(
    strata_rows: Sequence[Mapping[str, Any]],
    reported_rows: Sequence[Mapping[str, Any]],
    errors: Mapping[str, int],
    q: ResultsQuery,
    *,
    principal: Principal,
    min_cell: int,
) -> dict[str, Any]:
    """Providers side by side: suppressed counts, observed and ITT rates with Wilson intervals, and
    risk-adjusted observed/expected by indirect standardisation on age band, sex, legal basis and target
    group. `strata_rows` are counts per provider and stratum, `reported_rows` the fitting aggregated
    submissions per provider, `errors` data errors per provider."""
    per_provider: dict[str, dict[str, int]] = {}
    strata: list[StratumCount] = []
    for r in strata_rows:
        counts = per_provider.setdefault(r["provider_id"], dict.fromkeys(TALLIES, 0))
        for k in TALLIES:
            counts[k] += int(r[k])
        strata.append(
            StratumCount(
                r["provider_id"],
                tuple(r[s] for s in STRATA),
                int(r["achieved"]),
                int(r["achieved"]) + int(r["not_achieved"]),
            )
        )
    adjusted = indirect_standardisation(strata)
    cells = [Cell((p, "events"), {"provider_id": p}, c) for p, c in sorted(per_provider.items())]
    cells += [
        Cell(
            (r["provider_id"], "self_reported"),
            {"provider_id": r["provider_id"]},
            {k: int(r[k]) for k in TALLIES},
            "self_reported",
        )
        for r in reported_rows
    ]
    for cell in cells:
        cell.own = sees_exactly(principal, cell.dims, {})
    cells.sort(key=lambda c: (c.dims["provider_id"], c.source))
    table = disclose({(): cells}, {(): {}}, principal=principal, filters={}, min_cell=min_cell)
    rows_by_key = {(r["provider_id"], r["source"]): r for r in table.rows}
    providers = []
    for cell in cells:
        out = rows_by_key[(cell.dims["provider_id"], cell.source)]
        standardised = adjusted.get(cell.dims["provider_id"]) if cell.source == "events" else None
        if out["status"] == "ok" and out["result"] == "final" and standardised is not None:
            out["risk_adjusted"] = {
                "observed": standardised.observed,
                "expected": round(standardised.expected, 3),
                "oe_ratio": standardised.oe_ratio,
                "oe_low": standardised.oe_low,
                "oe_high": standardised.oe_high,
                "adjusted_rate": standardised.adjusted_rate,
            }
        else:
            out["risk_adjusted"] = None
        out["data_errors"] = errors.get(cell.dims["provider_id"], 0) if cell.source == "events" else None
        providers.append(out)
    totals = {t["source"]: t for t in table.totals}
    return {
        "measure_id": q.measure_id,
        "year": q.year,
        "filters": dict(q.filters),
        "providers": providers,
        "total": totals.get("events"),
        "self_reported_total": totals.get("self_reported"),
        "funnel": funnel_of(providers, totals.get("events")),
        "min_cell": min_cell,
        "risk_adjustment": {"method": "indirect standardisation", "strata": list(STRATA)},
    }


def funnel_of(providers: list[dict[str, Any]], national: dict[str, Any] | None) -> dict[str, Any] | None:
    """Each shown, final, event-based provider's risk-adjusted rate (observed when it cannot be adjusted)
    against its number of closed episodes with an observed outcome, judged against the national rate with
    95 % and 99.8 % limits (overdispersion-adjusted, additive, when the data need it). Each such provider gets
    its label; the others (suppressed, preliminary, self-reported) none. None when there is no final national
    rate to judge against."""
    for p in providers:
        p["funnel"] = None
    if national is None or national["status"] != "ok" or national["observed_rate"] is None:
        return None
    judged_rows = {}
    units = []
    for p in providers:
        n = (p["achieved"] or 0) + (p["not_achieved"] or 0) if p["status"] == "ok" else 0
        if p["source"] != "events" or p["status"] != "ok" or p["result"] != "final" or n == 0:
            continue
        adjusted = (p.get("risk_adjusted") or {}).get("adjusted_rate")
        units.append(Unit(p["provider_id"], p["achieved"], n, rate=adjusted))
        judged_rows[p["provider_id"]] = p
    result = funnel(units, national["observed_rate"], method="additive")
    for judged in result.units:
        judged_rows[judged.unit_id]["funnel"] = {
            "label": judged.label,
            "beyond_998": judged.beyond_998,
            "n": judged.n,
            "rate": judged.rate,
            "limits": asdict(judged.limits),
        }
    top = max([u.n for u in units] + [1]) * 2
    return {
        "target": result.target,
        "method": result.method,
        "phi": result.phi,
        "tau2": result.tau2,
        "curve": [{"n": n, **asdict(result.limits_at(n))} for n in _curve_points(top)],
    }


def _curve_points(top: int) -> list[int]:
    """Where to draw the limits: dense at small n, where they curve most."""
    points = {
        1,
        2,
        3,
        5,
        7,
        10,
        15,
        20,
        30,
        50,
        75,
        100,
        150,
        200,
        300,
        500,
        750,
        1000,
        1500,
        2000,
        3000,
        5000,
    }
    return sorted(n for n in points | {top} if n <= top)
