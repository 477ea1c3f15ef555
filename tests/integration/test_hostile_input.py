"""A bad-input battery: hypothesis-generated malformed and hostile events over HTTP and over the raw topic.
Each gets a clear 4xx or a rejection with reasons (or is held when only its episode is unknown), never a 5xx,
never a crash, and the valid events sent beside them are never lost. Plus poison records on internal topics,
and the security checks that need no full stack: keys hashed, CORS closed, HTML escaped, no secret logged."""

from __future__ import annotations

import copy
import json
import logging
import re
from datetime import date, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka.errors import KafkaConnectionError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from utfall_contracts.app import create_app as create_contracts
from utfall_contracts.settings import ContractsSettings
from utfall_events.personnummer import find_personnummer, make_person_number
from utfall_events.topics import (
    API_KEYS,
    CARE_EVENTS,
    CARE_EVENTS_REJECTED,
    CONTRACTS_DEADLETTER,
    MEASURES_DEADLETTER,
    OUTCOMES,
    raw_topic,
)
from utfall_gateway.app import create_app as create_gateway
from utfall_gateway.settings import GatewaySettings
from utfall_ingest.app import create_app as create_ingest
from utfall_ingest.settings import IngestSettings
from utfall_measures.app import create_app as create_measures
from utfall_measures.settings import MeasuresSettings
from utfall_platform.kafka_access import KafkaAccess
from utfall_synthetic.cli import raw_record

from ..helpers import (
    batch_headers,
    create_key,
    ended,
    header,
    person,
    produce,
    produce_raw,
    read_topic,
    register_provider,
    running,
    started,
    uid,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")
SECRET = "hostile-battery-hmac-key-0123456789"
INJECTIONS = [
    "'; DROP TABLE ingest.received_events; --",
    "<script>alert(1)</script>",
    '" OR 1=1 --',
    "${jndi:ldap://x}",
    "../../../../etc/passwd",
    "\u0000\u0001\u001b[31m",
    "𝕦𝕥𝕗𝕒𝕝𝕝" * 50,
    "A" * 100_000,
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "id",
    "source",
    "type",
    "time",
    "subject",
    "specversion",
    "data.episode_id",
    "data.person_id",
    "data.provider_id",
    "data.unit_id",
    "data.municipality_code",
    "data.care_type",
    "data.legal_basis",
    "data.target_group",
    "data.start_date",
]


def template(provider: str) -> dict[str, Any]:
    return started(provider, uid("ep-"), person())


def _set(event: dict[str, Any], path: str, value: Any) -> None:
    target = event
    parts = path.split(".")
    for p in parts[:-1]:
        target = target[p]
    target[parts[-1]] = value


def _delete(event: dict[str, Any], path: str) -> None:
    target = event
    parts = path.split(".")
    for p in parts[:-1]:
        target = target[p]
    target.pop(parts[-1], None)


@st.composite
def hostile(draw: st.DrawFn, provider: str) -> dict[str, Any]:
    event = template(provider)
    kind = draw(
        st.sampled_from(
            [
                "wrong_type",
                "missing",
                "injection",
                "deep",
                "personnummer",
                "future",
                "source",
                "unknown_episode",
                "extra",
            ]
        )
    )
    field = draw(st.sampled_from(FIELDS))
    if kind == "wrong_type":
        _set(event, field, draw(json_values.filter(lambda v: not isinstance(v, str))))
    elif kind == "missing":
        _delete(event, field)
    elif kind == "injection":
        _set(
            event,
            draw(st.sampled_from([f for f in FIELDS if f not in ("data.start_date",)])),
            draw(st.sampled_from(INJECTIONS)),
        )
    elif kind == "deep":
        nested: Any = "x"
        for _ in range(draw(st.integers(50, 400))):
            nested = {"n": nested}
        _set(event, "data.unit_id", nested)
    elif kind == "personnummer":
        event["data"]["person_id"] = draw(
            st.sampled_from(
                [
                    "200802301234",
                    "200813011234",
                    "0000000000",
                    "19121212-1212",
                    "2008041212X4",
                    "20080412-12345",
                ]
            )
        )
    elif kind == "future":
        event["data"]["start_date"] = "2031-01-01"
    elif kind == "source":
        event["source"] = "provider/someone-else"
    elif kind == "unknown_episode":
        return ended(provider, uid("never-started-"))
    else:
        event["data"][draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return event


def collect(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    found: list[Any] = []

    @settings(max_examples=n, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def gather(value: Any) -> None:
        found.append(copy.deepcopy(value))

    gather()
    return found


async def test_http_battery(world, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    provider = uid("hb-")
    key = await create_key(world.kafka, "provider", provider_id=provider)
    events = collect(hostile(provider), 300)
    outcomes: dict[str, int] = {}
    settings_ = world.settings(IngestSettings, pseudonym_key=SECRET)
    async with running(create_ingest(settings_)) as client:
        valid_ids = []
        for start in range(0, len(events), 10):
            chunk = events[start : start + 10]
            good = template(provider)
            valid_ids.append(good["id"])
            body = (
                orjson.dumps([*chunk, good], option=orjson.OPT_PASSTHROUGH_DATACLASS)
                if all(_depth(e) < 200 for e in chunk)
                else json.dumps([*chunk, good]).encode()
            )
            response = await client.post("/v1/events", content=body, headers=batch_headers(key))
            assert response.status_code < 500, response.text
            if response.status_code != 202:
                assert response.headers["content-type"].startswith("application/problem+json")
                outcomes[f"http {response.status_code}"] = outcomes.get(f"http {response.status_code}", 0) + 1
                response = await client.post(
                    "/v1/events", content=orjson.dumps([good]), headers=batch_headers(key)
                )
                assert response.json()["receipts"][0]["status"] == "accepted"
                continue
            receipts = response.json()["receipts"]
            assert receipts[-1]["status"] == "accepted", receipts[-1]
            for receipt in receipts[:-1]:
                status = "held" if receipt.get("held") else receipt["status"]
                outcomes[status] = outcomes.get(status, 0) + 1
                if receipt["status"] == "rejected":
                    assert receipt["reasons"] and all(
                        r["message"] and "code" in r for r in receipt["reasons"]
                    )
                    assert not find_personnummer(json.dumps(receipt))
        for raw, content_type in [
            (b"\xff\xfe\x00garbage", "application/cloudevents-batch+json"),
            (b"[" * 5000 + b"]" * 5000, "application/cloudevents-batch+json"),
            (b'{"a": "' + b"x" * 200 + b'"}', "application/xml"),
            (b"", "application/cloudevents+json"),
        ]:
            response = await client.post(
                "/v1/events", content=raw, headers={**batch_headers(key), "content-type": content_type}
            )
            assert 400 <= response.status_code < 500
            assert response.headers["content-type"].startswith("application/problem+json")

        async def all_valid_published() -> bool:
            published = await read_topic(
                world.kafka,
                CARE_EVENTS,
                predicate=lambda r: header(r, "ce_source") == f"provider/{provider}",
            )
            return set(valid_ids) <= {header(r, "ce_id") for r in published}

        await wait_until(
            all_valid_published, timeout=60, interval=1.0, what="every valid event to be published"
        )
    print(
        f"\nHTTP battery: {len(events)} hostile events: {outcomes}; {len(valid_ids)} valid ones beside them all "
        "published"
    )
    assert outcomes.get("rejected", 0) > 200
    assert SECRET not in caplog.text
    assert not find_personnummer(caplog.text)
    conn = await asyncpg.connect(world.database_url)
    try:
        assert (
            await conn.fetchval("SELECT count(*) FROM ingest.received_events") > 0
        )  # injections did nothing
    finally:
        await conn.close()


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max([_depth(v, level + 1) for v in value.values()] or [level])
    if isinstance(value, list):
        return max([_depth(v, level + 1) for v in value] or [level])
    return level


@st.composite
def hostile_record(draw: st.DrawFn, provider: str) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
    value, headers = raw_record(template(provider))
    kind = draw(st.sampled_from(["bytes", "header_bytes", "drop_header", "not_json", "event"]))
    if kind == "bytes":
        value = draw(st.binary(max_size=200))
    elif kind == "header_bytes":
        index = draw(st.integers(0, len(headers) - 1))
        headers[index] = (headers[index][0], draw(st.binary(min_size=1, max_size=20)))
    elif kind == "drop_header":
        headers.pop(draw(st.integers(0, len(headers) - 1)))
    elif kind == "not_json":
        value = b"{'python': 'dict'}"
    else:
        event = draw(hostile(provider))
        value = json.dumps(event.get("data")).encode()  # the stdlib writes the deeply nested ones too
        headers = [
            (f"ce_{k}", str(v).encode()) for k, v in event.items() if k not in ("data", "datacontenttype")
        ]
    return b"k", value, headers


async def test_raw_topic_battery(world) -> None:  # type: ignore[no-untyped-def]
    provider = uid("rb-")
    await register_provider(world.kafka, provider)
    records = collect(hostile_record(provider), 150)
    valid = [template(provider) for _ in range(15)]
    mixed: list[Any] = []
    for i, record in enumerate(records):
        mixed.append(record)
        if i % 10 == 0:
            mixed.append((b"v", *raw_record(valid[i // 10])))
    async with running(create_ingest(world.settings(IngestSettings, pseudonym_key=SECRET))) as client:
        await produce_raw(world.kafka, provider, mixed)
        published = await read_topic(
            world.kafka,
            CARE_EVENTS,
            predicate=lambda r: header(r, "ce_source") == f"provider/{provider}",
            expect=len(valid),
            timeout=60,
            settle=2.0,
        )
        assert (await client.get("/health")).status_code == 200
    assert {e["id"] for e in valid} <= {header(r, "ce_id") for r in published}
    rejected = await read_topic(
        world.kafka,
        CARE_EVENTS_REJECTED,
        predicate=lambda r: b'"channel":"kafka"' in (r.value or b"") and b"raw_position" in (r.value or b""),
    )
    assert rejected and all(orjson.loads(r.value)["reasons"] for r in rejected)
    for r in rejected:
        assert not find_personnummer(r.value.decode())


async def test_hostile_kafka_producers_are_each_refused_with_a_reason(world) -> None:  # type: ignore[no-untyped-def]
    """Issue 16 item 6, the raw-topic battery: a forged source (a provider that is not registered), a personnummer
    in every identifier and free-text field, an oversize record, a wrong content type. Each is refused on
    `care.events.rejected.v1` with a reason that echoes no number, and the valid events beside them are published.
    A producer without credentials, or with a wrong password, is refused by the broker itself and nothing it
    tried to send is published."""
    provider = uid("hk-")
    await register_provider(world.kafka, provider)
    number = person()
    hostile: dict[str, tuple[bytes | None, list[tuple[str, bytes]]]] = {}
    forged = started(uid("forged-"), uid("ep-"), person())
    hostile["forged source"] = raw_record(forged)
    for field in ("episode_id", "unit_id"):
        event = started(provider, uid("ep-"), person())
        event["data"][field] = number
        hostile[f"personnummer as {field}"] = raw_record(event)
    event = started(provider, uid("ep-"), person())
    event["subject"] = number
    hostile["personnummer as subject"] = raw_record(event)
    event = started(provider, uid("ep-"), person())
    event["id"] = number
    hostile["personnummer as id"] = raw_record(event)
    event = started(provider, uid("ep-"), person())
    event["data"]["unit_id"] = "u" * 800_000
    hostile["oversize"] = raw_record(event)
    value, headers = raw_record(started(provider, uid("ep-"), person()))
    headers = [(k, v) for k, v in headers if k != "content-type"]
    hostile["wrong content type"] = (value, [*headers, ("content-type", b"application/xml")])
    valid = [started(provider, uid("ep-"), person()) for _ in range(3)]
    records = [(name.encode(), v, h) for name, (v, h) in hostile.items()]
    records += [(e["id"].encode(), *raw_record(e)) for e in valid]
    anonymous = started(provider, uid("ep-"), person())
    topic = raw_topic(provider).name
    for who in (KafkaAccess(world.kafka.bootstrap), world.kafka.as_user(f"provider-{provider}", "wrong")):
        with pytest.raises(KafkaConnectionError):
            await produce(who, topic, [(anonymous["id"].encode(), *raw_record(anonymous))])
    async with running(create_ingest(world.settings(IngestSettings, pseudonym_key=SECRET))):
        await produce_raw(world.kafka, provider, records)
        published = await read_topic(
            world.kafka,
            CARE_EVENTS,
            predicate=lambda r: header(r, "ce_source") == f"provider/{provider}",
            expect=len(valid),
            timeout=60,
            settle=2.0,
        )
        positions = {
            f"{topic}/{r.partition}/{r.offset}"
            for r in await read_topic(
                world.kafka, topic, predicate=lambda r: (r.key or b"").decode() in hostile
            )
        }
        rejected = await read_topic(
            world.kafka,
            CARE_EVENTS_REJECTED,
            predicate=lambda r: orjson.loads(r.value).get("raw_position") in positions,
            expect=len(hostile),
            timeout=60,
        )
    assert {header(r, "ce_id") for r in published} == {e["id"] for e in valid}
    assert anonymous["id"] not in {header(r, "ce_id") for r in await read_topic(world.kafka, topic)}
    assert len(rejected) == len(hostile)
    for r in rejected:
        body = orjson.loads(r.value)
        assert body["reasons"] and all(reason["code"] for reason in body["reasons"])
        assert not find_personnummer(r.value.decode()) and number[8:] not in r.value.decode()
    codes = {code for r in rejected for code in (x["code"] for x in orjson.loads(r.value)["reasons"])}
    assert {"unknown_provider", "source_mismatch", "personnummer_in_identifier"} <= codes, codes


async def test_poison_on_internal_topics_is_dead_lettered_and_processing_goes_on(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    provider = uid("po-")
    key = await create_key(world.kafka, "provider", provider_id=provider)
    marker = uid("poison-")
    poison = [
        (
            marker.encode(),
            b"not a care event",
            [
                ("ce_id", marker.encode()),
                ("ce_source", b"provider/x"),
                ("ce_type", b"se.utfall.placement.started.v1"),
                ("ce_time", b"2025-01-01T00:00:00+00:00"),
            ],
        ),
        (marker.encode(), orjson.dumps({"subject_ref": "nope"}), [("ce_id", (marker + "-2").encode())]),
    ]
    async with (
        running(create_ingest(world.settings(IngestSettings))) as client,
        running(create_measures(world.settings(MeasuresSettings))),
        running(create_contracts(world.settings(ContractsSettings, contracts_dir=tmp_path))),
    ):
        await produce(world.kafka, CARE_EVENTS, poison)
        await produce(world.kafka, OUTCOMES, [(marker.encode(), b"{broken", [("ce_id", marker.encode())])])
        episode = uid("ep-")
        await client.post(
            "/v1/events",
            content=orjson.dumps([started(provider, episode, person()), ended(provider, episode)]),
            headers=batch_headers(key),
        )
        letters = await read_topic(
            world.kafka,
            MEASURES_DEADLETTER,
            predicate=lambda r: marker.encode() in (r.value or b""),
            expect=2,
            timeout=60,
        )
        conn = await asyncpg.connect(world.database_url)
        try:

            async def projected() -> bool:
                return bool(
                    await conn.fetchval("SELECT count(*) FROM measures.facts WHERE episode_id = $1", episode)
                )

            await wait_until(projected, what="the valid events after the poison")
        finally:
            await conn.close()
        contract_letters = await read_topic(
            world.kafka,
            CONTRACTS_DEADLETTER,
            predicate=lambda r: r.key == marker.encode(),
            expect=3,  # contracts reads care.events.v1 too: its two poison records, and the outcome
            timeout=60,
        )
    reasons = {orjson.loads(r.value)["reason"] for r in letters}
    assert reasons == {"UndecodableEvent"}
    assert all(orjson.loads(r.value)["topic"] == CARE_EVENTS for r in letters)
    assert len(letters) == 2
    assert sorted(
        (orjson.loads(r.value)["topic"], orjson.loads(r.value)["reason"]) for r in contract_letters
    ) == [
        (CARE_EVENTS, "UndecodableEvent"),
        (CARE_EVENTS, "UndecodableEvent"),
        (OUTCOMES, "UndecodableRecord"),
    ]


async def test_keys_are_stored_only_as_hashes(world) -> None:  # type: ignore[no-untyped-def]
    secret = await create_key(world.kafka, "operator")
    records = await read_topic(
        world.kafka, API_KEYS, predicate=lambda r: secret.split("_")[1].encode() in (r.key or b"")
    )
    assert records
    for r in records:
        assert secret.split("_", 2)[2].encode() not in r.value
        assert len(orjson.loads(r.value)["secret_sha256"]) == 64


async def test_cors_is_closed_by_default_and_html_is_escaped(world) -> None:  # type: ignore[no-untyped-def]
    async with running(create_gateway(world.settings(GatewaySettings))) as gw:
        preflight = await gw.options(
            "/v1/measures", headers={"origin": "https://evil.example", "access-control-request-method": "GET"}
        )
        assert "access-control-allow-origin" not in preflight.headers
        response = await gw.get("/v1/measures", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in response.headers
        page = await gw.get("/", params={"measure": "<script>alert(1)</script>"})
        assert page.status_code in (200, 422) and "<script>alert(1)</script>" not in page.text
        assert "default-src 'none'" in page.headers.get("content-security-policy", "")
    from utfall_gateway.web.messages import labels
    from utfall_gateway.web.rendering import templates

    html = templates.get_template("index.html").render(
        labels=labels("index", "en"),
        lang="en",
        measures=[],
        measure="m",
        years=[],
        year=None,
        source="all",
        providers=[
            {
                "provider_id": "<img src=x onerror=alert(1)>",
                "source": "events",
                "status": "suppressed",
                "data_errors": 0,
            }
        ],
        total=None,
        rows=[
            {
                "y": 1,
                "provider_id": "<img src=x onerror=alert(1)>",
                "source": "events",
                "status": "suppressed",
            }
        ],
        chart_width=10,
        label_width=1,
        chart_height=10,
        title_key="title_en",
        other_lang="sv",
    )
    assert "<img src=x" not in html and "&lt;img src=x" in html


async def test_personnummer_detector_on_the_shapes_we_scan_for() -> None:
    number = make_person_number(date(2009, 3, 4), 17, female=True)
    assert find_personnummer(f"x {number} y") == [number]
    assert find_personnummer(f"x {number[:8]}-{number[8:]} y")
    assert find_personnummer(f"x {number[2:]} y")
    assert not find_personnummer("offset 2147483647 and 1732470000123")


async def test_http_details_binary_mode_allow_offline_docs_and_no_echo(world) -> None:  # type: ignore[no-untyped-def]
    """Issue 16 item 5 and 4b: the official CloudEvents SDK's binary mode is accepted like structured mode;
    405 names the allowed methods; /docs loads its assets from the service itself; a personnummer in a path is
    never echoed in problem details."""
    from cloudevents.core.bindings.http import to_binary_event
    from cloudevents.core.v1.event import CloudEvent

    provider = uid("bm-")
    key = await create_key(world.kafka, "provider", provider_id=provider)
    number = person()
    async with (
        running(create_ingest(world.settings(IngestSettings, pseudonym_key=SECRET))) as ingest,
        running(create_measures(world.settings(MeasuresSettings))),  # the read models the gateway reads
        running(create_gateway(world.settings(GatewaySettings))) as gateway,
    ):
        event = template(provider)
        attributes = {k: v for k, v in event.items() if k != "data"}
        attributes["time"] = datetime.fromisoformat(event["time"])
        message = to_binary_event(CloudEvent(attributes, event["data"]))
        headers, body = message.headers, message.body
        assert "ce-id" in {h.lower() for h in headers} and "ce-specversion" in headers

        async def send() -> httpx.Response:
            return await ingest.post(
                "/v1/events", content=body, headers={**headers, "authorization": f"Bearer {key}"}
            )

        response = await wait_until(
            lambda: _accepted_or_none(send()), timeout=30, what="the provider key to reach ingest"
        )
        assert response.json()["receipts"][0]["status"] == "accepted", response.text
        published = await read_topic(
            world.kafka, CARE_EVENTS, predicate=lambda r: header(r, "ce_id") == event["id"], expect=1
        )
        assert published and number not in (published[0].value or b"").decode()
        not_json = await ingest.post(
            "/v1/events",
            content=b"<x/>",
            headers={**headers, "content-type": "application/xml", "authorization": f"Bearer {key}"},
        )
        assert not_json.status_code == 415

        for client, path, allowed in (
            (ingest, "/v1/events", "POST"),
            (gateway, "/v1/measures", "GET"),
            (gateway, "/v1/admin/keys", "GET, POST"),
        ):
            response = await client.delete(path)
            assert response.status_code == 405, (path, response.text)
            assert response.headers["allow"] == allowed, path
            assert response.headers["content-type"].startswith("application/problem+json")

        for client, path in (
            (ingest, f"/v1/events/provider/{provider}/{number}"),
            (ingest, f"/v1/events/provider/{provider}/{number[:8]}%20{number[8:]}"),
            (gateway, f"/v1/providers/{number}/scorecard"),
            (gateway, f"/v1/nothing-here/{number[2:8]}-{number[8:]}"),
        ):
            response = await client.get(path, headers={"authorization": f"Bearer {key}"})
            assert response.status_code >= 400, path
            assert not find_personnummer(response.text), (path, response.text)
            assert number[8:] not in response.text, path

        for client in (ingest, gateway):
            docs = await client.get("/docs")
            assert docs.status_code == 200
            assert "cdn." not in docs.text and "unpkg" not in docs.text
            assets = re.findall(r"""(?:src|href)=["'](/[^"']+\.(?:js|css))["']""", docs.text)
            assert len(assets) >= 2, docs.text
            for asset in assets:
                assert (await client.get(asset)).status_code == 200, asset


async def _accepted_or_none(request: Any) -> httpx.Response | None:
    response = await request
    return response if response.status_code == 202 else None
