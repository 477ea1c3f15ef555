"""The gateway's computed answers: fetch from the read model, compute (pure, in `results.py`), cache; and the
one policy of who sees what (`domain/public.py`): outcome figures within the reader's scope exactly and live,
everything else from a release. One cache key per answer and reader scope, whichever route or page asks."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from utfall_events.releases import ReleaseMeasureV1, ReleaseV1
from utfall_platform.problems import Problem

from . import metrics as gateway_metrics
from .domain import public
from .domain.policy import Principal, sees_everything_live
from .domain.results import (
    ResultsQuery,
    Window,
    build_cells,
    compare,
    comparison_query,
    differing,
    disclose,
    merge_cells,
    self_reported_fit,
)
from .readmodel import results as results_read
from .state import GatewayState

Source = Literal["all", "events", "self_reported"]


async def catalogue(gw: GatewayState) -> list[dict[str, Any]]:
    """Every version of every measure (cached like the answers built on it)."""
    rows: list[dict[str, Any]] = await gw.cache.get(("catalogue",), lambda: results_read.catalogue(gw.pool))
    return rows


async def windowed(gw: GatewayState, q: ResultsQuery) -> ResultsQuery:
    """The query with its measure's outcome window and today's date: what tells a final cohort from a
    preliminary one (results.Window)."""
    current = next((r for r in await catalogue(gw) if r["id"] == q.measure_id and r["is_current"]), None)
    if current is None:
        return q
    window = Window(current["window_months"], current["grace_days"] or 0, gw.clock.today())
    return dataclasses.replace(q, window=window)


def scope(principal: Principal) -> tuple[str, str | None]:
    """What a reader may see exactly: readers of the same scope get the same answer."""
    return (principal.role, principal.provider_id or principal.municipality_code)


def released(
    gw: GatewayState, measure_id: str, number: int | None = None
) -> tuple[ReleaseV1, ReleaseMeasureV1] | None:
    """A release's figures of one measure (the latest release unless `number` names one); None when there is
    no release yet, or the release does not hold the measure."""
    release = gw.releases.manifest(number) if number is not None else gw.releases.latest()
    if release is None:
        if number is not None:
            raise Problem(404, "not-found", f"No release {number}.")
        return None
    measure = gw.releases.measure(release.release, measure_id)
    return (release, measure) if measure is not None else None


NO_RELEASE = (
    "Public figures come from releases, and no release of this measure has been published yet. "
    "Key holders see their own figures exactly."
)


def _not_published(reason: str) -> Problem:
    return Problem(
        403,
        "not-published",
        f"Public figures come from releases, which do not answer this question ({reason}). Releases publish, "
        "by discharge year: providers, the national figure, and national breakdowns by sex, age band and "
        "target group, one at a time. Key holders see their own figures exactly.",
    )


async def comparison(
    gw: GatewayState,
    measure_id: str,
    *,
    year: int | None,
    filters: Mapping[str, str],
    principal: Principal,
    release: int | None = None,
) -> dict[str, Any]:
    """Providers compared: an operator's live and exact; the public's from a release; a key holder's from a
    release with its own rows exact."""
    if sees_everything_live(principal):
        return {
            **await live_comparison(gw, measure_id, year=year, filters=filters, principal=principal),
            "release": None,
        }
    release_, view = _from_release(
        gw,
        measure_id,
        release,
        principal,
        lambda: public.published_comparison(filters),
        lambda measure: public.release_comparison(measure, year, filters),
    )
    if principal.is_public:
        assert release_ is not None and view is not None
        return {**view, "release": public.release_info(release_)}
    live = await live_comparison(gw, measure_id, year=year, filters=filters, principal=principal)
    out = public.overlay(view, live, principal, filters)
    out["release"] = public.release_info(release_) if release_ is not None else None
    return out


T = TypeVar("T")


def _from_release(
    gw: GatewayState,
    measure_id: str,
    number: int | None,
    principal: Principal,
    check: Callable[[], None],
    read: Callable[[ReleaseMeasureV1], T],
) -> tuple[ReleaseV1 | None, T | None]:
    """A release's answer to a question (`check` says whether releases answer it at all, `read` reads it).
    The public gets 403 for a question no release answers and 404 before the first release; a key holder
    gets (None, None) and sees its own cells only."""
    try:
        check()
    except public.NotPublished as refused:
        if principal.is_public:
            raise _not_published(str(refused)) from None
        return None, None
    found = released(gw, measure_id, number)
    if found is None:
        if principal.is_public:
            raise Problem(404, "no-release", NO_RELEASE)
        return None, None
    return found[0], read(found[1])


async def live_comparison(
    gw: GatewayState, measure_id: str, *, year: int | None, filters: Mapping[str, str], principal: Principal
) -> dict[str, Any]:
    q = await windowed(gw, comparison_query(measure_id, year, filters))

    async def compute() -> dict[str, Any]:
        strata = await results_read.comparison_strata(gw.pool, q)
        fit = self_reported_fit(q)
        reported = await results_read.self_reported_counts(gw.pool, q, fit) if fit is not None else []
        errors = await results_read.data_errors_by_provider(gw.pool)
        answer = compare(strata, reported, errors, q, principal=principal, min_cell=gw.min_cell)
        gateway_metrics.SOURCE_DIFFERENCES.inc(differing(answer["providers"]))
        return answer

    result: dict[str, Any] = await gw.cache.get(("comparison", q, scope(principal)), compute)
    return result


async def results_table(
    gw: GatewayState, q: ResultsQuery, source: Source, principal: Principal, release: int | None = None
) -> dict[str, Any]:
    """Rows and totals of one results query: an operator's live and exact; the public's from a release; a key
    holder's from a release with its own rows exact (only its own when no release answers the question)."""
    if sees_everything_live(principal):
        return {**await live_results(gw, q, source, principal), "release": None}
    release_, answer = _from_release(
        gw,
        q.measure_id,
        release,
        principal,
        lambda: public.check_published(q),
        lambda measure: public.release_results(measure, q, source),
    )
    info = public.release_info(release_) if release_ is not None else None
    if principal.is_public:
        assert answer is not None
        return {"rows": answer[0], "totals": answer[1], "release": info}
    live = await live_results(gw, q, source, principal)
    return {
        "rows": public.overlay_rows(answer[0] if answer else None, live["rows"], q.group_by),
        "totals": public.overlay_rows(answer[1] if answer else None, live["totals"], ()),
        "release": info,
    }


async def live_results(
    gw: GatewayState, q: ResultsQuery, source: Source, principal: Principal
) -> dict[str, Any]:
    """Rows and totals of one results query from the read model, disclosure-controlled for the reader."""
    q = await windowed(gw, q)

    async def compute() -> dict[str, Any]:
        records = await results_read.outcome_counts(gw.pool, q)
        fit = self_reported_fit(q) if source != "events" else None
        reported = await results_read.self_reported_counts(gw.pool, q, fit) if fit is not None else []

        def assemble() -> dict[str, Any]:
            events = build_cells(records, q, principal)
            if source == "events":
                by_period, period_dims = events
            else:
                own = build_cells(reported, q, principal, source="self_reported")
                by_period, period_dims = own if source == "self_reported" else merge_cells(events, own)
            table = disclose(
                by_period, period_dims, principal=principal, filters=dict(q.filters), min_cell=gw.min_cell
            )
            gateway_metrics.SOURCE_DIFFERENCES.inc(table.source_differences)
            return {"rows": table.rows, "totals": table.totals}

        # Cells and suppression are CPU work of tens of ms on a large grouping; in a thread the event loop
        # still gets the GIL every few ms, so answers from the cache are not held up behind a refresh.
        return await asyncio.to_thread(assemble)

    table: dict[str, Any] = await gw.cache.get(("results", q, source, scope(principal)), compute)
    return table
