"""Measures on real Kafka and Postgres: a synthetic cohort of 5,000 young people streamed through ingest and
measures; every fact and aggregate compared with an independent recomputation; then a rebuild from the topic
ends in exactly the same state."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import orjson
import pytest

from utfall_gateway.auth import Principal
from utfall_gateway.readmodel import outcome_counts
from utfall_gateway.results import DIMENSIONS, ResultsQuery
from utfall_ingest.app import create_app as create_ingest
from utfall_ingest.settings import IngestSettings
from utfall_measures.app import create_app as create_measures
from utfall_measures.rebuild import rebuild
from utfall_measures.settings import MeasuresSettings
from utfall_platform.clock import FixedClock
from utfall_synthetic.cohort import CohortConfig, generate, renamed

from ..helpers import batch_headers, create_key, running, wait_until
from ..reference import expected_facts

pytestmark = pytest.mark.asyncio(loop_scope="session")
TODAY = date(2026, 6, 30)
CLOCK = FixedClock(datetime(2026, 6, 30, 23, 59, tzinfo=UTC))
SUBJECTS = 5000
OPERATOR = Principal("operator")


@pytest.fixture(scope="module")
def cohort():  # type: ignore[no-untyped-def]
    # A seed of our own: other tests' cohorts on the shared topic have other provider ids.
    config = CohortConfig(subjects=SUBJECTS, seed=515, today=TODAY)
    return generate(config)


def provider_of(event: dict[str, Any]) -> str:
    return str(event["source"].split("/", 1)[1])


async def facts_table(dsn: str, providers: set[str]) -> dict[tuple[str, str, str], dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT f.*, e.length_of_stay_days FROM measures.facts f JOIN measures.episodes e "
            "USING (provider_id, episode_id) WHERE f.status <> 'void' AND provider_id = ANY($1)",
            sorted(providers),
        )
    finally:
        await conn.close()
    return {(r["provider_id"], r["episode_id"], r["measure_id"]): dict(r) for r in rows}


async def test_cohort_facts_and_aggregates_match_an_independent_recomputation(
    world, cohort, record_property
) -> None:  # type: ignore[no-untyped-def]
    # Providers get a unique prefix per world so the shared topic's other traffic is told apart.
    suffix = world.name[-6:]
    events = renamed(cohort.events, suffix=f"-{suffix}")
    providers = {provider_of(e) for e in events}
    keys = {p: await create_key(world.kafka, "provider", provider_id=p) for p in providers}
    ingest = create_ingest(world.settings(IngestSettings, pseudonym_key="cohort-key"), clock=CLOCK)
    measures = create_measures(world.settings(MeasuresSettings, tick_seconds=3600), clock=CLOCK)
    totals: Counter[str] = Counter()
    async with running(ingest) as client, running(measures):
        started = time.perf_counter()
        for start in range(0, len(events), 1000):
            chunk = events[start : start + 1000]
            by_provider: dict[str, list[dict[str, Any]]] = {}
            for e in chunk:
                by_provider.setdefault(provider_of(e), []).append(e)
            for provider, items in by_provider.items():
                response = await client.post(
                    "/v1/events", content=orjson.dumps(items), headers=batch_headers(keys[provider])
                )
                assert response.status_code == 202
                for receipt in response.json()["receipts"]:
                    totals[receipt["status"]] += 1
                    assert receipt["status"] != "rejected", receipt
        ingest_seconds = time.perf_counter() - started
        conn = await asyncpg.connect(world.database_url)
        try:
            published = await conn.fetchval(
                "SELECT count(*) FROM ingest.received_events WHERE status = 'accepted' AND source = ANY($1)",
                [f"provider/{p}" for p in providers],
            )

            async def projected() -> bool:
                n = await conn.fetchval(
                    "SELECT count(*) FROM measures.events WHERE provider_id = ANY($1)", sorted(providers)
                )
                return n == published

            await wait_until(projected, timeout=300, interval=0.5, what="measures to project every event")
            projection_seconds = time.perf_counter() - started
        finally:
            await conn.close()
        actual = await facts_table(world.database_url, providers)

    record_property("events_posted", len(events))
    record_property("ingest_events_per_second", round(len(events) / ingest_seconds))
    record_property("pipeline_events_per_second", round(published / projection_seconds))
    print(
        f"\n{len(events)} events ({totals}) ingested in {ingest_seconds:.1f}s, projected by "
        f"{projection_seconds:.1f}s: {published / projection_seconds:.0f} events/s"
    )

    expected = expected_facts(events, TODAY)
    assert len(expected) > 8 * SUBJECTS * 0.5
    assert set(actual) == set(expected)
    mismatches = [
        (k, actual[k]["status"], v["status"])
        for k, v in expected.items()
        if actual[k]["status"] != v["status"]
    ]
    assert not mismatches, mismatches[:10]
    for key, want in expected.items():
        got = actual[key]
        for dim in (*DIMENSIONS, "discharge_year", "discharge_quarter", "length_of_stay_days"):
            assert got[dim] == want[dim], (key, dim)

    # every aggregate the gateway serves, against the recomputation
    pool = await asyncpg.create_pool(world.gateway_database_url, min_size=1, max_size=2)
    try:
        for measure in (
            "planned_discharge",
            "no_replacement_12m",
            "education_or_work_12m",
            "followup_coverage_12m",
        ):
            for group in [
                ("provider_id",),
                ("target_group",),
                ("county_code", "sex"),
                ("provider_id", "age_band"),
                ("care_type", "legal_basis"),
                ("municipality_code",),
                ("unit_id",),
            ]:
                for period in ("year", "quarter"):
                    # the shared topic carries other tests' providers too: group by provider as well, keep ours
                    grouping = group if "provider_id" in group else ("provider_id", *group)
                    q = ResultsQuery(measure, period, grouping)
                    rows = await outcome_counts(pool, q)
                    got = Counter()
                    for r in rows:
                        if r["provider_id"] not in providers:
                            continue
                        key = tuple(r[c] for c in (*q.period_columns, *group))
                        for status in ("achieved", "not_achieved", "missing", "pending"):
                            got[(key, status)] += r[status]
                    want = Counter()
                    for (_, _, m), fact in expected.items():
                        if m == measure:
                            want[(tuple(fact[c] for c in (*q.period_columns, *group)), fact["status"])] += 1
                    assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}, (
                        measure,
                        group,
                        period,
                    )
    finally:
        await pool.close()

    # rebuild, folding in memory and from Postgres: drop the projection, replay the topic, same state
    before = await facts_table(world.database_url, providers)
    for in_memory in (True, False):
        report = await rebuild(world.settings(MeasuresSettings), CLOCK, progress=False, in_memory=in_memory)
        after = await facts_table(world.database_url, providers)
        print(
            f"rebuild (in memory: {in_memory}): {report.records} records, {report.subjects} subjects in "
            f"{report.seconds:.1f}s; {report.published} facts changed"
        )
        record_property(f"rebuild_seconds_{'memory' if in_memory else 'postgres'}", round(report.seconds, 2))
        assert {k: (v["status"], v["revision"], v["evidence"]) for k, v in after.items()} == {
            k: (v["status"], v["revision"], v["evidence"]) for k, v in before.items()
        }, in_memory
    # nothing of ours changed: same status, same revision (a republished fact would have a new revision);
    # report.published may count other tests' events that reached the shared topic after our consumer stopped


async def test_tick_turns_pending_into_missing_without_new_events(world) -> None:  # type: ignore[no-untyped-def]
    clock = FixedClock(datetime(2026, 6, 30, 23, 59, tzinfo=UTC))
    measures = create_measures(world.settings(MeasuresSettings, tick_seconds=0.2), clock=clock)
    conn = await asyncpg.connect(world.database_url)
    try:
        async with running(measures):
            pending = await conn.fetchval("SELECT count(*) FROM measures.facts WHERE status = 'pending'")
            assert pending > 0
            clock.advance(days=1500)

            async def none_pending() -> bool:
                return (
                    await conn.fetchval("SELECT count(*) FROM measures.facts WHERE status = 'pending'") == 0
                )

            await wait_until(none_pending, timeout=120, interval=0.5, what="windows to close")
        assert await conn.fetchval("SELECT count(*) FROM measures.facts WHERE status = 'missing'") > 0
    finally:
        await conn.close()
    await asyncio.sleep(0)
