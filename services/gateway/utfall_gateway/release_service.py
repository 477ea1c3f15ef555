"""Publishing a release: read every current measure's counts in one consistent snapshot, decide and build the
tables against every earlier release (pure, `domain/releases.py`), compare with the previous release, write
them to `releases.v1`. Releases are numbered one at a time across gateway replicas (a PostgreSQL advisory
lock, which a read-only role may take)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from utfall_events.releases import ReleasedMeasureV1, ReleaseMeasureV1, ReleaseV1
from utfall_platform import locks

from .domain.policy import Principal
from .domain.releases import (
    SUPPRESSION,
    Earlier,
    MeasureCounts,
    Release,
    build,
    changes,
    snapshot_of,
)
from .domain.results import ResultsQuery, Window, comparison_query, self_reported_fit
from .readmodel import results as results_read
from .release_store import ReleaseStore
from .state import GatewayState

log = logging.getLogger("utfall.gateway.releases")
FINE = ("provider_id", "sex", "age_band", "target_group", "legal_basis")


async def snapshot(gw: GatewayState) -> list[MeasureCounts]:
    """Every current measure's counts, read in one repeatable-read transaction: the tables of a release
    add up because they are read from one state of the data."""
    measures = []
    today = gw.clock.today()
    async with gw.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        errors = await results_read.data_errors_by_provider(conn)
        for m in await results_read.catalogue(conn):
            if not m["is_current"]:
                continue
            window = Window(m["window_months"], m["grace_days"] or 0, today)
            by_provider = ResultsQuery(m["id"], "year", ("provider_id",), window=window)
            fine = [
                dict(r)
                for r in await results_read.outcome_counts(
                    conn, ResultsQuery(m["id"], "year", FINE, window=window)
                )
            ]
            reported = {}
            for year in sorted({int(r["discharge_year"]) for r in fine}):
                q = comparison_query(m["id"], year, {})
                reported[year] = await _reported(conn, dataclasses.replace(q, window=window))
            measures.append(
                MeasureCounts(
                    m["id"],
                    m["version"],
                    fine,
                    errors,
                    await _reported(conn, by_provider),
                    reported,
                )
            )
    return measures


async def _reported(conn: Any, q: ResultsQuery) -> list[dict[str, Any]]:
    """Providers' aggregated submissions that fit the query (the same as the live comparison shows)."""
    fit = self_reported_fit(q)
    return [dict(r) for r in await results_read.self_reported_counts(conn, q, fit)] if fit is not None else []


def _earlier(store: ReleaseStore) -> list[Earlier]:
    """Every published release whose audit is kept, oldest first: what the next one is suppressed against."""
    out = []
    for manifest in reversed(store.manifests()):
        audit = store.audit(manifest.release)
        if audit is not None:
            out.append(Earlier(snapshot_of(audit), store.cells(manifest)))
    return out


async def _build(gw: GatewayState, store: ReleaseStore, number: int) -> tuple[list[MeasureCounts], Release]:
    counts = await snapshot(gw)
    earlier = _earlier(store)
    built = await asyncio.to_thread(
        lambda: build(counts, release=number, min_cell=gw.min_cell, margin=gw.margin, earlier=earlier)
    )
    return counts, built


async def preview(gw: GatewayState, store: ReleaseStore, provider_id: str) -> dict[str, Any]:
    """What the next release would publish of one provider if it were published now: its cells in the
    provider tables, suppressed or not, built exactly as a release is (at most every `release_preview_seconds`). Only
    the provider's own cells: the rest of a release built at another moment than the published ones would
    be one more snapshot to subtract."""

    async def compute() -> Release:
        return (await _build(gw, store, store.highest() + 1))[1]

    built: Release = await gw.previews.get(("release-preview",), compute)
    measures = []
    for release in built.measures:
        cells = [c for c in release.tables.get("provider_year", []) if c.provider_id == provider_id]
        if cells:
            measures.append({"measure_id": cells[0].measure_id, "cells": cells})
    return {"release": store.highest() + 1, "measures": measures}


def _same_as(previous: ReleaseV1, summary: list[ReleasedMeasureV1]) -> bool:
    """The same measures at the same versions, with no cell added, removed or changed."""
    return [(m.measure_id, m.measure_version) for m in previous.measures] == [
        (m.measure_id, m.measure_version) for m in summary
    ] and not any(m.added or m.removed or m.changed for m in summary)


async def publish_release(
    gw: GatewayState, store: ReleaseStore, who: Principal, note: str | None
) -> tuple[ReleaseV1, bool]:
    """The new release, or the latest one when nothing has changed since it (False: nothing was published)."""
    async with gw.pool.acquire() as lock_conn:
        await lock_conn.execute("SELECT pg_advisory_lock($1)", locks.GATEWAY_RELEASE)
        try:
            await store.refresh(timeout=10.0)
            number = store.highest() + 1
            previous = store.latest()
            data_as_of = gw.clock.now()
            counts, built = await _build(gw, store, number)
            records: list[tuple[str, Any]] = []
            summary = []
            for c, release in zip(counts, built.measures, strict=True):
                before = store.measure(previous.release, c.measure_id) if previous else None
                listed = changes(before.tables if before else ({} if previous else None), release.tables)
                records.append(
                    (
                        store.measure_key(number, c.measure_id),
                        ReleaseMeasureV1(
                            release=number,
                            measure_id=c.measure_id,
                            measure_version=c.measure_version,
                            tables=release.tables,
                            changes=listed,
                            views=release.views,
                        ),
                    )
                )
                summary.append(
                    ReleasedMeasureV1(
                        measure_id=c.measure_id,
                        measure_version=c.measure_version,
                        cells=release.cells,
                        suppressed_cells=release.suppressed,
                        added=sum(1 for x in listed if x.change == "added"),
                        removed=sum(1 for x in listed if x.change == "removed"),
                        changed=sum(1 for x in listed if x.change == "changed"),
                    )
                )
            if previous is not None and _same_as(previous, summary):
                return previous, False  # nothing moved: a second release would only repeat the first
            manifest = ReleaseV1(
                release=number,
                previous=previous.release if previous else None,
                data_as_of=data_as_of,
                published_at=gw.clock.now(),
                published_by=who.key_id or who.role,
                note=note,
                min_cell=gw.min_cell,
                margin=gw.margin,
                suppression=SUPPRESSION,
                audit=built.audit.figures,
                measures=summary,
            )
            records.append((store.audit_key(number), built.audit))
            records.append((store.manifest_key(number), manifest))
            await store.publish(records)
            log.info("release %s published: %s", number, built.audit.figures)
            return manifest, True
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock($1)", locks.GATEWAY_RELEASE)
