"""Measures on real Kafka and Postgres: a synthetic cohort of 5,000 young people streamed through ingest and
measures; every fact and aggregate compared with an independent recomputation; then rebuilds from the topic
(one fold worker and three) end in exactly the same state; and a rebuild in parallel workers of episodes whose
subject was corrected (their events on two partitions, their subjects in two workers' shares) writes and
publishes every fact exactly once, as one worker does."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from benchmarks.load import published_records
from utfall_events.outcomes import EpisodeOutcomesV2
from utfall_events.topics import CARE_EVENTS
from utfall_gateway.auth import Principal
from utfall_gateway.domain.results import DIMENSIONS, ResultsQuery
from utfall_gateway.readmodel.results import outcome_counts
from utfall_ingest.app import create_app as create_ingest
from utfall_ingest.settings import IngestSettings
from utfall_measures.app import create_app as create_measures
from utfall_measures.rebuild import RebuildReport, rebuild, refold_all
from utfall_measures.settings import MeasuresSettings
from utfall_platform.clock import FixedClock
from utfall_synthetic.cohort import CohortConfig, generate, renamed

from ..helpers import batch_headers, create_key, migrate_service, produce, running, wait_until
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
            "USING (provider_id, episode_id) WHERE f.status <> 'void' AND provider_id = ANY($1) "
            "AND f.measure_id NOT LIKE '%@%'",  # the reported facts (a register's may cover these episodes too)
            sorted(providers),
        )
    finally:
        await conn.close()
    return {(r["provider_id"], r["episode_id"], r["measure_id"]): dict(r) for r in rows}


async def episodes_table(dsn: str, providers: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every stored episode of these providers, each column but when it was written."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT * FROM measures.episodes WHERE provider_id = ANY($1)", sorted(providers)
        )
    finally:
        await conn.close()
    return {
        (r["provider_id"], r["episode_id"]): {k: v for k, v in r.items() if k != "updated_at"} for r in rows
    }


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

    # rebuild, folding in one worker process and in three: drop the projection, replay the topic, same state
    before = await facts_table(world.database_url, providers)
    # the live projection rewrites only the episodes a batch's events touch; a rebuild folds every one
    episodes_before = await episodes_table(world.database_url, providers)
    assert len(episodes_before) > 100
    for workers in (1, 3):
        report = await rebuild(world.settings(MeasuresSettings), CLOCK, progress=False, workers=workers)
        after = await facts_table(world.database_url, providers)
        print(
            f"rebuild ({workers} workers): {report.records} records, {report.subjects} subjects in "
            f"{report.seconds:.1f}s; {report.published} facts changed"
        )
        record_property(f"rebuild_seconds_{workers}_workers", round(report.seconds, 2))
        assert report.subjects > 0
        assert await episodes_table(world.database_url, providers) == episodes_before, workers
        assert {k: (v["status"], v["revision"], v["evidence"]) for k, v in after.items()} == {
            k: (v["status"], v["revision"], v["evidence"]) for k, v in before.items()
        }, workers
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


def with_moved_subjects(
    records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]], every: int
) -> tuple[list[tuple[bytes, bytes, list[tuple[str, bytes]]]], dict[tuple[str, str], str]]:
    """Every `every`th placement.started corrected a week later to another subject of the cohort (as ingest
    publishes a corrected personnummer): the episode's events then name two subjects, keyed to two partitions."""
    starts = [r for r in records if dict(r[2])["ce_type"].endswith(b"placement.started.v1")]
    subjects = [orjson.loads(value)["subject_ref"] for _, value, _ in starts]
    moved: dict[tuple[str, str], str] = {}
    corrections = []
    for i in range(0, len(starts), every):
        _, value, headers = starts[i]
        data = orjson.loads(value)
        data["subject_ref"] = subjects[(i + len(subjects) // 2) % len(subjects)]
        names = dict(headers)
        time = datetime.fromisoformat(names["ce_time"].decode()) + timedelta(days=7)
        replaced = {"ce_id": names["ce_id"] + b"-moved", "ce_time": time.isoformat().encode()}
        provider = names["ce_source"].decode().split("/", 1)[1]
        moved[(provider, data["episode_id"])] = data["subject_ref"]
        corrections.append(
            (data["subject_ref"].encode(), orjson.dumps(data), [(n, replaced.get(n, v)) for n, v in headers])
        )
    return records + corrections, moved


async def rebuilt_from_no_facts(
    dsn: str, settings: MeasuresSettings, providers: list[str], workers: int
) -> tuple[dict[tuple[str, str, str], tuple[Any, ...]], Counter[tuple[str, str]], dict[tuple[str, str], str]]:
    """Forget the providers' facts, rebuild, and return their facts, how many outcome messages each episode
    got, and each episode's subject."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM measures.facts WHERE provider_id = ANY($1)", providers)
        since = await conn.fetchval("SELECT coalesce(max(id), 0) FROM measures.outbox")
        report = await rebuild(settings, CLOCK, progress=False, workers=workers)
        assert report.subjects > 0
        facts = {
            (r["provider_id"], r["episode_id"], r["measure_id"]): (r["status"], r["revision"], r["evidence"])
            for r in await conn.fetch("SELECT * FROM measures.facts WHERE provider_id = ANY($1)", providers)
        }
        messages: Counter[tuple[str, str]] = Counter()
        for row in await conn.fetch("SELECT value FROM measures.outbox WHERE id > $1", since):
            message = EpisodeOutcomesV2.model_validate_json(row["value"])
            if message.episode.provider_id in providers:
                messages[(message.episode.provider_id, message.episode_id)] += 1
                assert {change.revision for change in message.facts} == {1}, message
        subjects = {
            (r["provider_id"], r["episode_id"]): r["subject_ref"]
            for r in await conn.fetch(
                "SELECT * FROM measures.episodes WHERE provider_id = ANY($1)", providers
            )
        }
    finally:
        await conn.close()
    return facts, messages, subjects


async def test_parallel_rebuild_of_corrected_subjects_writes_and_publishes_each_fact_once(world) -> None:  # type: ignore[no-untyped-def]
    cohort = generate(CohortConfig(subjects=600, seed=616, today=TODAY))
    events = renamed(cohort.events, suffix=f"-rb{world.name[-6:]}")
    records, moved = with_moved_subjects(list(published_records(events)), every=7)
    providers = sorted({provider_of(e) for e in events})
    pool = await asyncpg.create_pool(world.database_url, min_size=1, max_size=1)
    try:
        await migrate_service(pool, "measures")  # as the service would on start, had it run first
    finally:
        await pool.close()
    await produce(world.kafka, CARE_EVENTS, records)
    settings = world.settings(MeasuresSettings)

    serial, serial_messages, serial_subjects = await rebuilt_from_no_facts(
        world.database_url, settings, providers, workers=1
    )
    parallel, parallel_messages, parallel_subjects = await rebuilt_from_no_facts(
        world.database_url, settings, providers, workers=3
    )
    assert len(moved) > 50
    assert {key: serial_subjects[key] for key in moved} == moved  # the corrected start's subject won
    assert len(moved.keys() & {key[:2] for key in serial}) > 20  # moved episodes have facts
    assert parallel == serial and parallel_subjects == serial_subjects
    # every episode with facts got exactly one outcome message, in both rebuilds: none lost, none doubled
    episodes_with_facts = {key[:2] for key in serial}
    assert serial_messages == parallel_messages == Counter(dict.fromkeys(episodes_with_facts, 1))


async def test_a_rebuild_whose_fold_worker_fails_stops_with_its_exit_code() -> None:
    # a worker that cannot reach the database exits non-zero: the rebuild stops (its marker stays for the
    # service to finish) instead of reporting a fold that never happened
    report = RebuildReport()
    with pytest.raises(RuntimeError, match="exit code 1"):
        await refold_all(
            "postgresql://nobody@127.0.0.1:1/nothing",
            TODAY,
            CLOCK.now(),
            progress=False,
            report=report,
            workers=2,
        )
    assert report.subjects == 0
