"""The same cohort in three arrival orders, each into a fresh stack (ingest, measures, contracts as real
processes on real Kafka and Postgres), split over HTTP and the raw topic: as generated, reversed, and
adversarial (every correction before the retraction of the event it replaces, every re-placement after the
payments it undoes). The reversed order's contract is published on the commands topic halfway through the
stream; the others load it from a file first. Facts per episode and the net paid per participant must be the
same in every order and equal to tests/reference.py, computed from the specification; the contract's caps
bind."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import defaultdict
from datetime import date
from itertools import pairwise
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import yaml

from utfall_events.contracts import MAX_AMOUNT_ORE
from utfall_events.topics import CONTRACT_COMMANDS
from utfall_platform.kafka_access import KafkaAccess
from utfall_platform.local.stack import LocalStack
from utfall_synthetic.cli import raw_key, raw_record

from ..builders import EVERY_CARE_TYPE, contract_document
from ..helpers import create_key, produce, produce_raw, uid, wait_until
from ..infra import new_world
from ..orders import ORDERS, base_provider, cohort, for_run, over_kafka, phases
from ..reference import expected_facts, expected_participants, expected_payments

pytestmark = pytest.mark.asyncio(loop_scope="session")
SUBJECTS, SEED = 260, 20261202
TODAY = date.today()  # the services' clock: windows close by it, in the reference too
MILESTONES = {
    "planned_discharge": 100_000,
    "less_intensive_after": 50_000,
    "no_replacement_12m": 200_000,
    "education_or_work_12m": 150_000,
}
PER_PARTICIPANT_CAP = 300_000  # binds for a participant with three or more outcomes


def contract(contract_id: str, providers: list[str], total_cap: int) -> dict[str, Any]:
    return contract_document(
        contract_id,
        providers,
        MILESTONES,
        per_participant_cap_ore=PER_PARTICIPANT_CAP,
        total_cap_ore=total_cap,
        care_types=EVERY_CARE_TYPE,
        enrolment=("2000-01-01", "2030-12-31"),
        name="arrival orders",
        funder="order-fund",
    )


def pseudonym(secret: str) -> Any:
    def subject_of(person_id: str) -> str:
        mac = hmac.new(secret.encode(), person_id.replace("-", "").encode(), hashlib.sha256).digest()
        return "v1:" + base64.b32encode(mac).decode().rstrip("=")

    return subject_of


def binding_total_cap(events: list[dict[str, Any]], suffix: str, secret: str) -> int:
    """About half of what the cohort earns under the per-participant cap alone, falling where the next outcome
    date holds a single milestone, so no tie decides who is cut in one run and not another."""
    providers = sorted({e["source"].split("/", 1)[1] for e in events})
    unbounded = contract("probe", providers, MAX_AMOUNT_ORE)
    facts = expected_facts(events, TODAY)
    participants = expected_participants(events, unbounded, pseudonym(secret))
    paid = expected_payments(unbounded, participants, facts)
    by_date: dict[date, list[int]] = defaultdict(list)
    for (provider, episode, milestone), amount in paid.items():
        measure = milestone.replace("-", "_")
        by_date[facts[(provider, episode, measure)]["outcome_date"]].append(amount)
    days = sorted(by_date)
    running = 0
    total = sum(paid.values())
    for day, following in pairwise(days):
        running += sum(by_date[day])
        if running >= total // 2 and len(by_date[following]) == 1:
            return running + by_date[following][0] // 2  # the cut falls inside that single milestone
    raise AssertionError("no clean place for the cap in this cohort")


async def send(
    client: httpx.AsyncClient, kafka: KafkaAccess, keys: dict[str, str], events: list[dict[str, Any]]
) -> None:
    """HTTP with each provider's key, and for some providers their own raw topic as their own principal."""
    for start in range(0, len(events), 40):
        chunk = events[start : start + 40]
        by_provider: dict[str, list[dict[str, Any]]] = defaultdict(list)
        by_topic: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in chunk:
            provider = e["source"].split("/", 1)[1]
            (by_topic if over_kafka(e) else by_provider)[provider].append(e)
        sending = [
            produce_raw(kafka, provider, [(raw_key(e), *raw_record(e)) for e in batch])
            for provider, batch in by_topic.items()
        ]
        for provider, batch in by_provider.items():
            sending.append(post(client, keys[provider], batch))
        await asyncio.gather(*sending)


async def post(client: httpx.AsyncClient, key: str, batch: list[dict[str, Any]]) -> None:
    response = await client.post(
        "/v1/events",
        content=orjson.dumps(batch),
        headers={"content-type": "application/cloudevents-batch+json", "authorization": f"Bearer {key}"},
    )
    assert response.status_code == 202, response.text
    refused = [r for r in response.json()["receipts"] if r["status"] == "rejected"]
    assert not refused, refused


class Run:
    """One order into one fresh stack."""

    def __init__(
        self, order: str, world: Any, events: list[dict[str, Any]], suffix: str, secret: str
    ) -> None:
        self.order, self.world, self.events, self.suffix, self.secret = order, world, events, suffix, secret
        self.providers = sorted({e["source"].split("/", 1)[1] for e in events})
        self.contract_id = uid("orders-")
        # one order gets its contract on the commands topic halfway through the stream, the others from a file
        # before the first event
        self.contract_midstream = order == "reversed"

    async def facts(self, conn: asyncpg.Connection) -> dict[tuple[str, str, str], tuple[str, date | None]]:
        rows = await conn.fetch(
            "SELECT provider_id, episode_id, measure_id, status, outcome_date FROM measures.facts "
            "WHERE provider_id = ANY($1) AND status <> 'void' AND measure_id NOT LIKE '%@%'",  # reported facts
            self.providers,
        )
        return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}

    async def net(self, conn: asyncpg.Connection) -> dict[tuple[str, str, str], int]:
        rows = await conn.fetch(
            "SELECT provider_id, episode_id, milestone_id, sum(signed_amount_ore) AS net FROM contracts.ledger "
            "WHERE contract_id = $1 GROUP BY 1, 2, 3 HAVING sum(signed_amount_ore) <> 0",
            self.contract_id,
        )
        return {(r[0], r[1], r[2]): int(r[3]) for r in rows}

    def reference(
        self, events: list[dict[str, Any]], total_cap: int
    ) -> tuple[dict[Any, Any], dict[Any, int]]:
        facts = expected_facts(events, TODAY)
        definition = contract(self.contract_id, self.providers, total_cap)
        participants = expected_participants(events, definition, pseudonym(self.secret))
        return (
            {k: (v["status"], v["outcome_date"]) for k, v in facts.items()},
            expected_payments(definition, participants, facts),
        )


async def run_order(run: Run, total_cap: int, tmp: Any, artifacts: Any) -> dict[str, Any]:
    document = contract(run.contract_id, run.providers, total_cap)
    contracts_dir = tmp / "contracts"
    contracts_dir.mkdir()
    if not run.contract_midstream:
        (contracts_dir / "orders.yaml").write_text(yaml.safe_dump(document))
    sink = (artifacts / f"{run.world.name}.log").open("w")
    stack = LocalStack(
        tmp / "stack",
        kafka=run.world.cluster,
        database_url=run.world.database_url,
        gateway_database_url=run.world.gateway_database_url,
        log_sink=sink,
        extra_env={
            **run.world.env(),
            "UTFALL_CONTRACTS_DIR": str(contracts_dir),
            "UTFALL_PSEUDONYM_KEY": run.secret,
        },
    )
    loop = asyncio.get_running_loop()
    services = ("ingest", "measures", "contracts")
    for name in services:
        stack.start_service(name)
    started = time.monotonic()
    report: dict[str, Any] = {
        "order": run.order,
        "contract": "mid-stream" if run.contract_midstream else "file",
    }
    try:
        await loop.run_in_executor(None, stack.wait_ready, services)
        keys = {p: await create_key(run.world.kafka, "provider", provider_id=p) for p in run.providers}
        conn = await asyncpg.connect(run.world.database_url)
        try:
            async with httpx.AsyncClient(base_url=stack.services["ingest"].url, timeout=60) as client:
                sent: list[dict[str, Any]] = []
                for index, phase in enumerate(phases(run.events, run.order)):
                    if run.contract_midstream and index == 0:
                        # the contract is published while the stream is under way: placements and facts reach
                        # contracts before it, beside it (in concurrent transactions) and after it
                        half = len(phase) // 2
                        await send(client, run.world.kafka, keys, phase[:half])
                        await asyncio.gather(
                            send(client, run.world.kafka, keys, phase[half:]),
                            produce(
                                run.world.kafka,
                                CONTRACT_COMMANDS,
                                [(run.contract_id.encode(), orjson.dumps(document), [])],
                            ),
                        )
                    else:
                        await send(client, run.world.kafka, keys, phase)
                    sent += phase
                    want_facts, want_net = run.reference(sent, total_cap)

                    async def settled() -> bool:
                        got_facts, got_net = await run.facts(conn), await run.net(conn)
                        report["stage"] = (
                            f"phase {index + 1}: {len(set(got_facts.items()) ^ set(want_facts.items()))} facts "
                            f"and {len(set(got_net.items()) ^ set(want_net.items()))} payments differ"
                        )
                        return got_facts == want_facts and got_net == want_net

                    await wait_until(
                        settled, timeout=240, interval=1.0, what=f"{run.order}: {report.get('stage')}"
                    )
                    report[f"phase {index + 1} events"] = len(phase)
            report["facts"] = await run.facts(conn)
            report["net"] = await run.net(conn)
            report["ledger entries"] = await conn.fetchval(
                "SELECT count(*) FROM contracts.ledger WHERE contract_id = $1", run.contract_id
            )
            report["top-ups"] = await conn.fetchval(
                "SELECT count(*) FROM contracts.ledger WHERE contract_id = $1 AND kind = 'payment.triggered' "
                "AND occurrence > 1",
                run.contract_id,
            )
            report["capped"] = await conn.fetchval(
                "SELECT count(*) FROM contracts.milestone_state WHERE contract_id = $1 "
                "AND active_amount_ore < entitled_ore",
                run.contract_id,
            )
            report["paid"] = await conn.fetchval(
                "SELECT paid_net_ore FROM contracts.contract_totals WHERE contract_id = $1", run.contract_id
            )
        finally:
            await conn.close()
    finally:
        await loop.run_in_executor(None, stack.stop)
        sink.close()
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


async def test_three_arrival_orders_give_the_same_facts_and_payments(infra, tmp_path, artifacts) -> None:  # type: ignore[no-untyped-def]
    base = cohort(SUBJECTS, SEED, TODAY)
    reports = []
    normalised: list[tuple[dict[Any, Any], dict[Any, int]]] = []
    total_cap = None
    for index, order in enumerate(ORDERS):
        world = await new_world(infra, f"orders_{order}"[:20])
        suffix = world.name[-6:]
        events = for_run(base, index, suffix)
        secret = f"orders-{suffix}-secret"
        if total_cap is None:
            total_cap = binding_total_cap(events, suffix, secret)
        run = Run(order, world, events, suffix, secret)
        (tmp_path / order).mkdir()
        report = await run_order(run, total_cap, tmp_path / order, artifacts)
        reports.append(report)
        facts = {(base_provider(p, suffix), e, m): v for (p, e, m), v in report.pop("facts").items()}
        net: dict[tuple[str, str], int] = defaultdict(int)
        for (p, e, _), amount in report.pop("net").items():
            net[(base_provider(p, suffix), e)] += amount
        normalised.append((facts, dict(net)))
        report["episodes with facts"] = len({k[:2] for k in facts})
        report["participants paid"] = len(net)
    summary = {"subjects": SUBJECTS, "events": len(base), "total cap": total_cap, "runs": reports}
    (artifacts / "arrival-orders.json").write_text(json.dumps(summary, indent=1, default=str))
    print("\n" + json.dumps(summary, indent=1, default=str))
    assert total_cap is not None
    for facts, net in normalised[1:]:
        assert facts == normalised[0][0]
        assert net == normalised[0][1]
    for report in reports:
        assert report["paid"] == total_cap  # the total cap binds: exactly the cap is paid
        assert report["capped"] > 0  # and cuts milestones
    assert reports[2]["top-ups"] > 0  # re-placements after payment freed room: cut milestones paid in full
