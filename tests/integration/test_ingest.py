"""Ingest on real Kafka and Postgres: single, batch, duplicate, partial and raw-topic paths, the exact
messages that land on each topic, restart-proof deduplication, problem details, and no personnummer."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from utfall_events.personnummer import find_personnummer
from utfall_events.topics import CARE_EVENTS, CARE_EVENTS_REJECTED, raw_topic
from utfall_ingest.app import create_app
from utfall_ingest.expiry import expire_held
from utfall_ingest.settings import IngestSettings
from utfall_platform.clock import FixedClock
from utfall_synthetic.cli import raw_record

from ..helpers import (
    batch_headers,
    create_key,
    ended,
    followup,
    header,
    person,
    produce_raw,
    read_topic,
    register_provider,
    retraction,
    running,
    started,
    uid,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")
SINGLE = "application/cloudevents+json"


async def pool_fetch(dsn: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def of_source(source: str):  # type: ignore[no-untyped-def]
    return lambda r: header(r, "ce_source") == source or source.encode() in (r.value or b"")


@pytest.fixture(scope="module")
def settings(world) -> IngestSettings:  # type: ignore[no-untyped-def]
    return world.settings(IngestSettings, pseudonym_key="integration-secret-key")


async def test_single_batch_duplicate_partial_and_the_messages_on_each_topic(world, settings, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    provider = uid("p-")
    key = await create_key(world.kafka, "provider", provider_id=provider)
    episode, pid = uid("ep-"), person()
    first = started(provider, episode, pid)
    batch = [ended(provider, episode), followup(provider, episode)]
    bad = started(provider, uid("ep-"), pid[:-1] + str((int(pid[-1]) + 1) % 10))
    async with running(create_app(settings)) as client:
        single = await client.post(
            "/v1/events",
            content=orjson.dumps(first),
            headers={"content-type": SINGLE, "authorization": f"Bearer {key}"},
        )
        assert single.status_code == 202
        assert single.json()["receipts"] == [
            {"id": first["id"], "source": f"provider/{provider}", "status": "accepted"}
        ]
        partial = await client.post(
            "/v1/events", content=orjson.dumps([batch[0], bad, batch[1], first]), headers=batch_headers(key)
        )
        body = partial.json()
        assert partial.status_code == 202
        assert [r["status"] for r in body["receipts"]] == ["accepted", "rejected", "accepted", "duplicate"]
        assert (body["accepted"], body["rejected"], body["duplicates"]) == (2, 1, 1)
        assert body["receipts"][1]["reasons"] == [
            {
                "field": "/data/person_id",
                "code": "checksum",
                "message": "the check digit does not match (Luhn)",
            }
        ]
        again = await client.post("/v1/events", content=orjson.dumps(batch), headers=batch_headers(key))
        assert [r["status"] for r in again.json()["receipts"]] == ["duplicate", "duplicate"]
        lookup = await client.get(
            f"/v1/events/provider/{provider}/{bad['id']}", headers={"authorization": f"Bearer {key}"}
        )
        assert lookup.status_code == 200 and lookup.json()["status"] == "rejected"
        accepted_lookup = await client.get(
            f"/v1/events/provider/{provider}/{first['id']}", headers={"authorization": f"Bearer {key}"}
        )
        assert accepted_lookup.json()["status"] == "accepted"
        published = await read_topic(
            world.kafka, CARE_EVENTS, predicate=of_source(f"provider/{provider}"), expect=3, settle=1.5
        )
        rejected = await read_topic(
            world.kafka,
            CARE_EVENTS_REJECTED,
            predicate=of_source(f"provider/{provider}"),
            expect=1,
            settle=0.5,
        )

    assert [header(r, "ce_id") for r in published] == [first["id"], batch[0]["id"], batch[1]["id"]]
    subject = orjson.loads(published[0].value)["subject_ref"]
    assert all(r.key == subject.encode() for r in published)
    assert [header(r, "ce_type") for r in published] == [first["type"], batch[0]["type"], batch[1]["type"]]
    assert header(published[0], "ce_specversion") == "1.0" and header(published[0], "ce_subject") == episode
    data = orjson.loads(published[0].value)
    assert set(data) == {
        "subject_ref",
        "provider_id",
        "episode_id",
        "birth_year",
        "sex",
        "age_at_start",
        "unit_id",
        "municipality_code",
        "care_type",
        "legal_basis",
        "target_group",
        "start_date",
    }
    assert data["birth_year"] == int(pid[:4]) and data["age_at_start"] == 15
    assert orjson.loads(published[1].value) == {
        "subject_ref": subject,
        "provider_id": provider,
        "episode_id": episode,
        "end_date": "2024-09-01",
        "end_reason": "planned",
        "destination": "parents",
    }
    reject = orjson.loads(rejected[0].value)
    assert reject["event_id"] == bad["id"] and reject["source"] == f"provider/{provider}"
    assert reject["reasons"][0]["code"] == "checksum" and reject["channel"] == "http"
    for record in [*published, *rejected]:
        assert pid.encode() not in record.value and not find_personnummer(record.value.decode())
    assert pid not in caplog.text and not find_personnummer(caplog.text)


async def test_restart_between_identical_batches_publishes_nothing_twice(world, settings) -> None:  # type: ignore[no-untyped-def]
    provider = uid("p-")
    key = await create_key(world.kafka, "provider", provider_id=provider)
    events = []
    for _ in range(20):
        episode = uid("ep-")
        events += [started(provider, episode, person()), ended(provider, episode)]
    async with running(create_app(settings)) as client:
        first = await client.post("/v1/events", content=orjson.dumps(events), headers=batch_headers(key))
        assert first.json()["accepted"] == 40
    async with running(create_app(settings)) as client:  # a new process, same database
        second = await client.post("/v1/events", content=orjson.dumps(events), headers=batch_headers(key))
        assert second.json()["duplicates"] == 40 and second.json()["accepted"] == 0
        published = await read_topic(
            world.kafka, CARE_EVENTS, predicate=of_source(f"provider/{provider}"), expect=40, settle=2.0
        )
    ids = [header(r, "ce_id") for r in published]
    assert len(ids) == 40 and len(set(ids)) == 40


async def test_raw_topic_in_binary_mode_with_rejects_dead_lettered(world, settings) -> None:  # type: ignore[no-untyped-def]
    provider = uid("p-")
    await register_provider(world.kafka, provider)
    episode, pid = uid("ep-"), person()
    good = [started(provider, episode, pid), ended(provider, episode), retraction(provider, "no-such-event")]
    records = [(episode.encode(), *raw_record(e)) for e in good]
    bad_value = raw_record(started(provider, uid("ep-"), pid))
    records.append((b"x", b"{not json", bad_value[1]))
    records.append(
        (
            b"y",
            orjson.dumps({"episode_id": "e"}),
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"\xff\xfe"),
                ("ce_source", f"provider/{provider}".encode()),
            ],
        )
    )
    app = create_app(settings)
    async with running(app):
        await produce_raw(world.kafka, provider, records)
        published = await read_topic(
            world.kafka,
            CARE_EVENTS,
            predicate=of_source(f"provider/{provider}"),
            expect=2,
            timeout=30,
            settle=1.0,
        )
        # The retraction of an event not (yet) received waits for it; after the hold period it is refused.
        held = await wait_until(
            lambda: pool_fetch(
                world.database_url,
                "SELECT awaits_event_id FROM ingest.held_events WHERE source = $1",
                f"provider/{provider}",
            ),
            what="the retraction to be held",
        )
        assert [r["awaits_event_id"] for r in held] == ["no-such-event"]
        runtime = app.state.runtime
        later = FixedClock(runtime.clock.now() + timedelta(days=settings.hold_days + 1))
        assert await expire_held(runtime.pool, later, settings.hold_days) >= 1
        rejected = await read_topic(
            world.kafka,
            CARE_EVENTS_REJECTED,
            predicate=of_source(f"provider/{provider}"),
            expect=3,
            timeout=30,
            settle=1.0,
        )
    assert [header(r, "ce_id") for r in published] == [good[0]["id"], good[1]["id"]]
    reasons = sorted(
        (orjson.loads(r.value)["event_id"] or "?", orjson.loads(r.value)["reasons"][0]["code"])
        for r in rejected
    )
    assert (good[2]["id"], "unknown_event") in reasons
    assert len(reasons) == 3, reasons
    for r in rejected:
        body = orjson.loads(r.value)
        assert body["channel"] == "kafka"
        if body["reasons"][0]["code"] != "unknown_event":  # refused on arrival: the record's position
            assert body["raw_position"].startswith(raw_topic(provider).name + "/")
        assert not find_personnummer(r.value.decode())


@pytest.mark.parametrize(
    ("content_type", "body", "status", "slug"),
    [
        ("text/plain", b"hello", 415, "unsupported-media-type"),
        ("application/cloudevents-batch+json", b"[{", 400, "invalid-json"),
        ("application/cloudevents-batch+json", b"{}", 400, "not-a-batch"),
        ("application/cloudevents-batch+json", b"[]", 400, "empty-batch"),
        ("application/cloudevents+json", b"[]", 400, "not-an-event"),
        ("application/cloudevents-batch+json", orjson.dumps([{}] * 1001), 413, "batch-too-large"),
        ("application/cloudevents-batch+json", b"[" + b" " * (9 * 1024 * 1024) + b"]", 413, "too-large"),
    ],
)
async def test_whole_request_errors_are_problem_details(
    world, settings, content_type, body, status, slug
) -> None:  # type: ignore[no-untyped-def]
    key = await create_key(world.kafka, "provider", provider_id=uid("p-"))
    async with running(create_app(settings)) as client:
        response = await client.post(
            "/v1/events",
            content=body,
            headers={"content-type": content_type, "authorization": f"Bearer {key}"},
        )
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/" + slug) and problem["status"] == status and problem["detail"]


async def test_keys_missing_wrong_revoked_or_of_another_role(world, settings) -> None:  # type: ignore[no-untyped-def]
    from utfall_admin.keys import revoke_key

    provider = uid("p-")
    key = await create_key(world.kafka, "provider", provider_id=provider)
    operator = await create_key(world.kafka, "operator")
    event = orjson.dumps([started(provider, uid("ep-"), person())])
    async with running(create_app(settings)) as client:
        for headers, status in [
            ({}, 401),
            ({"authorization": "Bearer nonsense"}, 401),
            ({"authorization": "Bearer " + key[:-3] + "abc"}, 401),
            ({"x-api-key": operator}, 403),
        ]:
            response = await client.post(
                "/v1/events",
                content=event,
                headers={"content-type": "application/cloudevents-batch+json", **headers},
            )
            assert response.status_code == status, headers
            assert response.headers["content-type"].startswith("application/problem+json")
        await revoke_key(world.kafka, key.split("_")[1])

        async def refused() -> bool:
            r = await client.post("/v1/events", content=event, headers=batch_headers(key))
            return r.status_code == 401

        await wait_until(refused, what="the revoked key to be refused")
        other = await client.get(
            f"/v1/events/provider/{uid('p-')}/x",
            headers={"x-api-key": (await create_key(world.kafka, "provider", provider_id=uid("p-")))},
        )
        assert other.status_code == 403


async def test_no_personnummer_in_any_ingest_table(world, settings) -> None:  # type: ignore[no-untyped-def]
    conn = await asyncpg.connect(world.database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'ingest'"
        )
        for t in tables:
            rows = await conn.fetch(f'SELECT * FROM ingest."{t["table_name"]}"')
            text = orjson.dumps([dict(r) for r in rows], default=str)
            assert not find_personnummer(text.decode()), t["table_name"]
    finally:
        await conn.close()
