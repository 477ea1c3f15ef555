"""Fault injection on the real stack: the shared scenario of the short test (make test) and the soak
(make soak). A seeded synthetic stream flows over HTTP and the raw topic while services are SIGKILLed, the
broker and the database restart, and a consumer is paused past its session timeout. Afterwards the state
must equal what the same stream gives without faults."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
import httpx
import orjson
import yaml
from aiokafka import AIOKafkaProducer

from utfall_contracts.domain.ledger import payment_id
from utfall_events.sealed import public_key_set
from utfall_events.topics import PAYMENTS, raw_topic
from utfall_platform.kafka_access import KafkaAccess
from utfall_synthetic.cli import raw_key, raw_record
from utfall_synthetic.cohort import CohortConfig, generate, renamed

from .builders import EVERY_CARE_TYPE, contract_document
from .cluster_faults import CLUSTER_FAULTS
from .helpers import create_key, provider_access, read_topic, wait_until
from .infra import PERSON_ID_KEYS
from .reference import expected_facts

SEALED_TO = public_key_set(orjson.loads(PERSON_ID_KEYS))

MILESTONES = {"planned_discharge": 100_000, "no_replacement_12m": 200_000, "education_or_work_12m": 300_000}


def contract_yaml(contract_id: str, providers: list[str]) -> str:
    return yaml.safe_dump(
        contract_document(
            contract_id,
            providers,
            MILESTONES,
            per_participant_cap_ore=10**12,
            total_cap_ore=10**13,  # the largest a contract may hold (MAX_AMOUNT_ORE)
            care_types=EVERY_CARE_TYPE,
            enrolment=("2000-01-01", "2030-12-31"),
            name="fault injection",
            funder="fault-fund",
        )
    )


@dataclass
class FaultReport:
    events: int = 0
    posted_http: int = 0
    posted_kafka: int = 0
    faults: list[str] = field(default_factory=list)
    http_retries: int = 0
    lost_events: int = 0
    facts_checked: int = 0
    fact_mismatches: int = 0
    ledger_entries: int = 0
    missing_payments: int = 0
    doubled_payment_ids: int = 0
    duplicate_deliveries: int = 0
    ledger_entries_not_on_topic: int = 0
    topic_entries_not_in_ledger: int = 0
    payment_differences: list[str] = field(default_factory=list)
    seconds: float = 0.0
    payment_diagnostics: list[dict[str, Any]] = field(default_factory=list)
    fault_details: list[str] = field(
        default_factory=list
    )  # which node a cluster fault struck, and what it cost
    events_lost_before_measures: int = 0  # sent events measures never got (only where commits may be lost)
    events_lost_after_ingest: int = 0  # of those, ones ingest still holds (so lost downstream of it)
    kafka_events_lost: int = 0  # of those, ones sent over a provider's raw topic
    events_held_for_lost_placements: int = 0  # acknowledged, waiting for a placement the database lost
    lost_wal_bytes: int = 0  # WAL the primary had and the promoted standby lacked (an asynchronous failover)
    topic_amounts_differing: int = 0  # entries on payments.v1 whose amount differs from the ledger's
    stage: str = "flow"  # the step the scenario reached; on a failure, the one that did not finish
    stage_detail: str = ""


async def resilient_post(
    client: httpx.AsyncClient, url: str, key: str, batch: list[dict[str, Any]], report: FaultReport
) -> None:
    """What a provider's system does: resend the batch until it gets receipts (duplicates are fine), for up to
    three minutes (a fault heals well within that)."""
    give_up = time.monotonic() + 180
    last = ""
    while time.monotonic() < give_up:
        try:
            response = await client.post(
                url,
                content=orjson.dumps(batch),
                headers={
                    "content-type": "application/cloudevents-batch+json",
                    "authorization": f"Bearer {key}",
                },
            )
            if response.status_code == 202:
                bad = [r for r in response.json()["receipts"] if r["status"] == "rejected"]
                assert not bad, bad
                return
            assert response.status_code in (401, 503), response.text  # 401: a restarted key store catching up
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        report.http_retries += 1
        await asyncio.sleep(0.3)
    raise AssertionError(f"ingest did not take a batch for three minutes; last answer: {last}")


async def resilient_produce(
    admin: KafkaAccess, provider_id: str, records: list[Any], report: FaultReport
) -> None:
    """Produce as the provider to its own raw topic, retrying while the broker is down."""
    access = await provider_access(admin, provider_id)
    give_up = time.monotonic() + 180
    last: Exception | None = None
    while time.monotonic() < give_up:
        producer = AIOKafkaProducer(
            **access.client_options(), acks="all", enable_idempotence=True, request_timeout_ms=10000
        )
        try:
            await producer.start()
            futures = [
                await producer.send(raw_topic(provider_id).name, value, key=key, headers=headers)
                for key, value, headers in records
            ]
            await asyncio.gather(*futures)
            return
        except Exception as exc:
            last = exc
            report.http_retries += 1
            await asyncio.sleep(1.0)
        finally:
            with contextlib.suppress(Exception):
                await producer.stop()
    raise AssertionError(f"the broker did not take a batch for three minutes; last error: {last!r}")


async def run_scenario(
    stack: Any,
    infra: Any,
    *,
    subjects: int,
    seed: int,
    rate: float,
    faults: list[str],
    artifacts: Any,
    settle_seconds: float = 900.0,
    database_may_lose_commits: bool = False,
) -> FaultReport:
    """Run the stream with the faults, then wait (within `settle_seconds` in all) for the state to settle and
    compare it with the no-fault result. The report is written under artifacts/ even when a wait runs out."""
    report = FaultReport()
    try:
        return await _run_scenario(
            stack,
            infra,
            report,
            subjects,
            seed,
            rate,
            faults,
            artifacts,
            settle_seconds,
            database_may_lose_commits,
        )
    finally:
        report_path = artifacts / f"faults-{stack.world.name}.json"
        report_path.write_text(orjson.dumps(report.__dict__, option=orjson.OPT_INDENT_2).decode())


async def _run_scenario(
    stack: Any,
    infra: Any,
    report: FaultReport,
    subjects: int,
    seed: int,
    rate: float,
    faults: list[str],
    artifacts: Any,
    settle_seconds: float,
    database_may_lose_commits: bool,
) -> FaultReport:
    world = stack.world
    started = time.monotonic()
    suffix = world.name[-6:]
    cohort = generate(
        CohortConfig(subjects=subjects, seed=seed, today=date(2026, 10, 31), retraction_rate=0.03)
    )
    events = renamed(cohort.events, suffix=f"-{suffix}")
    report.events = len(events)
    providers = sorted({e["source"].split("/", 1)[1] for e in events})
    keys = {p: await create_key(world.kafka, "provider", provider_id=p) for p in providers}
    kafka_provider = next(p for p in providers if p.startswith("sis-"))
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()

    # every ingest replica takes a share of the batches, as behind a load balancer
    ingest_urls = [s.url for s in stack.services.values() if s.kind == "ingest"]
    sent = 0

    async def flow() -> None:
        nonlocal sent
        async with httpx.AsyncClient(timeout=20) as client:
            for start in range(0, len(events), 200):
                chunk = events[start : start + 200]
                by_provider: dict[str, list[dict[str, Any]]] = {}
                for e in chunk:
                    by_provider.setdefault(e["source"].split("/", 1)[1], []).append(e)
                for provider, items in by_provider.items():
                    if provider == kafka_provider:
                        # the Kafka provider seals personnummer to ingest, as the docs offer
                        records = [(raw_key(e), *raw_record(e, SEALED_TO)) for e in items]
                        await resilient_produce(world.kafka, provider, records, report)
                        report.posted_kafka += len(items)
                    else:
                        url = ingest_urls[sent % len(ingest_urls)] + "/v1/events"
                        sent += 1
                        await resilient_post(client, url, keys[provider], items, report)
                        report.posted_http += len(items)
                await asyncio.sleep(200 / rate)

    async def inject() -> None:
        pause = (len(events) / rate) / (len(faults) + 1)
        for fault in faults:
            await asyncio.sleep(pause * rng.uniform(0.6, 1.2))
            report.faults.append(fault)
            if fault in CLUSTER_FAULTS:
                detail = await CLUSTER_FAULTS[fault](infra, rng, report)
                report.fault_details.append(f"{fault}: {detail}")
            elif fault.startswith("kill:"):
                name = fault.split(":", 1)[1]
                stack.kill(name)
                await asyncio.sleep(rng.uniform(0.2, 1.5))
                stack.start_service(name)
                await loop.run_in_executor(None, stack.wait_ready, (name,), 180.0)
            elif fault == "restart:kafka":
                await loop.run_in_executor(None, infra.local_kafka.stop)
                await asyncio.sleep(1.0)
                await loop.run_in_executor(None, infra.local_kafka.start)
            elif fault == "restart:postgres":
                await loop.run_in_executor(None, infra.local_postgres.restart)
            elif fault.startswith("pause:"):
                pid = stack.services[fault.split(":", 1)[1]].proc.pid
                os.kill(pid, signal.SIGSTOP)
                await asyncio.sleep(20)  # past the 15 s session timeout: the group rebalances
                os.kill(pid, signal.SIGCONT)

    await asyncio.gather(flow(), inject())
    report.stage = "services ready"
    await loop.run_in_executor(None, stack.wait_ready, tuple(stack.services), 180.0)
    settle_deadline = time.monotonic() + settle_seconds

    def left() -> float:
        return max(5.0, settle_deadline - time.monotonic())

    conn = await asyncpg.connect(world.database_url)
    try:
        unique = {(e["source"], e["id"]) for e in events}
        sources = sorted({s for s, _ in unique})

        async def all_received() -> bool:
            n = await conn.fetchval(
                "SELECT count(*) FROM ingest.received_events WHERE source = ANY($1)", sources
            )
            report.stage_detail = f"{n} of {len(unique)} events in ingest.received_events"
            return n == len(unique)

        report.stage = "ingest to receive every event"
        if database_may_lose_commits:
            # Acknowledged events whose commit the failover lost, and which ingest had not yet published, are
            # gone (the guarantee the docs state for an asynchronous standby): wait for the counts to settle and
            # hold the state to the reference over the events that reached measures.
            received_sql = "SELECT count(*) FROM ingest.received_events WHERE source = ANY($1)"
            await wait_stable(lambda: conn.fetchval(received_sql, sources), timeout=min(300, left()))
            report.stage = "measures to project every event"
            projected_sql = "SELECT count(*) FROM measures.events WHERE source = ANY($1)"
            await wait_stable(lambda: conn.fetchval(projected_sql, sources), timeout=left())
            kept = {
                (r["source"], r["event_id"])
                for r in await conn.fetch(
                    "SELECT source, event_id FROM measures.events WHERE source = ANY($1)", sources
                )
            }
            statuses = {
                (r["source"], r["event_id"]): r["status"]
                for r in await conn.fetch(
                    "SELECT source, event_id, status FROM ingest.received_events WHERE source = ANY($1)",
                    sources,
                )
            }
            # held too long (expired): never published; held: waiting for a placement the failover lost
            refused = {k for k, status in statuses.items() if status == "expired"}
            accepted = {k for k, status in statuses.items() if status == "accepted"}
            report.events_held_for_lost_placements = sum(
                1 for status in statuses.values() if status == "held"
            )
            report.events_lost_before_measures = len(unique - kept - refused)
            # nothing that was on Kafka is lost: measures lacks only events ingest lost too, none of them sent
            # over a provider's raw topic (ingest reads those again)
            report.events_lost_after_ingest = len((unique - kept) & accepted)
            report.kafka_events_lost = sum(
                1
                for e in events
                if e["source"].endswith("/" + kafka_provider) and (e["source"], e["id"]) not in kept | refused
            )
            expected = expected_facts([e for e in events if (e["source"], e["id"]) in kept], date.today())
        else:
            await wait_until(all_received, timeout=min(300, left()), interval=1.0, what=report.stage)
            published = await conn.fetchval(
                "SELECT count(*) FROM ingest.received_events WHERE source = ANY($1) AND status = 'accepted'",
                sources,
            )

            async def projected() -> bool:
                n = await conn.fetchval(
                    "SELECT count(*) FROM measures.events WHERE source = ANY($1)", sources
                )
                report.stage_detail = f"{n} of {published} accepted events in measures.events"
                return n == published

            report.stage = "measures to project every event"
            await wait_until(projected, timeout=left(), interval=1.0, what=report.stage)
            expected = expected_facts(events, date.today())

        async def facts_settled() -> dict[tuple[str, str, str], str] | None:
            rows = await conn.fetch(
                "SELECT provider_id, episode_id, measure_id, status FROM measures.facts "
                "WHERE provider_id = ANY($1) AND status <> 'void' AND measure_id NOT LIKE '%@%'",
                providers,
            )
            got = {(r["provider_id"], r["episode_id"], r["measure_id"]): r["status"] for r in rows}
            want = {k: v["status"] for k, v in expected.items()}
            differ = sorted(set(got.items()) ^ set(want.items()))
            report.stage_detail = f"{len(differ)} facts differ, e.g. {differ[:3]}"
            return got if not differ else None

        report.stage = "facts to equal the no-fault result"
        try:
            await wait_until(facts_settled, timeout=left(), interval=2.0, what=report.stage)
        except AssertionError:
            rows = await conn.fetch(
                "SELECT provider_id, episode_id, measure_id, status FROM measures.facts "
                "WHERE provider_id = ANY($1) AND status <> 'void' AND measure_id NOT LIKE '%@%'",
                providers,
            )
            got = {(r["provider_id"], r["episode_id"], r["measure_id"]): r["status"] for r in rows}
            report.fact_mismatches = len(set(got.items()) ^ {(k, v["status"]) for k, v in expected.items()})
        report.facts_checked = len(expected)
        report.lost_events = len(unique) - await conn.fetchval(
            "SELECT count(*) FROM ingest.received_events WHERE source = ANY($1)", sources
        )

        contract_id = stack.contract_id
        placements = {
            (e["source"].split("/", 1)[1], e["data"]["episode_id"]): e
            for e in events
            if e["type"].endswith("placement.started.v1")
        }
        want: set[str] = set()
        for (provider, episode, measure), fact in expected.items():
            start = placements.get((provider, episode))
            if (
                measure in MILESTONES
                and fact["status"] == "achieved"
                and start is not None
                and start["data"]["care_type"] != "outpatient"
            ):
                subject = await conn.fetchval(
                    "SELECT subject_ref FROM measures.episodes WHERE provider_id = $1 AND episode_id = $2",
                    provider,
                    episode,
                )
                want.add(f"{subject}|{provider}|{episode}|{measure}")

        async def ledger() -> tuple[list[Any], Counter[tuple[str, ...]]]:
            rows = await conn.fetch(
                "SELECT entry_id, payment_id, kind, subject_ref, provider_id, episode_id, measure_id, "
                "occurrence, amount_ore FROM contracts.ledger WHERE contract_id = $1",
                contract_id,
            )
            active: Counter[tuple[str, ...]] = Counter()
            for r in rows:
                active[(r["subject_ref"], r["provider_id"], r["episode_id"], r["measure_id"])] += {
                    "payment.triggered": 1,
                    "payment.reversed": -1,
                }.get(r["kind"], 0)
            return rows, active

        async def ledger_settled() -> bool:
            _, active = await ledger()
            have = {"|".join(k) for k, v in active.items() if v == 1}
            return have == want and all(v in (0, 1) for v in active.values())

        report.stage = "the ledger to settle"
        with contextlib.suppress(AssertionError):  # a mismatch is reported (and asserted on) below
            # the shared topics carry every earlier test's traffic too, which this world's services also consume
            await wait_until(ledger_settled, timeout=left(), interval=2.0, what=report.stage)
        rows, active = await ledger()
        have = {"|".join(k) for k, v in active.items() if v == 1}
        report.missing_payments = len(want - have) + len(have - want)
        report.payment_differences = sorted(want ^ have)[:10]
        for difference in report.payment_differences:
            report.payment_diagnostics.append(await _diagnose(conn, contract_id, difference))
        report.ledger_entries = len(rows)
        ledger_entry_ids = {str(r["entry_id"]) for r in rows}
        ids = Counter((r["payment_id"], r["kind"]) for r in rows)
        report.doubled_payment_ids = sum(c - 1 for c in ids.values())
        for r in rows:
            first = payment_id(
                contract_id,
                r["subject_ref"],
                r["provider_id"],
                r["episode_id"],
                r["measure_id"].replace("_", "-"),
                r["occurrence"],
            )
            assert r["payment_id"] == first
    finally:
        await conn.close()
    report.stage = "payments on the topic"
    on_topic = await read_topic(
        world.kafka,
        PAYMENTS,
        predicate=lambda r: r.key == contract_id.encode(),
        expect=report.ledger_entries,
        timeout=120,
        settle=2.0,
    )
    entry_ids = Counter(orjson.loads(r.value)["entry_id"] for r in on_topic)
    # what finance saw is what the ledger holds: the same entry (payment id and kind) with the same amount, even
    # where a failover lost the commit that first decided it and it was decided again
    ledger_amounts = {str(r["entry_id"]): r["amount_ore"] for r in rows}
    report.topic_amounts_differing = sum(
        1
        for r in on_topic
        if (entry := orjson.loads(r.value))["entry_id"] in ledger_amounts
        and ledger_amounts[entry["entry_id"]] != entry["amount_ore"]
    )
    report.duplicate_deliveries = sum(c - 1 for c in entry_ids.values())
    # the topic against the ledger: every entry published, nothing published that the ledger lacks
    report.ledger_entries_not_on_topic = len(ledger_entry_ids - set(entry_ids))
    report.topic_entries_not_in_ledger = len(set(entry_ids) - ledger_entry_ids)
    report.seconds = time.monotonic() - started
    report.stage, report.stage_detail = "done", ""
    return report


async def wait_stable(count: Any, *, timeout: float, quiet: float = 20.0) -> int:
    """Until `count()` has not changed for `quiet` seconds; returns it."""
    deadline = time.monotonic() + timeout
    last, since = await count(), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        now = await count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return int(last)
    raise AssertionError(f"still changing after {timeout}s (last {last})")


async def _diagnose(conn: asyncpg.Connection, contract_id: str, difference: str) -> dict[str, Any]:
    """What each service holds about one payment that differs: where the chain from fact to ledger broke."""
    _, provider, episode, measure = difference.split("|")

    async def rows(sql: str, *args: Any) -> list[dict[str, Any]]:
        return [{k: str(v) for k, v in dict(r).items()} for r in await conn.fetch(sql, *args)]

    # every column of each row (SELECT *): a diagnosis that names columns broke exactly when it was needed
    episode_rows = "WHERE provider_id = $1 AND episode_id = $2"
    return {
        "payment": difference,
        "measures.facts": await rows(
            f"SELECT * FROM measures.facts {episode_rows} AND measure_id = $3", provider, episode, measure
        ),
        "measures.outbox unsent": await rows("SELECT count(*) AS n FROM measures.outbox"),
        "contracts.fact_status": await rows(
            f"SELECT * FROM contracts.fact_status {episode_rows} AND measure_id = $3",
            provider,
            episode,
            measure,
        ),
        "contracts.placements": await rows(
            f"SELECT * FROM contracts.placements {episode_rows}", provider, episode
        ),
        "contracts.participants": await rows(
            "SELECT * FROM contracts.participants WHERE contract_id = $3 AND provider_id = $1 AND episode_id = $2",
            provider,
            episode,
            contract_id,
        ),
        "contracts.milestone_state": await rows(
            "SELECT * FROM contracts.milestone_state WHERE contract_id = $3 AND provider_id = $1 AND episode_id = $2",
            provider,
            episode,
            contract_id,
        ),
        "contracts.ledger": await rows(
            "SELECT kind, measure_id, occurrence, amount_ore, capped, reason FROM contracts.ledger "
            "WHERE contract_id = $3 AND provider_id = $1 AND episode_id = $2",
            provider,
            episode,
            contract_id,
        ),
        "positions": await rows(
            "SELECT 'measures' AS schema, * FROM measures.consumer_positions UNION ALL "
            "SELECT 'contracts', * FROM contracts.consumer_positions ORDER BY 1, 2, 3, 4"
        ),
    }


def b32(text: str) -> str:
    return base64.b32encode(text.encode()).decode().rstrip("=")
