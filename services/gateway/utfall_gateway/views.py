"""The gateway's computed answers: fetch from the read model, compute (pure, in `results.py`), cache. One cache
key per answer and reader scope, whichever route or page asks for it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from . import readmodel
from .auth import Principal
from .results import (
    ResultsQuery,
    Window,
    build_cells,
    compare,
    comparison_query,
    disclose,
    merge_cells,
    self_reported_fit,
)
from .state import GatewayState

Source = Literal["all", "events", "self_reported"]


async def catalogue(gw: GatewayState) -> list[dict[str, Any]]:
    """Every version of every measure (cached like the answers built on it)."""
    rows: list[dict[str, Any]] = await gw.cache.get(("catalogue",), lambda: readmodel.catalogue(gw.pool))
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


async def comparison(
    gw: GatewayState, measure_id: str, *, year: int | None, filters: Mapping[str, str], principal: Principal
) -> dict[str, Any]:
    q = await windowed(gw, comparison_query(measure_id, year, filters))

    async def compute() -> dict[str, Any]:
        strata = await readmodel.comparison_strata(gw.pool, q)
        fit = self_reported_fit(q)
        reported = await readmodel.self_reported_counts(gw.pool, q, fit) if fit is not None else []
        errors = await readmodel.data_errors_by_provider(gw.pool)
        return compare(strata, reported, errors, q, principal=principal, min_cell=gw.min_cell)

    result: dict[str, Any] = await gw.cache.get(("comparison", q, scope(principal)), compute)
    return result


async def results_table(
    gw: GatewayState, q: ResultsQuery, source: Source, principal: Principal
) -> dict[str, Any]:
    """Rows and totals of one results query, disclosure-controlled for the reader."""
    q = await windowed(gw, q)

    async def compute() -> dict[str, Any]:
        records = await readmodel.outcome_counts(gw.pool, q)
        fit = self_reported_fit(q) if source != "events" else None
        reported = await readmodel.self_reported_counts(gw.pool, q, fit) if fit is not None else []

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
            return {"rows": table.rows, "totals": table.totals}

        # Cells and suppression are CPU work of tens of ms on a large grouping; in a thread the event loop
        # still gets the GIL every few ms, so answers from the cache are not held up behind a refresh.
        return await asyncio.to_thread(assemble)

    table: dict[str, Any] = await gw.cache.get(("results", q, source, scope(principal)), compute)
    return table
