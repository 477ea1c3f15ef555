"""The provider registry (issue 16): operators register providers through the admin API; keys, contracts and
events naming a provider that is not registered (or is retired) are refused with a reason; a unit the provider
has not registered is refused; a personnummer never becomes a provider id."""

from __future__ import annotations

import orjson
import pytest

from utfall_events.topics import CARE_EVENTS, CARE_EVENTS_REJECTED
from utfall_gateway.app import create_app as create_gateway
from utfall_gateway.settings import GatewaySettings
from utfall_ingest.app import create_app as create_ingest
from utfall_ingest.settings import IngestSettings
from utfall_synthetic.cli import raw_record

from ..helpers import (
    batch_headers,
    create_key,
    header,
    person,
    produce_raw,
    read_topic,
    register_provider,
    running,
    started,
    uid,
    wait_until,
)
from ..providers import organisation_number

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_operators_register_and_retire_providers_and_nothing_names_an_unknown_one(world) -> None:  # type: ignore[no-untyped-def]
    operator = await create_key(world.kafka, "operator")
    auth = {"authorization": f"Bearer {operator}"}
    provider = uid("reg-")
    registration = {
        "provider_id": provider,
        "display_name": "Registrerade Hemmet",
        "organisation_number": organisation_number(provider),
        "care_types": ["hvb"],
        "units": ["reg-unit-1"],
    }
    async with running(create_gateway(world.settings(GatewaySettings))) as gateway:

        async def keys_loaded() -> bool:
            return (await gateway.get("/v1/admin/keys", headers=auth)).status_code == 200

        await wait_until(keys_loaded, what="the operator key to reach the gateway")
        for field, value in (
            ("organisation_number", "080412-2380"),  # a sole trader's personnummer
            ("provider_id", "200804122380"),
            ("units", []),
            ("display_name", "x\u0000"),
        ):
            response = await gateway.post(
                "/v1/admin/providers", json={**registration, field: value}, headers=auth
            )
            assert response.status_code == 422, (field, response.text)
            assert "2380" not in response.text

        unknown_key = await gateway.post(
            "/v1/admin/keys", json={"role": "provider", "provider_id": provider}, headers=auth
        )
        assert unknown_key.status_code == 422 and unknown_key.json()["type"].endswith("/unknown-provider")

        created = await gateway.post("/v1/admin/providers", json=registration, headers=auth)
        assert created.status_code == 201, created.text
        listed = (await gateway.get("/v1/admin/providers", headers=auth)).json()["providers"]
        assert any(p["provider_id"] == provider for p in listed)
        public = (await gateway.get("/v1/providers")).json()["providers"]
        assert {"provider_id": provider, "display_name": "Registrerade Hemmet"}.items() <= next(
            p for p in public if p["provider_id"] == provider
        ).items()
        key = await gateway.post(
            "/v1/admin/keys", json={"role": "provider", "provider_id": provider}, headers=auth
        )
        assert key.status_code == 201, key.text

        contract = {
            "contract_id": uid("regc-"),
            "name": "Registret",
            "commissioner_municipality": "0180",
            "funder": "fund",
            "provider_ids": [provider, "no-such-provider"],
            "cohort": {"enrolment_from": "2024-01-01", "enrolment_to": "2026-12-31"},
            "milestones": [{"milestone_id": "m1", "measure_id": "planned_discharge", "price_ore": 100}],
            "per_participant_cap_ore": 100,
            "total_cap_ore": 1000,
        }
        refused = await gateway.post("/v1/admin/contracts", json=contract, headers=auth)
        assert refused.status_code == 422, refused.text
        assert [e["message"] for e in refused.json()["errors"]] == [
            "no-such-provider is not an active provider in the registry"
        ]
        accepted = await gateway.post(
            "/v1/admin/contracts", json={**contract, "provider_ids": [provider]}, headers=auth
        )
        assert accepted.status_code == 202, accepted.text

        async with running(create_ingest(world.settings(IngestSettings))) as ingest:
            provider_key = key.json()["key"]
            good = started(provider, uid("ep-"), person(), unit="reg-unit-1")
            stray_unit = started(provider, uid("ep-"), person(), unit="somewhere-else")
            response = await ingest.post(
                "/v1/events", content=orjson.dumps([good, stray_unit]), headers=batch_headers(provider_key)
            )
            assert response.status_code == 202, response.text
            receipts = response.json()["receipts"]
            assert receipts[0]["status"] == "accepted"
            assert [r["code"] for r in receipts[1]["reasons"]] == ["unknown_unit"]

            retired = await gateway.delete(f"/v1/admin/providers/{provider}", headers=auth)
            assert retired.status_code == 200 and retired.json()["retired_at"]

            async def refused_after_retirement() -> bool:
                again = await ingest.post(
                    "/v1/events",
                    content=orjson.dumps([started(provider, uid("ep-"), person(), unit="reg-unit-1")]),
                    headers=batch_headers(provider_key),
                )
                return again.status_code == 403 and again.json()["type"].endswith("/unknown-provider")

            await wait_until(refused_after_retirement, what="the retired provider to be refused")
            assert provider not in {
                p["provider_id"] for p in (await gateway.get("/v1/providers")).json()["providers"]
            }


async def test_the_raw_topic_refuses_forged_and_unknown_providers(world) -> None:  # type: ignore[no-untyped-def]
    """Before issue 16 a record with source=provider/200804122380 made a personnummer a provider id. Now a
    provider writes only its own raw topic, and a source naming anyone else is refused as a forgery."""
    registered = uid("rawreg-")
    await register_provider(world.kafka, registered)
    unknown = uid("nobody-")
    events = {
        "valid": started(registered, uid("ep-"), person()),
        "unknown": started(unknown, uid("ep-"), person()),
        "personnummer": started("200804122380", uid("ep-"), person()),
    }
    async with running(create_ingest(world.settings(IngestSettings))):
        await produce_raw(
            world.kafka, registered, [(e["id"].encode(), *raw_record(e)) for e in events.values()]
        )
        published = await read_topic(
            world.kafka,
            CARE_EVENTS,
            predicate=lambda r: header(r, "ce_id") in {e["id"] for e in events.values()},
            expect=1,
            timeout=30,
            settle=1.0,
        )
        rejected = await read_topic(
            world.kafka,
            CARE_EVENTS_REJECTED,
            predicate=lambda r: (
                header(r, "ce_id") in {events["unknown"]["id"], events["personnummer"]["id"]}
                or orjson.loads(r.value).get("event_id")
                in {events["unknown"]["id"], events["personnummer"]["id"]}
            ),
            expect=2,
            timeout=30,
        )
    assert [header(r, "ce_id") for r in published] == [events["valid"]["id"]]
    codes = [{reason["code"] for reason in orjson.loads(r.value)["reasons"]} for r in rejected]
    assert all({"unknown_provider", "source_mismatch"} <= c for c in codes), codes
    for r in rejected:
        assert "200804122380" not in (r.value or b"").decode()
