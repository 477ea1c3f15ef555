"""Aggregated submissions on real Kafka and Postgres: a CSV sheet and a JSON submission from two providers,
events from a third, and one comparison holding all three, labelled by source and disclosure-controlled."""

from __future__ import annotations

import orjson
import pytest

from utfall_events.topics import AGGREGATES
from utfall_gateway.app import create_app as create_gateway
from utfall_gateway.settings import GatewaySettings
from utfall_ingest.app import create_app as create_ingest
from utfall_ingest.settings import IngestSettings
from utfall_measures.app import create_app as create_measures
from utfall_measures.settings import MeasuresSettings

from ..helpers import batch_headers, create_key, ended, person, read_topic, running, started, uid, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")
HEADER = "provider_id,measure_id,measure_version,period,target_group,numerator,denominator,missing,method\n"


async def test_csv_json_and_events_side_by_side(world) -> None:  # type: ignore[no-untyped-def]
    csv_provider, json_provider, event_provider = uid("csv-"), uid("json-"), uid("ev-")
    keys = {
        p: await create_key(world.kafka, "provider", provider_id=p)
        for p in (csv_provider, json_provider, event_provider)
    }
    keys["operator"] = await create_key(world.kafka, "operator")
    sheet = (
        HEADER
        + f"{csv_provider},planned_discharge,1,2025,behaviour,30,44,4,journalgenomgång\n"
        + f"{csv_provider},planned_discharge,1,2025,substance_use,3,5,0,journalgenomgång\n"
    )
    submission = [
        {
            "provider_id": json_provider,
            "measure_id": "planned_discharge",
            "measure_version": 1,
            "period": "2025",
            "target_group": "behaviour",
            "numerator": 20,
            "denominator": 25,
            "missing": 0,
            "method": "case system export",
        },
        {
            "provider_id": json_provider,
            "measure_id": "planned_discharge",
            "measure_version": 1,
            "period": "2025",
            "target_group": "substance_use",
            "numerator": 9,
            "denominator": 12,
            "missing": 1,
            "method": "case system",
        },
    ]
    events = []
    for i in range(16):
        episode = uid("ep-")
        events += [
            started(event_provider, episode, person(), start="2024-11-01", target_group="behaviour"),
            ended(event_provider, episode, end="2025-05-01", reason="planned" if i < 12 else "unplanned"),
        ]
    own_view = [
        {
            "provider_id": event_provider,
            "measure_id": "planned_discharge",
            "measure_version": 1,
            "period": "2025",
            "target_group": "behaviour",
            "numerator": 16,
            "denominator": 16,
            "missing": 0,
            "method": "egen sammanställning",
        }
    ]
    ingest = create_ingest(world.settings(IngestSettings))
    measures = create_measures(world.settings(MeasuresSettings))
    gateway = create_gateway(world.settings(GatewaySettings, results_cache_seconds=0))
    async with running(ingest) as client, running(measures), running(gateway) as gw:
        r = await client.post(
            "/v1/aggregates",
            content=sheet.encode(),
            headers={"content-type": "text/csv", "authorization": f"Bearer {keys[csv_provider]}"},
        )
        assert [x["status"] for x in r.json()["receipts"]] == ["accepted", "accepted"], r.text
        r = await client.post(
            "/v1/aggregates",
            content=orjson.dumps(submission),
            headers={"content-type": "application/json", "authorization": f"Bearer {keys[json_provider]}"},
        )
        assert [x["status"] for x in r.json()["receipts"]] == ["accepted", "accepted"], r.text
        r = await client.post(
            "/v1/events", content=orjson.dumps(events), headers=batch_headers(keys[event_provider])
        )
        assert r.json()["accepted"] == 32
        r = await client.post(
            "/v1/aggregates",
            content=orjson.dumps(own_view),
            headers={"content-type": "application/json", "authorization": f"Bearer {keys[event_provider]}"},
        )
        assert r.json()["receipts"][0]["status"] == "accepted"
        # a correction supersedes; the same figures again change nothing; history is kept
        corrected = dict(submission[0], numerator=21)
        r = await client.post(
            "/v1/aggregates",
            content=orjson.dumps([corrected, corrected]),
            headers={"content-type": "application/json", "authorization": f"Bearer {keys[json_provider]}"},
        )
        assert [(x["status"], x["version"]) for x in r.json()["receipts"]] == [
            ("accepted", 2),
            ("unchanged", 2),
        ]
        assert r.json()["receipts"][0]["supersedes"] == 1
        history = (
            await client.get("/v1/aggregates", headers={"authorization": f"Bearer {keys[json_provider]}"})
        ).json()
        assert sorted(s["version"] for s in history["submissions"]) == [1, 1, 2]
        bad = await client.post(
            "/v1/aggregates",
            content=orjson.dumps([dict(corrected, provider_id=csv_provider)]),
            headers={"content-type": "application/json", "authorization": f"Bearer {keys[json_provider]}"},
        )
        assert bad.json()["receipts"][0]["reasons"][0]["code"] == "provider_mismatch"

        ours = {csv_provider, json_provider, event_provider}

        operator = {"authorization": f"Bearer {keys['operator']}"}

        async def comparison() -> dict | None:
            body = (
                await gw.get("/v1/comparisons/planned_discharge", params={"year": 2025}, headers=operator)
            ).json()
            rows = [p for p in body["providers"] if p["provider_id"] in ours]
            reported = {p["provider_id"] for p in rows if p["source"] == "self_reported"}
            events_row = [p for p in rows if p["source"] == "events" and p["provider_id"] == event_provider]
            done = reported == ours and events_row and events_row[0]["closed"] == 16
            json_row = [p for p in rows if p["provider_id"] == json_provider]
            return body if done and json_row and json_row[0]["achieved"] == 30 else None

        body = await wait_until(
            comparison, timeout=60, interval=0.5, what="all three providers in the comparison"
        )
        rows = {(p["provider_id"], p["source"]): p for p in body["providers"] if p["provider_id"] in ours}
        assert set(rows) == {
            (csv_provider, "self_reported"),
            (json_provider, "self_reported"),
            (event_provider, "events"),
            (event_provider, "self_reported"),
        }
        assert rows[(csv_provider, "self_reported")]["achieved"] == 33
        assert rows[(csv_provider, "self_reported")]["not_achieved"] == 16
        assert rows[(csv_provider, "self_reported")]["risk_adjusted"] is None
        assert rows[(event_provider, "events")]["achieved"] == 12
        assert rows[(event_provider, "events")]["risk_adjusted"]["observed"] == 12
        both = rows[(event_provider, "self_reported")]
        assert both["both_sources"] and rows[(event_provider, "events")]["both_sources"]
        assert both["source_difference"]["self_reported_minus_events"] == pytest.approx(1.0 - 12 / 16)
        # the public sees self-reported figures only as a release publishes them, labelled by source, and no
        # breakdown a release does not publish (substance_use has 5 closed for the CSV provider)
        narrow = await gw.get(
            "/v1/comparisons/planned_discharge", params={"year": 2025, "target_group": "substance_use"}
        )
        assert narrow.status_code == 403 and narrow.json()["type"].endswith("/not-published")
        assert (await gw.get("/v1/comparisons/planned_discharge")).status_code == 404  # no release yet
        made = await gw.post("/v1/releases", json={}, headers=operator)
        assert made.status_code == 201, made.text
        public = (await gw.get("/v1/comparisons/planned_discharge", params={"year": 2025})).json()
        shown = {(p["provider_id"], p["source"]): p for p in public["providers"] if p["provider_id"] in ours}
        assert (
            shown[(csv_provider, "self_reported")]["achieved"] == 33
            and not shown[(csv_provider, "self_reported")]["exact"]
        )
        results = (
            await gw.get(
                "/v1/measures/planned_discharge/results",
                params={"group_by": "provider_id", "year": 2025, "source": "self_reported"},
            )
        ).json()
        assert {r["source"] for r in results["rows"]} == {"self_reported"}
        page = await gw.get("/", params={"measure": "planned_discharge", "year": 2025})
        assert "självrapporterat" in page.text and f'data-provider="{csv_provider}"' in page.text
    on_topic = await read_topic(
        world.kafka,
        AGGREGATES,
        predicate=lambda r: json_provider.encode() in (r.key or b""),
        expect=3,
        settle=1.0,
    )
    versions = sorted(orjson.loads(r.value)["version"] for r in on_topic)
    assert versions == [1, 1, 2]
