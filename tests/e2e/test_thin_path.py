"""The thin path over the real stack: an event posted over HTTP comes out as an outcome and a payment."""

from __future__ import annotations

import uuid

import httpx
import orjson
import pytest

from utfall_contracts.domain.ledger import PAYMENT_NAMESPACE
from utfall_events.catalogue import CATALOGUE, VERIFIABLE_MEASURE_IDS
from utfall_events.personnummer import find_personnummer
from utfall_events.topics import CARE_EVENTS, OUTCOMES_V2, PAYMENTS

from ..helpers import batch_headers, create_key, ended, header, person, read_topic, started, uid, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_event_over_http_becomes_outcome_and_payment(stack) -> None:
    world = stack.world
    episode, unit = uid("ep-"), uid("unit-")
    provider_key = await create_key(world.kafka, "provider", provider_id="hvb-eken", units=[unit])
    operator_key = await create_key(world.kafka, "operator")
    person_id = person()
    events = [
        started("hvb-eken", episode, person_id, unit=unit, start="2024-02-01"),
        ended("hvb-eken", episode, end="2024-10-15", reason="planned"),
    ]
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            stack.services["ingest"].url + "/v1/events",
            content=orjson.dumps(events),
            headers=batch_headers(provider_key),
        )
        assert response.status_code == 202, response.text
        assert [r["status"] for r in response.json()["receipts"]] == ["accepted", "accepted"]
        gateway = stack.services["gateway"].url
        auth = {"authorization": f"Bearer {operator_key}"}

        async def payment() -> dict | None:
            body = (
                await http.get(
                    f"{gateway}/v1/contracts/hvb-ungdom-stockholm/payments?limit=1000", headers=auth
                )
            ).json()
            return next((p for p in body["payments"] if p["episode_id"] == episode), None)

        paid = await wait_until(payment, timeout=60, what="a payment for the episode")
        results = (
            await http.get(
                f"{gateway}/v1/measures/planned_discharge/results",
                params={"unit_id": unit, "group_by": "provider_id"},
                headers=auth,
            )
        ).json()

    assert results["rows"] == [
        {
            "discharge_year": 2024,
            "provider_id": "hvb-eken",
            "source": "events",
            "achieved": 1,
            "not_achieved": 0,
            "missing": 0,
            "pending": 0,
            "closed": 1,
            "episodes": 1,
            "windows_closed": 1,  # planned_discharge is decided at discharge: its result is final
            "windows_closed_share": 1.0,
            "result": "final",
            "observed_rate": 1.0,
            "itt_rate": 1.0,
            "ci_low": pytest.approx(0.2065, abs=1e-3),
            "ci_high": 1.0,
            "status": "ok",
            "exact": True,
        }
    ]
    subject = paid["subject_ref"]
    assert subject.startswith("v1:")
    expected_id = str(
        uuid.uuid5(PAYMENT_NAMESPACE, f"hvb-ungdom-stockholm|{subject}|hvb-eken/{episode}|planned-discharge")
    )
    assert paid["payment_id"] == expected_id
    assert paid["kind"] == "payment.triggered"
    assert paid["amount_ore"] == 5_000_000
    assert paid["evidence"] == [{"source": "provider/hvb-eken", "id": events[1]["id"]}]

    ours = await read_topic(
        world.kafka,
        PAYMENTS,
        predicate=lambda r: episode.encode() in (r.value or b""),
        expect=1,
        settle=1.0,
    )
    assert len(ours) == 1
    message = orjson.loads(ours[0].value)
    assert message["payment_id"] == expected_id and message["amount_ore"] == 5_000_000
    assert header(ours[0], "ce_type") == "se.utfall.payment.triggered.v1"
    published = await read_topic(
        world.kafka, CARE_EVENTS, predicate=lambda r: episode.encode() in (r.value or b""), expect=2
    )
    outcomes = await read_topic(
        world.kafka,
        OUTCOMES_V2,
        predicate=lambda r: episode.encode() in (r.value or b""),
        expect=1,  # one message for the ended episode, a fact per measure in it
        settle=1.0,
    )
    facts = {f["measure_id"] for o in outcomes for f in orjson.loads(o.value)["facts"]}
    # every measure as reported; where a register already covers the episode's municipality (another test's
    # extract may), its verified outcomes beside them (`<measure>@register`), of verifiable measures only
    assert {f for f in facts if "@" not in f} == {m.id for m in CATALOGUE}
    assert {f.removesuffix("@register") for f in facts if "@" in f} <= set(VERIFIABLE_MEASURE_IDS)
    for record in [*published, *outcomes, *ours]:
        assert person_id.encode() not in record.value
        # identity numbers, not any ten digits: a UUID's last group is twelve digits one time in 14,000
        assert not find_personnummer(record.value.decode()), record.value
        assert record.key == subject.encode() or record.key == b"hvb-ungdom-stockholm"
