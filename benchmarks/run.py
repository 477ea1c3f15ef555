"""`make bench`: Utfall's throughput and latency on this machine, each beside a raw aiokafka baseline measured
in the same run on the same broker. Prints a table and writes JSON under results/. `--smoke` is a tiny run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tqdm import tqdm

from tests.webhook_receiver import WebhookReceiver, webhook_env
from utfall_events.topics import CARE_EVENTS, OUTCOMES_V2, raw_topic
from utfall_platform.apikeys import generate_key, publish_keys
from utfall_platform.clock import SystemClock
from utfall_platform.kafka_access import KafkaAccess
from utfall_platform.kafka_acl import KafkaProvisioner, new_password
from utfall_platform.local.postgres import LocalPostgres
from utfall_platform.local.stack import LocalStack
from utfall_platform.registry import publish_providers
from utfall_synthetic.cli import raw_record
from utfall_synthetic.cohort import CohortConfig, generate, renamed
from utfall_synthetic.registry import providers_of

from . import profile
from .load import ResourceSampler, open_loop, percentile, published_records

ROOT = Path(__file__).resolve().parents[1]
FLOOR_TOPIC = "bench.floor.v1"
SIZES = {
    "full": {
        "floor": 200_000,
        "http": 60_000,
        "raw": 60_000,
        "pipeline_seconds": 60,
        "latency_rate": 500,
        "latency_target_rate": 2000,
        "latency_seconds": 30,
        "gateway_rps": 500,
        "gateway_seconds": 20,
        "rebuild": 1_000_000,
        "register_rows": 100_000,
    },
    "medium": {
        "floor": 50_000,
        "http": 20_000,
        "raw": 20_000,
        "pipeline_seconds": 20,
        "latency_rate": 500,
        "latency_target_rate": 2000,
        "latency_seconds": 10,
        "gateway_rps": 500,
        "gateway_seconds": 10,
        "rebuild": 200_000,
        "register_rows": 30_000,
    },
    "smoke": {
        "floor": 5_000,
        "http": 2_000,
        "raw": 2_000,
        "pipeline_seconds": 4,
        "latency_rate": 100,
        "latency_target_rate": 200,
        "latency_seconds": 4,
        "gateway_rps": 50,
        "gateway_seconds": 3,
        "rebuild": 20_000,
        "register_rows": 2_000,
    },
}


def events_for(n: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    """About n provider events from a seeded cohort, providers renamed so each step's data stays apart."""
    subjects = max(20, int(n / 3.9))
    cohort = generate(CohortConfig(subjects=subjects, seed=seed, today=date(2026, 10, 31)))
    return renamed(cohort.events[:n], prefix=f"{prefix}-", id_prefix=f"{prefix}-")


async def register_providers(kafka: KafkaAccess, events: list[dict[str, Any]]) -> None:
    """Register every provider the events name, as an operator would before they may send."""
    await publish_providers(kafka, providers_of(events, SystemClock().now()))


async def keys_for(kafka: KafkaAccess, events: list[dict[str, Any]]) -> dict[str, str]:
    await register_providers(kafka, events)
    providers = sorted({e["source"].split("/", 1)[1] for e in events})
    new = [generate_key("provider", now=SystemClock().now(), provider_id=p) for p in providers]
    await publish_keys(kafka, [k.record for k in new])
    return {p: k.secret for p, k in zip(providers, new, strict=True)}


async def produce_all(
    kafka: KafkaAccess, topic: str, records: list[Any], *, desc: str, progress: bool
) -> float:
    producer = AIOKafkaProducer(
        **kafka.client_options(),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        compression_type="lz4",
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for key, value, headers in tqdm(
            records, desc=desc, disable=not progress, file=sys.stderr, unit="msg"
        ):
            pending.append(await producer.send(topic, value, key=key, headers=headers))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def floor(kafka: KafkaAccess, records: list[Any], progress: bool) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        if FLOOR_TOPIC not in await admin.list_topics():
            await admin.create_topics([NewTopic(FLOOR_TOPIC, 6, 1)])
    finally:
        await admin.close()
    produce_seconds = await produce_all(kafka, FLOOR_TOPIC, records, desc="floor: produce", progress=progress)
    consumer = AIOKafkaConsumer(
        FLOOR_TOPIC,
        **kafka.client_options(),
        group_id=f"bench-floor-{time.time()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=8 * 2**20,
    )
    await consumer.start()
    started = time.perf_counter()
    seen = 0
    try:
        while seen < len(records):
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for values in batch.values():
                for record in values:
                    orjson.loads(record.value)  # the same decoding work a consumer minimally does
                seen += sum(len(v) for v in batch.values())
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()
    consume_seconds = time.perf_counter() - started
    produce_rate, consume_rate = len(records) / produce_seconds, len(records) / consume_seconds
    return {
        "messages": len(records),
        "produce_per_s": round(produce_rate),
        "consume_per_s": round(consume_rate),
        "floor_per_s": round(min(produce_rate, consume_rate)),
    }


def note(message: str) -> None:
    """A progress line, on a terminal or not (a CI log shows where a long run is)."""
    print(f"[bench {datetime.now(UTC).strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_report(report: dict[str, Any], path: Path) -> None:
    """The JSON as measured so far, replaced atomically: a run that dies keeps every finished step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(report, indent=2, default=str))
    partial.replace(path)


class StepLog(dict[str, Any]):
    """The steps measured so far: each is written to the JSON file and announced as it completes."""

    def __init__(self, report: dict[str, Any], path: Path) -> None:
        super().__init__()
        self.report = report
        self.path = path

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        figures = {k: v for k, v in value.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        note(f"{key} done: " + ", ".join(f"{k} {v}" for k, v in list(figures.items())[:6]))
        write_report(self.report, self.path)


TRANSIENT = (httpx.TransportError,)


async def post_retrying(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    errors: list[str],
    attempts: int = 4,
) -> httpx.Response | None:
    """POST, retrying a transient client error (a reset connection, a read error) with a short backoff;
    each one is counted in `errors`. None if every attempt failed: the caller counts the batch as lost."""
    for attempt in range(attempts):
        try:
            return await client.post(url, content=content, headers=headers)
        except TRANSIENT as exc:
            errors.append(type(exc).__name__)
            await asyncio.sleep(0.2 * 2**attempt)
    return None


async def http_ingest(
    urls: list[str], keys: dict[str, str], events: list[dict[str, Any]], progress: bool, concurrency: int = 4
) -> dict[str, Any]:
    """Batches of 1000 over `concurrency` connections per ingest replica, as a load balancer spreads them."""
    by_provider: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_provider.setdefault(e["source"].split("/", 1)[1], []).append(e)
    # Providers' batches interleaved, as from providers posting at once: one provider's batches are admitted
    # one at a time (ingest locks its source), so a queue of one provider's batches after another's measured
    # that lock, not the throughput (medium runs of the same code: 6,931 events/s in provider order, 9,901
    # interleaved).
    per_provider = [
        [(p, items[i : i + 1000]) for i in range(0, len(items), 1000)] for p, items in by_provider.items()
    ]
    batches = [b for round_ in itertools.zip_longest(*per_provider) for b in round_ if b is not None]
    queue: asyncio.Queue[tuple[str, list[dict[str, Any]]]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    bar = tqdm(total=len(events), desc="HTTP ingest", disable=not progress, file=sys.stderr, unit="ev")
    accepted = 0

    errors: list[str] = []
    lost = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal accepted, lost
        while not queue.empty():
            provider, items = queue.get_nowait()
            body = orjson.dumps(items)
            response = await post_retrying(
                client,
                "/v1/events",
                content=body,
                headers={
                    "content-type": "application/cloudevents-batch+json",
                    "authorization": f"Bearer {keys[provider]}",
                },
                errors=errors,
            )
            if response is None:
                lost += len(items)
                continue
            response.raise_for_status()
            accepted += response.json()["accepted"]
            bar.update(len(items))

    started = time.perf_counter()
    clients = [httpx.AsyncClient(base_url=url, timeout=120) for url in urls]
    try:
        await asyncio.gather(*(worker(client) for client in clients for _ in range(concurrency)))
    finally:
        for client in clients:
            await client.aclose()
    seconds = time.perf_counter() - started
    bar.close()
    return {
        "events": len(events),
        "accepted": accepted,
        "seconds": round(seconds, 2),
        "events_per_s": round(len(events) / seconds),
        "batch": 1000,
        "replicas": len(urls),
        "concurrency": concurrency * len(urls),
        "client_errors_retried": len(errors),
        "events_not_sent": lost,
    }


async def publish_bench_contract(
    kafka: KafkaAccess, providers: list[str], contract_id: str = "bench-pipeline"
) -> None:
    from utfall_events.contracts import ContractDefinitionV1
    from utfall_events.topics import CONTRACT_COMMANDS

    definition = ContractDefinitionV1.model_validate(
        {
            "contract_id": contract_id,
            "name": "benchmark",
            "commissioner_municipality": "0180",
            "funder": "bench",
            "provider_ids": providers,
            "cohort": {
                "care_types": ["hvb", "family_home", "supported_housing", "sis"],
                "min_age": 0,
                "max_age": 20,
                "enrolment_from": "2000-01-01",
                "enrolment_to": "2030-12-31",
            },
            "milestones": [
                {"milestone_id": "planned", "measure_id": "planned_discharge", "price_ore": 100_000},
                {
                    "milestone_id": "no-replacement-12m",
                    "measure_id": "no_replacement_12m",
                    "price_ore": 200_000,
                },
            ],
            "per_participant_cap_ore": 10**12,
            "total_cap_ore": 10**13,  # the largest a contract may hold (MAX_AMOUNT_ORE)
        }
    )
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            CONTRACT_COMMANDS, definition.model_dump_json().encode(), key=contract_id.encode()
        )
    finally:
        await producer.stop()


async def raw_senders(
    kafka: KafkaAccess, events: list[dict[str, Any]]
) -> dict[str, tuple[KafkaAccess, list[Any]]]:
    """Register the events' providers and give each its Kafka principal, as an operator would; each provider's
    records then go to its own raw topic as itself. Ingest's pattern subscription picks the topics up."""
    await register_providers(kafka, events)
    by_provider: dict[str, list[Any]] = {}
    for e in events:
        by_provider.setdefault(e["source"].split("/", 1)[1], []).append((b"k", *raw_record(e)))
    provisioner = KafkaProvisioner(kafka)
    senders = {
        p: (await provisioner.provision_provider(p, new_password()), r) for p, r in by_provider.items()
    }
    await asyncio.sleep(3)  # ingest's metadata refresh (1 s here) and the rebalance onto the new topics
    return senders


async def through_raw_topic(
    conn: asyncpg.Connection,
    senders: dict[str, tuple[KafkaAccess, list[Any]]],
    events: list[dict[str, Any]],
    label: str,
    progress: bool,
) -> None:
    """Produce provider events to their raw topics; return when ingest has received every one of them."""
    await asyncio.gather(
        *(
            produce_all(access, raw_topic(p).name, records, desc=f"{label}: produce {p}", progress=progress)
            for p, (access, records) in senders.items()
        )
    )
    await wait_for(
        conn,
        "SELECT count(*) FROM ingest.received_events WHERE source = ANY($1)",
        (sorted({e["source"] for e in events}),),
        len({(e["source"], e["id"]) for e in events}),
        desc=f"{label}: ingest",
        progress=progress,
    )


async def count(conn: asyncpg.Connection, sql: str, *args: Any) -> int:
    return int(await conn.fetchval(sql, *args))


async def wait_for(
    conn: asyncpg.Connection,
    sql: str,
    args: tuple[Any, ...],
    target: int,
    *,
    desc: str,
    progress: bool,
    timeout: float = 3600,
) -> float:
    started = time.perf_counter()
    bar = tqdm(total=target, desc=desc, disable=not progress, file=sys.stderr, unit="ev")
    done = 0
    pause = 0.2
    while done < target:
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{desc}: {done} of {target} after {timeout}s")
        await asyncio.sleep(pause)
        now = await count(conn, sql, *args)
        bar.update(now - done)
        # The count scans a growing table on the Postgres the pipeline runs on (a twentieth of its statement
        # time when polled every 200 ms): far from the target, poll less often; near it, every 100 ms.
        rate = now / max(1e-3, time.perf_counter() - started)
        pause = min(1.0, max(0.1, (target - now) / max(rate, 1.0) / 3))
        done = now
    bar.close()
    return time.perf_counter() - started


async def outbox_empty(conn: asyncpg.Connection, schema: str) -> bool:
    # one probe of the primary key: polling with count(*) would scan the table, dead rows and all
    return bool(await conn.fetchval(f'SELECT NOT EXISTS (SELECT 1 FROM "{schema}".outbox)'))


async def until_projected(conn: asyncpg.Connection, sources: list[str], *, desc: str, progress: bool) -> None:
    """Wait until measures has stored every event ingest accepted from these sources."""
    accepted = await count(
        conn,
        "SELECT count(*) FROM ingest.received_events WHERE source = ANY($1) AND status = 'accepted'",
        sources,
    )
    await wait_for(
        conn,
        "SELECT count(*) FROM measures.events WHERE source = ANY($1)",
        (sources,),
        accepted,
        desc=desc,
        progress=progress,
    )


async def caught_up(
    conn: asyncpg.Connection, kafka: KafkaAccess, consumer: str, schema: str, topic: str
) -> bool:
    client = AIOKafkaConsumer(**kafka.client_options(), isolation_level="read_committed")
    await client.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(client.partitions_for_topic(topic) or [])]
        if not tps:
            await client._client.force_metadata_update()
            tps = [TopicPartition(topic, p) for p in sorted(client.partitions_for_topic(topic) or [])]
        ends = await client.end_offsets(tps)
    finally:
        await client.stop()
    rows = await conn.fetch(
        f"SELECT partition, next_offset FROM {schema}.consumer_positions WHERE consumer = $1", consumer
    )
    done = {r["partition"]: r["next_offset"] for r in rows}
    # a committed transaction leaves a marker after its last record: within 2 of the end is caught up
    return all(ends[tp] - done.get(tp.partition, 0) <= 2 for tp in tps)


async def drain(conn: asyncpg.Connection, progress: bool) -> None:
    """Wait until measures has projected every event ingest accepted (before the next step is timed)."""
    accepted = await count(conn, "SELECT count(*) FROM ingest.received_events WHERE status = 'accepted'")
    await wait_for(
        conn, "SELECT count(*) FROM measures.events", (), accepted, desc="drain", progress=progress
    )


async def pipeline_step(
    stack: LocalStack,
    conn: asyncpg.Connection,
    pids: dict[str, int],
    floor_rate: float,
    n: int,
    *,
    seed: int,
    prefix: str,
    profiled: tuple[str, ...],
    progress: bool,
) -> dict[str, Any]:
    """Raw events of new providers (enrolled by a contract of their own) through ingest, measures and contracts
    to payments on payments.v1, timed from the first produced record until every outbox is empty."""
    events = events_for(n, seed, prefix)
    contract_id = "bench-pipeline" if prefix == "pl" else f"bench-pipeline-{prefix}"
    await publish_bench_contract(
        stack.admin, sorted({e["source"].split("/", 1)[1] for e in events}), contract_id
    )
    senders = await raw_senders(stack.admin, events)
    sources = sorted({e["source"] for e in events})
    targets = {name: pids[name] for name in profiled}
    if targets:
        profile.toggle(targets)
    with ResourceSampler(pids) as sampler:
        started = time.perf_counter()
        await through_raw_topic(conn, senders, events, f"pipeline {prefix}", progress)
        await until_projected(conn, sources, desc=f"pipeline {prefix}: measures", progress=progress)
        while not (
            await outbox_empty(conn, "measures")
            and await caught_up(conn, stack.admin, "contracts-outcomes-v2", "contracts", OUTCOMES_V2)
            and await outbox_empty(conn, "contracts")
        ):
            await asyncio.sleep(0.2)
        seconds = time.perf_counter() - started
    if targets:
        profile.toggle(targets)
    payments = await count(conn, "SELECT count(*) FROM contracts.ledger WHERE contract_id = $1", contract_id)
    await asyncio.sleep(5)  # let the tail of the pipeline (payments relayed) settle before the next step
    rate = len(events) / seconds
    return {
        # the ratio first: absolute rates move with the machine, the ratio to the raw floor holds
        "ratio_to_floor": round(rate / floor_rate, 3),
        "events": len(events),
        "seconds": round(seconds, 1),
        "events_per_s": round(rate),
        "replicas": sum(1 for s in stack.services.values() if s.kind == "measures"),
        "ledger_entries_total": payments,
        "resources": sampler.summary(),
    }


async def webhook_step(
    stack: LocalStack, conn: asyncpg.Connection, contract_id: str, pipeline: dict[str, Any]
) -> dict[str, Any]:
    """Every ledger entry of the pipeline step's contract delivered as a Standard Webhooks request to one https
    receiver that verifies each, timed from the endpoint's registration to its last acknowledgement; beside the
    rate the pipeline determined them at (one endpoint takes the contract's messages one at a time, in order)."""
    from utfall_events.topics import CONTRACT_COMMANDS
    from utfall_events.webhooks import RegisterWebhookV1, WebhookCommandV1
    from utfall_gateway.routes.webhooks import new_secret

    secret = new_secret()
    receiver = WebhookReceiver(secrets=[secret])
    await receiver.start()
    try:
        entries = await count(
            conn, "SELECT count(*) FROM contracts.ledger WHERE contract_id = $1", contract_id
        )
        command = RegisterWebhookV1(
            command_id=str(uuid.uuid4()),
            contract_id=contract_id,
            key_id="bench",
            requested_at=datetime.now(UTC),
            endpoint_id=str(uuid.uuid4()),
            url=receiver.url,
            secret=secret,
        )
        producer = AIOKafkaProducer(**stack.admin.client_options())
        await producer.start()
        try:
            started = time.perf_counter()
            await producer.send_and_wait(
                CONTRACT_COMMANDS,
                WebhookCommandV1(command).model_dump_json().encode(),
                key=contract_id.encode(),
            )
        finally:
            await producer.stop()
        while len(receiver.unique()) < entries:
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
    finally:
        await receiver.stop()
    payments_per_s = pipeline["ledger_entries_total"] / pipeline["seconds"] if pipeline["seconds"] else 0.0
    rate = entries / seconds
    return {
        # above 1: one endpoint takes the payments faster than the pipeline makes them
        "ratio_to_pipeline_payments": round(rate / payments_per_s, 3) if payments_per_s else None,
        "messages": entries,
        "seconds": round(seconds, 2),
        "deliveries_per_s": round(rate),
        "pipeline_payments_per_s": round(payments_per_s),
        "duplicates": receiver.duplicates,
        "refused_signatures": receiver.refused_signatures,
    }


async def with_replicas(
    stack: LocalStack,
    conn: asyncpg.Connection,
    pids: dict[str, int],
    report: dict[str, Any],
    floor_rate: float,
    pipeline_size: int,
    replicas: int,
    progress: bool,
) -> None:
    """HTTP ingest and the pipeline again, with `replicas` processes of ingest, measures and contracts."""
    loop = asyncio.get_running_loop()
    added = [
        stack.add_replica(kind) for kind in ("ingest", "measures", "contracts") for _ in range(replicas - 1)
    ]
    for name in added:
        stack.start_service(name)
    await loop.run_in_executor(None, stack.wait_ready, tuple(added))
    for name in added:
        proc = stack.services[name].proc
        assert proc is not None
        pids[name] = proc.pid
    await asyncio.sleep(5)  # the consumer groups rebalance onto the new members
    size = SIZES[report["mode"]]
    http_events = events_for(size["http"], 18, "h2")
    keys = await keys_for(stack.admin, http_events)
    urls = [s.url for s in stack.services.values() if s.kind == "ingest"]
    with ResourceSampler(pids) as sampler:
        result = await http_ingest(urls, keys, http_events, progress)
    report["steps"][f"http_ingest_{replicas}_replicas"] = {
        "ratio_to_floor": round(result["events_per_s"] / floor_rate, 3),
        **result,
        "resources": sampler.summary(),
    }
    await drain(conn, progress)
    report["steps"][f"pipeline_{replicas}_replicas"] = await pipeline_step(
        stack, conn, pids, floor_rate, pipeline_size, seed=19, prefix="p2", profiled=(), progress=progress
    )


def register_rows(events: list[dict[str, Any]], n: int, *, bad_every: int = 0) -> list[dict[str, Any]]:
    """`n` register rows about the people of `events`: each placement, then school statuses on the first of
    each month after it, round the people until there are `n`. With `bad_every`, every such row is malformed
    (an impossible check digit), the rest are good."""
    people = list(
        {
            (e["data"]["provider_id"], e["data"]["episode_id"]): (e["data"]["person_id"], e["data"])
            for e in events
            if e["type"].endswith("placement.started.v1")
        }.values()
    )
    rows: list[dict[str, Any]] = []
    month = 0
    while len(rows) < n:
        for person_id, data in people:
            if len(rows) >= n:
                break
            i = len(rows)
            if month == 0:
                row = {
                    "record_id": f"p-{data['provider_id']}-{data['episode_id']}",
                    "kind": "placement",
                    "person_id": person_id,
                    "start_date": data["start_date"],
                    "care_type": data["care_type"],
                    "municipality_code": data["municipality_code"],
                }
            else:
                on = date(2020 + month // 12, month % 12 + 1, 1)
                row = {
                    "record_id": f"s-{data['provider_id']}-{data['episode_id']}-{month}",
                    "kind": "status",
                    "person_id": person_id,
                    "on_date": on.isoformat(),
                    "status": ("enrolled", "employed", "none")[i % 3],
                }
            if bad_every and i % bad_every == 0:
                row["person_id"] = person_id[:-1] + str((int(person_id[-1]) + 1) % 10)
            rows.append(row)
        month += 1
    return rows


async def register_extract_step(
    stack: LocalStack,
    conn: asyncpg.Connection,
    pids: dict[str, int],
    events: list[dict[str, Any]],
    n: int,
    progress: bool,
) -> dict[str, Any]:
    """A national-sized register extract: posted as one JSON body, receipted row by row, then folded into
    verified facts; and a malformed one of the same size (every tenth row bad), answered with its reasons."""
    register = "bench-register"
    key = generate_key("register", now=SystemClock().now(), register_id=register, label="bench")
    await publish_keys(stack.admin, [key.record])
    municipalities = sorted(
        {e["data"]["municipality_code"] for e in events if "municipality_code" in e["data"]}
    )
    today = date.today().isoformat()
    out: dict[str, Any] = {"rows": n}
    url = stack.services["ingest"].url
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        for name, rows, extract_id in (
            ("good", register_rows(events, n), "bench-1"),
            ("malformed", register_rows(events, n, bad_every=10), "bench-2"),
        ):
            body = orjson.dumps(
                {
                    "extract_id": extract_id,
                    "as_of": today,
                    "coverage": {
                        "municipalities": municipalities,
                        "kinds": ["placement", "status", "exclusion"],
                        "covers_from": "2015-01-01",
                        "covers_through": today,
                    },
                    "records": rows,
                }
            )
            for _ in range(60):  # the key reaches ingest's key store within a second or two
                with ResourceSampler(pids) as sampler:
                    started = time.perf_counter()
                    answer = await http.post(
                        "/v1/registers/extracts",
                        content=body,
                        headers={"authorization": f"Bearer {key.secret}", "content-type": "application/json"},
                    )
                    receipted = time.perf_counter() - started
                    if answer.status_code != 401:
                        break
                await asyncio.sleep(0.5)
            answer.raise_for_status()
            counts = answer.json()["counts"]
            step: dict[str, Any] = {
                "bytes": len(body),
                "receipted_seconds": round(receipted, 2),
                "counts": counts,
            }
            if name == "good":
                stored = await wait_for(
                    conn,
                    "SELECT count(*) FROM measures.register_records WHERE register_id = $1",
                    (register,),
                    counts.get("accepted", 0),
                    desc="register rows folded",
                    progress=progress,
                )
                # rows are stored and their subjects re-folded in one transaction: counted, they are folded
                step["folded_seconds"] = round(receipted + stored, 2)
                step["rows_per_s"] = round(n / (receipted + stored))
            step["resources"] = sampler.summary()
            out[name] = step
    return out


async def main_async(args: argparse.Namespace, report: dict[str, Any]) -> dict[str, Any]:
    mode = report["mode"]
    size = SIZES[mode]
    progress = not args.no_progress and sys.stderr.isatty()
    base = Path(tempfile.mkdtemp(prefix="utfall-bench-"))
    log = (base / "services.log").open("w")
    extra_env = {
        "UTFALL_LOG_LEVEL": "WARNING",
        "UTFALL_TICK_SECONDS": "3600",
        "UTFALL_KAFKA_METADATA_MAX_AGE_MS": "1000",
        **webhook_env(),  # step 3b's receiver: a local https server with a throwaway CA
    }
    profile_dir = base / "profiles"
    if args.profile:
        extra_env["UTFALL_PROFILE_DIR"] = str(profile_dir)
    stack = LocalStack(
        base,
        durable=not args.smoke,
        log_sink=log,
        extra_env=extra_env,
        postgres_settings=profile.POSTGRES_SETTINGS if args.profile else (),
    )
    loop = asyncio.get_running_loop()
    print(f"starting the stack in {base} ...", file=sys.stderr, flush=True)
    await loop.run_in_executor(None, stack.start)
    assert stack.kafka is not None and isinstance(stack.postgres, LocalPostgres)
    pids = {name: svc.proc.pid for name, svc in stack.services.items() if svc.proc}
    kafka_node = stack.kafka.nodes[0].proc
    pids["kafka"] = kafka_node.pid if kafka_node else 0
    pg_pid = int((stack.postgres.data_dir / "postmaster.pid").read_text().split()[0])
    pids["postgres"] = pg_pid
    conn = await asyncpg.connect(stack.database_url)
    try:
        # 1. the floor: raw aiokafka on the same broker, the same messages, no validation, no database
        note("step 1: the floor")
        floor_events = events_for(size["floor"], 11, "fl")
        with ResourceSampler(pids) as sampler:
            result = await floor(stack.admin, [(b"k", *raw_record(e)) for e in floor_events], progress)
        report["steps"]["floor"] = {**result, "resources": sampler.summary()}
        floor_rate = result["floor_per_s"]

        # 2a. HTTP ingest, batched
        note("step 2a: HTTP ingest, batched")
        http_events = events_for(size["http"], 12, "ht")
        keys = await keys_for(stack.admin, http_events)
        with ResourceSampler(pids) as sampler:
            result = await http_ingest([stack.services["ingest"].url], keys, http_events, progress)
        report["steps"]["http_ingest"] = {
            "ratio_to_floor": round(result["events_per_s"] / floor_rate, 3),
            **result,
            "resources": sampler.summary(),
        }

        # 2b. Kafka raw-topic ingest: produce, then time until ingest has received every event
        note("step 2b: Kafka raw-topic ingest")
        raw_events = events_for(size["raw"], 13, "rw")
        senders = await raw_senders(stack.admin, raw_events)
        with ResourceSampler(pids) as sampler:
            started = time.perf_counter()
            await through_raw_topic(conn, senders, raw_events, "raw topic", progress)
            seconds = time.perf_counter() - started
        report["steps"]["raw_topic_ingest"] = {
            "ratio_to_floor": round(len(raw_events) / seconds / floor_rate, 3),
            "events": len(raw_events),
            "seconds": round(seconds, 2),
            "events_per_s": round(len(raw_events) / seconds),
            "resources": sampler.summary(),
        }
        # let the pipeline drain what steps 2a and 2b started before timing the pipeline
        await drain(conn, progress)

        # 3. the full pipeline, raw event to payment, sustained; a contract enrols the pipeline's providers
        note("step 3: the full pipeline, raw event to payment, sustained")
        rate_guess = max(200, report["steps"]["raw_topic_ingest"]["events_per_s"] // 2)
        pipeline_size = max(size["raw"], int(rate_guess * size["pipeline_seconds"] * 1.1))
        if args.profile:
            await profile.reset_statements(stack.postgres.dsn(role="postgres"))
        report["steps"]["pipeline"] = await pipeline_step(
            stack,
            conn,
            pids,
            floor_rate,
            pipeline_size,
            seed=14,
            prefix="pl",
            profiled=("ingest", "measures", "contracts") if args.profile else (),
            progress=progress,
        )
        if args.profile:
            dumps = await loop.run_in_executor(
                None, profile.wait_for_dumps, profile_dir, ["contracts", "ingest", "measures"]
            )
            report["profile"] = {d.stem.rsplit("-", 1)[0]: profile.summarise(d) for d in dumps}
            report["postgres_statements"] = await profile.top_statements(stack.postgres.dsn(role="postgres"))
            report["profile_files"] = [str(d) for d in dumps]

        # 3b. the pipeline's payments as signed webhooks to one https receiver, against the rate they were made
        note("step 3b: the pipeline's payments delivered as webhooks")
        report["steps"]["webhooks"] = await webhook_step(
            stack, conn, "bench-pipeline", report["steps"]["pipeline"]
        )

        # 4. latency at fixed offered loads: accepted by ingest -> committed in the measures read model; at a
        note("step 4: latency at fixed offered loads")
        # sustainable rate, and at the target rate
        for step, rate_key, seed in (
            ("latency", "latency_rate", 15),
            ("latency_target", "latency_target_rate", 17),
        ):
            report["steps"][step] = await latency_at(
                stack,
                conn,
                pids,
                rate=size[rate_key],
                seconds=size["latency_seconds"],
                seed=seed,
                prefix=f"l{seed}",
                progress=progress,
            )

        # 6. the gateway's results endpoint under a steady open-loop load: live and exact, as an operator reads
        # it (the public's answers are a release's cells, read from memory)
        note("step 6: the gateway's results endpoint under a steady open-loop load")
        operator = generate_key("operator", now=SystemClock().now(), label="bench")
        await publish_keys(stack.admin, [operator.record])
        params = [
            {"group_by": g}
            for g in (
                "provider_id",
                "target_group",
                "provider_id,target_group",
                "sex,age_band",
                "county_code",
            )
        ]
        url = stack.services["gateway"].url + "/v1/measures/planned_discharge/results"
        with ResourceSampler(pids) as sampler:
            result = await gateway_load(
                url,
                params,
                rate=size["gateway_rps"],
                seconds=size["gateway_seconds"],
                headers={"authorization": f"Bearer {operator.secret}"},
            )
        report["steps"]["gateway_results"] = {
            **result,
            "offered_rps": size["gateway_rps"],
            "cache_seconds": 1.0,
            "resources": sampler.summary(),
        }

        # 6b. what the audit trail costs: the same load on the gateway with the trail and on another gateway
        # process without it, twice each, alternating, so drift in the machine falls on both
        note("step 6b: the audit trail's cost on an exact read (a gateway with the trail and one without)")
        report["steps"]["audit_trail"] = await audit_trail_step(
            stack, conn, url, params, operator.secret, size["gateway_rps"], size["gateway_seconds"]
        )

        # 8. a national-sized register extract, over the people of step 2a
        note("step 8: a register extract, receipted and folded into verified facts")
        report["steps"]["register_extract"] = await register_extract_step(
            stack, conn, pids, http_events, size["register_rows"], progress
        )

        # 7. HTTP ingest and the pipeline again with more replicas, beside the figures of one
        if args.replicas > 1:
            note(
                f"step 7: HTTP ingest and the pipeline with {args.replicas} replicas of each consuming service"
            )
            await with_replicas(stack, conn, pids, report, floor_rate, pipeline_size, args.replicas, progress)

        # 5. rebuild of the measures projection from care.events.v1, topped up to the target size
        note("step 5: rebuild of the measures projection from care.events.v1, topped up to the target size")
        for name, svc in list(stack.services.items()):
            if svc.kind in ("measures", "contracts"):
                await loop.run_in_executor(None, stack.stop_service, name)
        present = await count(conn, "SELECT count(*) FROM measures.events")
        missing = size["rebuild"] - present
        if missing > 0:
            top_up = list(published_records(events_for(missing, 16, "rb")))
            await produce_all(
                stack.admin, CARE_EVENTS, top_up, desc="rebuild: fill care.events.v1", progress=progress
            )
            del top_up
        # as an operator runs it: its own process (and its fold workers), the measures principal and database
        command = [sys.executable, "-m", "utfall_measures.rebuild", "--json"]
        rebuilding = await asyncio.create_subprocess_exec(
            *command,
            *([] if progress else ["--no-progress"]),
            env=stack.service_env("measures"),
            stdout=asyncio.subprocess.PIPE,
        )
        with ResourceSampler(
            {"postgres": pg_pid, "kafka": pids["kafka"], "rebuild": rebuilding.pid}
        ) as sampler:
            output, _ = await rebuilding.communicate()
        if rebuilding.returncode != 0:
            raise RuntimeError(f"the rebuild failed (exit code {rebuilding.returncode}); its error is above")
        result = json.loads(output.splitlines()[-1])
        report["steps"]["rebuild"] = {
            "records": result["records"],
            "events": result["events"],
            "subjects": result["subjects"],
            "workers": result["workers"],
            "seconds": round(result["seconds"], 1),
            "replay_seconds": round(result["replay_seconds"], 1),
            "fold_seconds": round(result["fold_seconds"], 1),
            "events_per_s": round(result["records"] / result["seconds"]) if result["seconds"] else None,
            "resources": sampler.summary(),
        }
    finally:
        await conn.close()
        await loop.run_in_executor(None, stack.stop)
        log.close()
    # 9. the pipeline again on a cluster (three brokers, a synchronous standby), beside the single node's figure
    if args.brokers > 1:
        note(f"step 9: the pipeline on {args.brokers} brokers and a PostgreSQL with a synchronous standby")
        report["steps"]["pipeline_cluster"] = await cluster_pipeline_step(
            args,
            base / "cluster",
            extra_env,
            floor_rate,
            pipeline_size,
            report["steps"]["pipeline"],
            progress,
        )
    report["finished_at"] = datetime.now(UTC).isoformat()
    return report


async def cluster_pipeline_step(
    args: argparse.Namespace,
    base: Path,
    extra_env: dict[str, str],
    floor_rate: float,
    pipeline_size: int,
    single_node: dict[str, Any],
    progress: bool,
) -> dict[str, Any]:
    """Step 3 on a stack of its own whose Kafka is `args.brokers` nodes (every topic three replicas, two in sync)
    and whose PostgreSQL confirms a commit once its standby has it: what replication costs, as a ratio."""
    loop = asyncio.get_running_loop()
    with (base.parent / "cluster-services.log").open("w") as log:
        stack = LocalStack(
            base,
            durable=not args.smoke,
            log_sink=log,
            extra_env=extra_env,
            kafka_brokers=args.brokers,
            postgres_standby="sync",
        )
        await loop.run_in_executor(None, stack.start)
        try:
            assert stack.kafka is not None
            pids = {name: svc.proc.pid for name, svc in stack.services.items() if svc.proc}
            pids.update({f"kafka-{n.node_id}": n.proc.pid for n in stack.kafka.nodes if n.proc})
            conn = await asyncpg.connect(stack.database_url)
            try:
                result = await pipeline_step(
                    stack,
                    conn,
                    pids,
                    floor_rate,
                    pipeline_size,
                    seed=20,
                    prefix="pc",
                    profiled=(),
                    progress=progress,
                )
            finally:
                await conn.close()
        finally:
            await loop.run_in_executor(None, stack.stop)
    return {
        "ratio_to_single_node": round(result["events_per_s"] / single_node["events_per_s"], 3),
        "brokers": args.brokers,
        "postgres_standby": "sync",
        **result,
    }


async def latency_at(
    stack: LocalStack,
    conn: asyncpg.Connection,
    pids: dict[str, int],
    *,
    rate: int,
    seconds: int,
    seed: int,
    prefix: str,
    progress: bool,
) -> dict[str, Any]:
    """End-to-end latency at a fixed offered load over HTTP: ingest accepted -> committed in measures."""
    latency_events = events_for(int(rate * seconds), seed, prefix)
    lkeys = await keys_for(stack.admin, latency_events)
    client_errors: list[str] = []
    sources = sorted({e["source"] for e in latency_events})
    with ResourceSampler(pids) as sampler:
        async with httpx.AsyncClient(
            base_url=stack.services["ingest"].url,
            timeout=httpx.Timeout(60.0, pool=None),
            limits=httpx.Limits(max_connections=128),  # providers post concurrently; do not queue them here
        ) as client:
            tick = 0.2  # a provider system sends what it has every 200 ms: 2,000 events/s is ~50 requests/s, not 200
            per_tick = max(1, int(rate * tick))
            begin = time.perf_counter()
            inflight = []
            for i in range(0, len(latency_events), per_tick):
                chunk = latency_events[i : i + per_tick]
                by_provider: dict[str, list[dict[str, Any]]] = {}
                for e in chunk:
                    by_provider.setdefault(e["source"].split("/", 1)[1], []).append(e)
                for provider, items in by_provider.items():
                    inflight.append(
                        asyncio.create_task(
                            post_retrying(
                                client,
                                "/v1/events",
                                content=orjson.dumps(items),
                                headers={
                                    "content-type": "application/cloudevents-batch+json",
                                    "authorization": f"Bearer {lkeys[provider]}",
                                },
                                errors=client_errors,
                            )
                        )
                    )
                delay = begin + (i // per_tick + 1) * tick - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            answers = await asyncio.gather(*inflight)
            offered = len(latency_events) / (time.perf_counter() - begin)
        if any(a is None for a in answers):
            # a batch that never got through: measure what did (the drain waits for accepted events only)
            note(f"latency at {rate}: {sum(a is None for a in answers)} batches not sent after retries")
        await until_projected(conn, sources, desc=f"latency at {rate}: drain", progress=progress)
    # An event that arrives before its episode's placement.started is held by ingest until the start arrives
    # (the synthetic providers send some late); its wait is the provider's order, not the pipeline's latency.
    # So latency counts from when an event could be published: its acceptance, or its start's if later.
    rows = await conn.fetch(
        "WITH starts AS (SELECT source, episode_id, min(received_at) AS at FROM ingest.received_events "
        "WHERE source = ANY($1) AND type = 'se.utfall.placement.started.v1' GROUP BY 1, 2) "
        "SELECT extract(epoch FROM m.projected_at - greatest(r.received_at, coalesce(st.at, r.received_at))) AS s, "
        "extract(epoch FROM m.projected_at - r.received_at) AS since_accepted, "
        "extract(epoch FROM r.received_at) AS at, coalesce(st.at > r.received_at, false) AS waited "
        "FROM measures.events m JOIN ingest.received_events r USING (source, event_id) "
        "LEFT JOIN starts st ON st.source = r.source AND st.episode_id = r.episode_id WHERE m.source = ANY($1)",
        sources,
    )
    lat = [float(r["s"]) for r in rows]
    since_accepted = [float(r["since_accepted"]) for r in rows]
    # when in the step the slow ones were accepted: a stall shows as a run of seconds with a high maximum
    first = min((float(r["at"]) for r in rows), default=0.0)
    per_second: dict[int, list[float]] = {}
    for r in rows:
        per_second.setdefault(int(float(r["at"]) - first), []).append(float(r["s"]))
    return {
        "by_second": [
            {"second": sec, "events": len(v), "max_ms": round(max(v) * 1000)}
            for sec, v in sorted(per_second.items())
        ],
        "offered_events_per_s": round(offered),
        "events": len(lat),
        "p50_ms": round((percentile(lat, 0.5) or 0) * 1000, 1),
        "p95_ms": round((percentile(lat, 0.95) or 0) * 1000, 1),
        "p99_ms": round((percentile(lat, 0.99) or 0) * 1000, 1),
        "held_for_their_placement": sum(1 for r in rows if r["waited"]),
        "p99_ms_since_accepted_incl_held": round((percentile(since_accepted, 0.99) or 0) * 1000, 1),
        "measured": "ingest accepted (or its placement.started accepted, if later) -> measures committed",
        "client_errors_retried": len(client_errors),
        "batches_not_sent": sum(a is None for a in answers),
        "resources": sampler.summary(),
    }


async def audit_trail_step(
    stack: LocalStack,
    conn: asyncpg.Connection,
    url: str,
    params: list[dict[str, str]],
    secret: str,
    rate: int,
    seconds: int,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    stack.extra_env["UTFALL_AUDIT_TRAIL_ENABLED"] = "false"
    untrailed = stack.add_replica("gateway")
    try:
        stack.start_service(untrailed)
    finally:
        del stack.extra_env["UTFALL_AUDIT_TRAIL_ENABLED"]
    await loop.run_in_executor(None, stack.wait_ready, (untrailed,))
    without_url = stack.services[untrailed].url + "/v1/measures/planned_discharge/results"
    headers = {"authorization": f"Bearer {secret}"}
    before = await count(conn, "SELECT count(*) FROM gateway.audit_entries")
    # what one durable commit costs on this machine with nothing else running (the floor under the held time),
    # and with every core kept busy at the lowest priority: what a commit meets when the stack is busy
    quiet_commit_ms = await commit_latency(conn, 300)
    with busy_cores():
        busy_commit_ms = await commit_latency(conn, 300)
    runs: dict[str, list[dict[str, Any]]] = {"with": [], "without": []}
    metrics_url = url.split("/v1/", 1)[0] + "/metrics"
    held_before = await held_histogram(metrics_url)
    commit_before = await held_histogram(metrics_url, "utfall_audit_commit_seconds")
    try:
        for _ in range(2):
            runs["without"].append(
                await gateway_load(without_url, params, rate=rate, seconds=seconds, headers=headers)
            )
            runs["with"].append(await gateway_load(url, params, rate=rate, seconds=seconds, headers=headers))
        held_after = await held_histogram(metrics_url)
        commit_after = await held_histogram(metrics_url, "utfall_audit_commit_seconds")
    finally:
        stack.stop_service(untrailed)
        del stack.services[untrailed]
    entries = await count(conn, "SELECT count(*) FROM gateway.audit_entries") - before
    answered = sum(r["requests"] for r in runs["with"])

    def worst(side: str, key: str) -> float:
        return max(float(r[key]) for r in runs[side])

    return {
        "offered_rps": rate,
        "p99_ms_with": worst("with", "p99_ms"),
        "p99_ms_without": worst("without", "p99_ms"),
        "p50_ms_with": worst("with", "p50_ms"),
        "p50_ms_without": worst("without", "p50_ms"),
        # the worse of two runs each side: what the trail adds at p99, at most
        "p99_added_ms": round(worst("with", "p99_ms") - worst("without", "p99_ms"), 2),
        # how long the answers were held for their entries (the gateway's own histogram, over this step):
        # what the trail adds to an answer besides the CPU it takes from a busy process
        "held_ms_p50_at_most": held_quantile(held_before, held_after, 0.5),
        "held_ms_p99_at_most": held_quantile(held_before, held_after, 0.99),
        # of which one batch's write and commit (the rest is the batch before it and the event loop)
        "commit_ms_p50_at_most": held_quantile(commit_before, commit_after, 0.5),
        "commit_ms_p99_at_most": held_quantile(commit_before, commit_after, 0.99),
        "quiet_commit_ms": quiet_commit_ms,
        "busy_cores_commit_ms": busy_commit_ms,
        "achieved_rps_with": min(float(r["achieved_rps"]) for r in runs["with"]),
        "entries_written": entries,
        "answers_with_trail": answered,
        "runs": runs,
    }


@contextlib.contextmanager
def busy_cores() -> Iterator[None]:
    """One spinning process per core at idle scheduling priority: it takes only CPU nothing else wants, so what
    slows a commit beside it is not the guest's scheduler (on a VM: the host's, or its disk's interrupts)."""
    import subprocess

    idle = ["chrt", "--idle", "0"] if shutil.which("chrt") else ["nice", "-n", "19"]
    spinners = [
        subprocess.Popen([*idle, sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)
    ]
    try:
        time.sleep(0.5)
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


async def commit_latency(conn: asyncpg.Connection, n: int) -> dict[str, float]:
    """n one-row commits, one at a time, on a scratch table: PostgreSQL's durable commit on this machine."""
    # a logged table: a temporary one writes no WAL, and its commit waits for no flush
    await conn.execute(
        "CREATE SCHEMA IF NOT EXISTS bench; CREATE TABLE IF NOT EXISTS bench.commit_probe (n int)"
    )
    took = []
    try:
        for i in range(n):
            started = time.perf_counter()
            await conn.execute("INSERT INTO bench.commit_probe VALUES ($1)", i)
            took.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.002)
    finally:
        await conn.execute("DROP SCHEMA bench CASCADE")
    return {"p50": round(percentile(took, 0.5) or 0.0, 3), "p99": round(percentile(took, 0.99) or 0.0, 3)}


async def held_histogram(metrics_url: str, metric: str = "utfall_audit_write_seconds") -> dict[float, float]:
    """One of the gateway's trail histograms' buckets (upper bound in s -> cumulative count)."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(metrics_url)).text
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(metric + "_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def held_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """The bucket bound (ms) under which a `q` share of the step's held answers fell."""
    counts = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return None
    for bound, cumulative in counts:
        if cumulative >= q * total:
            return None if bound == float("inf") else round(bound * 1000, 2)
    return None


async def gateway_load(
    url: str, params: list[dict[str, str]], *, rate: int, seconds: int, headers: dict[str, str]
) -> dict[str, Any]:
    """wrk (C, from Debian) paced to about `rate` requests/s across its connections; the Python open-loop
    generator when wrk is missing (it saturates a core by itself, so it understates the gateway)."""
    import shutil
    import subprocess
    from urllib.parse import urlencode

    wrk = shutil.which("wrk")
    if wrk is None:
        return {
            **await open_loop(url, rate=rate, seconds=seconds, params=params, headers=headers),
            "tool": "python",
        }
    connections = 10
    paths = [url.split("://", 1)[1].split("/", 1)[1] for _ in params]
    paths = ["/" + p + "?" + urlencode(q) for p, q in zip(paths, params, strict=True)]
    base = url.split("/v1/", 1)[0]
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:  # warm-up: fill the cache once
        for q in params:
            for _ in range(60):  # a new key reaches the gateway's key store within moments
                if (await client.get(url, params=q)).status_code != 401:
                    break
                await asyncio.sleep(0.5)

    def run_wrk(delay_ms: int, duration: int) -> dict[str, float]:
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(
            "local paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n"
            "local i = 0\n"
            "local headers = {" + ",".join(f'["{k}"]="{v}"' for k, v in headers.items()) + "}\n"
            "request = function() i = i + 1; return wrk.format('GET', paths[(i % #paths) + 1], headers) end\n"
            f"delay = function() return {delay_ms} end\n"
            "done = function(summary, latency, requests)\n"
            "  io.write(string.format('RESULT %d %d %f %f %f %f\\n', summary.requests, summary.errors.status,"
            " latency:percentile(50), latency:percentile(95), latency:percentile(99), summary.duration))\n"
            "end\n"
        )
        command = [wrk, "-t", "2", "-c", str(connections), "-d", f"{duration}s", "-s", str(script), base]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        line = next(line for line in out.splitlines() if line.startswith("RESULT"))
        requests, errors, p50, p95, p99, micros = (float(v) for v in line.split()[1:])
        return {
            "requests": requests,
            "errors": errors,
            "p50": p50,
            "p95": p95,
            "p99": p99,
            "seconds": micros / 1e6,
        }

    # wrk waits `delay` after each answer, so a connection's period is delay + answer time. A short
    # calibration run measures that time, and the delay is set so the offered rate is `rate`.
    loop = asyncio.get_running_loop()
    interval_ms = 1000 * connections / rate
    probe_delay = round(interval_ms)
    probe = await loop.run_in_executor(None, run_wrk, probe_delay, 3)
    period_ms = 1000 * connections * probe["seconds"] / max(probe["requests"], 1)
    delay_ms = max(0, round(interval_ms - (period_ms - probe_delay)))
    result = await loop.run_in_executor(None, run_wrk, delay_ms, seconds)
    requests, errors = int(result["requests"]), int(result["errors"])
    p50, p95, p99 = result["p50"], result["p95"], result["p99"]
    return {
        "tool": "wrk",
        "connections": connections,
        "delay_ms": delay_ms,
        "requests": requests,
        "errors": errors,
        "achieved_rps": round(requests / result["seconds"], 1),
        "p50_ms": round(p50 / 1000, 2),
        "p95_ms": round(p95 / 1000, 2),
        "p99_ms": round(p99 / 1000, 2),
    }


def table(report: dict[str, Any]) -> str:
    s = report["steps"]
    floor = s["floor"]["floor_per_s"]
    rows = [
        (
            "1 raw aiokafka floor (produce / consume)",
            f"{s['floor']['produce_per_s']:,} / {s['floor']['consume_per_s']:,} msg/s",
            "baseline",
        ),
        (
            "2 HTTP ingest, batches of 1000",
            f"{s['http_ingest']['events_per_s']:,} events/s",
            "target ≥ 15,000",
        ),
        *(
            (
                f"2 HTTP ingest, {key.split('_')[2]} replicas",
                f"{s[key]['events_per_s']:,} events/s",
                "",
            )
            for key in s
            if key.startswith("http_ingest_")
        ),
        ("2 Kafka raw-topic ingest", f"{s['raw_topic_ingest']['events_per_s']:,} events/s", ""),
        (
            "3 pipeline raw event -> payment",
            f"{s['pipeline']['events_per_s']:,} events/s over {s['pipeline']['seconds']}s"
            f" ({s['pipeline']['ratio_to_floor']:.1%} of floor {floor:,})",
            "target ≥ 6,000 and ≥ 12%",
        ),
        *(
            (
                "3b webhooks, one https endpoint",
                f"{s[key]['deliveries_per_s']:,} deliveries/s ({s[key]['ratio_to_pipeline_payments']}× the pipeline's "
                f"{s[key]['pipeline_payments_per_s']:,} payments/s)",
                "≥ 1×: keeps up",
            )
            for key in s
            if key == "webhooks"
        ),
        *(
            (
                f"3 pipeline, {s[key]['replicas']} replicas",
                f"{s[key]['events_per_s']:,} events/s over {s[key]['seconds']}s ({s[key]['ratio_to_floor']:.1%} of floor)",
                "",
            )
            for key in s
            if key.startswith("pipeline_") and key != "pipeline_cluster"
        ),
        *(
            (
                f"9 pipeline, {s[key]['brokers']} brokers + sync standby",
                f"{s[key]['events_per_s']:,} events/s over {s[key]['seconds']}s "
                f"({s[key]['ratio_to_single_node']:.1%} of the single node)",
                "",
            )
            for key in s
            if key == "pipeline_cluster"
        ),
        *(
            (
                f"4 latency accepted -> read model{label}",
                f"p50 {s[key]['p50_ms']} / p95 {s[key]['p95_ms']} / p99 "
                f"{s[key]['p99_ms']} ms at {s[key]['offered_events_per_s']:,} ev/s"
                f" ({s[key]['held_for_their_placement']:,} held for their placement)",
                "target p99 < 500 ms at 2,000",
            )
            for key, label in (("latency", ""), ("latency_target", ", target rate"))
        ),
        (
            "5 measures rebuild",
            f"{s['rebuild']['records']:,} records in {s['rebuild']['seconds']} s (replay "
            f"{s['rebuild'].get('replay_seconds')} s, fold {s['rebuild'].get('fold_seconds')} s in "
            f"{s['rebuild'].get('workers', 1)} workers), peak RSS "
            f"{s['rebuild']['resources'].get('rebuild', {}).get('rss_mb_max', 0):,.0f} MB",
            "target 1M < 60 s, < 2 GB",
        ),
        (
            "6 gateway results",
            f"p50 {s['gateway_results']['p50_ms']} / p99 {s['gateway_results']['p99_ms']} ms at "
            f"{s['gateway_results']['achieved_rps']} rps"
            + (
                " (Python load generator: install wrk)"
                if s["gateway_results"].get("tool") == "python"
                else ""
            ),
            "target p99 < 20 ms at 500",
        ),
        *(
            (
                "6b audit trail",
                f"p99 {s['audit_trail']['p99_ms_with']} ms with the trail, {s['audit_trail']['p99_ms_without']} ms "
                f"without: {s['audit_trail']['p99_added_ms']} ms added at {s['audit_trail']['offered_rps']} rps; "
                f"answers held for their entries: p50 ≤ {s['audit_trail']['held_ms_p50_at_most']} ms, p99 ≤ "
                f"{s['audit_trail']['held_ms_p99_at_most']} ms (the commit alone: p50 ≤ "
                f"{s['audit_trail'].get('commit_ms_p50_at_most')} ms, p99 ≤ "
                f"{s['audit_trail'].get('commit_ms_p99_at_most')} ms; one commit on the quiet machine: p50 "
                f"{s['audit_trail'].get('quiet_commit_ms', {}).get('p50')} ms, p99 "
                f"{s['audit_trail'].get('quiet_commit_ms', {}).get('p99')} ms, beside busy cores p50 "
                f"{s['audit_trail'].get('busy_cores_commit_ms', {}).get('p50')} ms); "
                f"{s['audit_trail']['entries_written']:,} entries for {s['audit_trail']['answers_with_trail']:,} "
                "answers",
                "target < 1 ms added at 500",
            )
            for _ in [1]
            if "audit_trail" in s
        ),
        *(
            (
                "8 register extract",
                f"{s['register_extract']['rows']:,} rows receipted in "
                f"{s['register_extract']['good']['receipted_seconds']} s, folded into verified facts in "
                f"{s['register_extract']['good']['folded_seconds']} s; the malformed one answered in "
                f"{s['register_extract']['malformed']['receipted_seconds']} s "
                f"({s['register_extract']['malformed']['counts'].get('rejected', 0):,} rows refused)",
                "target 100,000 < 60 s",
            )
            for _ in (1,)
            if "register_extract" in s
        ),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'step':<{width}}  result", "-" * (width + 60)]
    lines += [
        f"{name:<{width}}  {value}   [{target}]" if target else f"{name:<{width}}  {value}"
        for name, value, target in rows
    ]
    lines.append("")
    lines.append("CPU % (of one core) mean/max and RSS MB max per process:")
    for step, body in s.items():
        res = body.get("resources", {})
        lines.append(
            f"  {step:<17} "
            + "  ".join(
                f"{p} {v['cpu_pct_mean']:.0f}/{v['cpu_pct_max']:.0f}% {v['rss_mb_max']:.0f}MB"
                for p, v in sorted(res.items())
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (part of make test)")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile ingest, measures and contracts in the pipeline step"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="also measure HTTP ingest and the pipeline with this many replicas of ingest, measures and "
        "contracts, beside the figures of one (make bench: 2)",
    )
    parser.add_argument(
        "--brokers",
        type=int,
        choices=(1, 3),
        default=1,
        help="3: also run the pipeline on a three-broker Kafka and a PostgreSQL with a synchronous standby, as a "
        "ratio to the single node (make bench: 3)",
    )
    args = parser.parse_args()
    mode = "smoke" if args.smoke else args.size
    path = args.out / f"bench-{mode}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}.json"
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "mode": mode,
        "replicas": args.replicas,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    report["steps"] = StepLog(report, path)
    note(f"writing each step's result to {path} as it completes")
    try:
        asyncio.run(main_async(args, report))
    except BaseException as exc:
        # never end without the JSON of what was measured: the steps done, and why the run stopped
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["finished_at"] = datetime.now(UTC).isoformat()
        write_report(report, path)
        note(f"stopped early ({report['error']}); the steps measured are in {path}")
        raise
    kept = []
    for dump in map(Path, report.get("profile_files", [])):  # beside the JSON, for pstats/snakeviz
        target = path.with_name(f"{path.stem}-{dump.name}")
        shutil.copyfile(dump, target)
        kept.append(str(target))
    if kept:
        report["profile_files"] = kept
    path.write_text(json.dumps(report, indent=2))
    print(table(report))
    if "profile" in report:
        print(profile.text(report["profile"]))
    if "postgres_statements" in report:
        print(profile.statements_text(report["postgres_statements"]))
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
