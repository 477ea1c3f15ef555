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


async def test_a_refusal_is_filed_under_the_provider_that_sent_it(world) -> None:  # type: ignore[no-untyped-def]
    """A record on `care.events.raw.v1.<sender>` that claims another registered provider's source is refused
    as a forgery, and its receipt belongs to the sender (who wrote it and must learn why), never to the
    provider it named (which sent nothing)."""
    sender, named = uid("sender-"), uid("named-")
    sender_key = await create_key(world.kafka, "provider", provider_id=sender)
    named_key = await create_key(world.kafka, "provider", provider_id=named)
    forged = started(named, uid("ep-"), person())
    async with running(create_ingest(world.settings(IngestSettings))) as client:
        await produce_raw(world.kafka, sender, [(forged["id"].encode(), *raw_record(forged))])

        async def filed() -> dict | None:
            answer = await client.get(
                f"/v1/events/provider/{sender}/{forged['id']}",
                headers={"authorization": f"Bearer {sender_key}"},
            )
            return answer.json() if answer.status_code == 200 else None

        receipt = await wait_until(filed, timeout=30, interval=0.3, what="the refusal's receipt")
        assert receipt["status"] == "rejected" and receipt["source"] == f"provider/{sender}"
        assert "source_mismatch" in {r["code"] for r in receipt["reasons"]}
        elsewhere = await client.get(
            f"/v1/events/provider/{named}/{forged['id']}", headers={"authorization": f"Bearer {named_key}"}
        )
        assert elsewhere.status_code == 404
    dead = await read_topic(
        world.kafka,
        CARE_EVENTS_REJECTED,
        predicate=lambda r: orjson.loads(r.value).get("event_id") == forged["id"],
        expect=1,
    )
    assert orjson.loads(dead[0].value)["source"] == f"provider/{sender}"


async def test_a_provider_seals_personnummer_to_ingest_and_its_raw_topic_holds_none(world) -> None:  # type: ignore[no-untyped-def]
    """The documented option for a provider that produces to Kafka: fetch ingest's public keys, seal each
    person_id to them, produce. Ingest opens it in memory and pseudonymises it as it would the clear number;
    the raw topic holds ciphertext only. The key document is public and holds no private part."""
    from utfall_events.personnummer import find_personnummer
    from utfall_events.topics import raw_topic

    provider = uid("sealer-")
    await register_provider(world.kafka, provider)
    number = person()
    clear = started(provider, uid("ep-"), number)
    async with running(create_ingest(world.settings(IngestSettings))) as client:
        keys = await client.get("/v1/keys/person-id")
        assert keys.status_code == 200 and keys.headers["content-type"] == "application/jwk-set+json"
        public = keys.json()
        assert public["keys"] and all("d" not in k for k in public["keys"])
        episode = uid("ep-")
        sealed = dict(clear, id=uid("ev-"), subject=episode, data={**clear["data"], "episode_id": episode})
        await produce_raw(
            world.kafka,
            provider,
            [(e["id"].encode(), *raw_record(e, public)) for e in (sealed,)],
        )
        await client.post(
            "/v1/events",
            content=orjson.dumps([clear]),
            headers=batch_headers(await create_key(world.kafka, "provider", provider_id=provider)),
        )
        published = await read_topic(
            world.kafka,
            CARE_EVENTS,
            predicate=lambda r: header(r, "ce_id") in {clear["id"], sealed["id"]},
            expect=2,
            timeout=30,
        )
    refs = {orjson.loads(r.value)["subject_ref"] for r in published}
    assert len(refs) == 1  # the same person, whether it came sealed or in clear
    on_raw = await read_topic(world.kafka, raw_topic(provider).name)
    assert on_raw and not any(find_personnummer((r.value or b"").decode()) for r in on_raw)
    assert number not in b"".join(r.value or b"" for r in on_raw).decode()
