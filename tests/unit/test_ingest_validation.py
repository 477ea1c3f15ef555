"""Stage-1 validation of provider events: golden examples, every rule, and no personnummer in any reason."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from utfall_events.personnummer import make_person_number
from utfall_events.registry import ProviderV1
from utfall_ingest.domain.pseudonym import subject_ref
from utfall_ingest.domain.validation import CheckedEvent, PseudonymKey, Rejection, check_event

from ..providers import registered

TODAY = date(2026, 11, 24)
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
KEY = PseudonymKey("v1", b"test-key")
EXAMPLES = Path(str(resources.files("utfall_events").joinpath("examples")))
PNR = re.compile(r"(?<!\d)(?:\d{2})?\d{6}[-+]?\d{4}(?!\d)")


REGISTRY = {p.provider_id: p for p in (registered("hvb-eken"), registered("familjehem-vast"))}


def check(
    event: Any, provider: str | None = "hvb-eken", registry: dict[str, ProviderV1] = REGISTRY
) -> CheckedEvent | Rejection:
    return check_event(
        event, authenticated_provider=provider, providers=registry, today=TODAY, now=NOW, key=KEY
    )


def load(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / "valid" / f"{name}.json").read_text())


@pytest.mark.parametrize("path", sorted((EXAMPLES / "valid").glob("*.json")), ids=lambda p: p.stem)
def test_golden_valid_examples_pass(path: Path) -> None:
    value = json.loads(path.read_text())
    for event in value if isinstance(value, list) else [value]:
        result = check(event)
        assert isinstance(result, CheckedEvent), result


@pytest.mark.parametrize("path", sorted((EXAMPLES / "invalid").glob("*.json")), ids=lambda p: p.stem)
def test_golden_invalid_examples_give_their_reasons(path: Path) -> None:
    case = json.loads(path.read_text())
    result = check(case["event"])
    assert isinstance(result, Rejection)
    assert {(r.field, r.code) for r in result.reasons} == {(e["field"], e["code"]) for e in case["expect"]}
    for reason in result.reasons:
        assert not PNR.search(reason.message + reason.field)


def test_started_is_pseudonymised_and_derived() -> None:
    event = load("placement_started")
    result = check(event)
    assert isinstance(result, CheckedEvent)
    assert "person_id" not in result.fields
    assert result.fields["subject_ref"] == subject_ref(
        event["data"]["person_id"], key=b"test-key", version="v1"
    )
    assert result.fields["subject_ref"].startswith("v1:")
    assert result.fields["birth_year"] == 2008 and result.fields["sex"] == "female"
    assert result.fields["age_at_start"] == 15  # born 2008-04-12, placed 2024-03-01
    assert not PNR.search(json.dumps(result.fields, default=str))


def test_same_person_two_providers_same_subject_ref() -> None:
    event = load("placement_started")
    other = json.loads(json.dumps(event))
    other["source"] = "provider/familjehem-vast"
    other["data"]["provider_id"] = "familjehem-vast"
    first, second = check(event), check(other, provider="familjehem-vast")
    assert isinstance(first, CheckedEvent) and isinstance(second, CheckedEvent)
    assert first.fields["subject_ref"] == second.fields["subject_ref"]
    assert subject_ref("200804122387", key=b"another-key") != subject_ref("200804122387", key=b"test-key")


def test_source_must_match_the_authenticated_provider() -> None:
    result = check(load("placement_started"), provider="hvb-bjorken")
    assert isinstance(result, Rejection)
    assert ("/source", "source_mismatch") in {(r.field, r.code) for r in result.reasons}


def test_raw_topic_events_have_no_authenticated_provider_but_data_must_match_source() -> None:
    assert isinstance(check(load("placement_started"), provider=None), CheckedEvent)


def test_subject_must_match_episode() -> None:
    event = load("placement_ended")
    event["subject"] = "another-episode"
    result = check(event)
    assert isinstance(result, Rejection) and result.reasons[0].code == "subject_mismatch"


def test_event_time_in_the_future() -> None:
    event = load("placement_ended")
    event["time"] = (NOW + timedelta(hours=1)).isoformat()
    result = check(event)
    assert isinstance(result, Rejection) and result.reasons[0].code == "future_time"


@pytest.mark.parametrize("value", [None, 1, "x", [], ["a"], True])
def test_not_an_object(value: Any) -> None:
    result = check(value)
    assert isinstance(result, Rejection) and result.reasons[0].code == "not_an_object"


@given(day=st.dates(min_value=date(1990, 1, 1), max_value=date(2035, 12, 31)))
def test_date_window_2000_to_today(day: date) -> None:
    event = load("placement_ended")
    event["data"]["end_date"] = day.isoformat()
    result = check(event)
    if day < date(2000, 1, 1):
        assert isinstance(result, Rejection) and result.reasons[0].code == "before_2000"
    elif day > TODAY:
        assert isinstance(result, Rejection) and result.reasons[0].code == "future_date"
    else:
        assert isinstance(result, CheckedEvent)


@given(born=st.dates(min_value=date(1995, 1, 1), max_value=date(2024, 3, 1)))
def test_age_at_start_must_be_0_to_20(born: date) -> None:
    event = load("placement_started")
    event["data"]["person_id"] = make_person_number(born, 77, female=False)
    result = check(event)
    age = 2024 - born.year - ((born.month, born.day) > (3, 1))
    if 0 <= age <= 20:
        assert isinstance(result, CheckedEvent) and result.fields["age_at_start"] == age
    else:
        assert isinstance(result, Rejection) and result.reasons[0].code == "age_out_of_range"


@settings(max_examples=200)
@given(
    born=st.dates(min_value=date(2000, 1, 1), max_value=date(2020, 1, 1)),
    field=st.sampled_from(
        [
            "id",
            "subject",
            "episode_id",
            "unit_id",
            "municipality_code",
            "care_type",
            "start_date",
            "extra",
            "time",
            "source",
        ]
    ),
    hyphen=st.booleans(),
)
def test_a_personnummer_anywhere_never_reaches_a_reason(born: date, field: str, hyphen: bool) -> None:
    number = make_person_number(born, 321, female=True)
    text = number[:8] + "-" + number[8:] if hyphen else number
    event = load("placement_started")
    if field in ("id", "subject", "time", "source"):
        event[field] = text
    elif field == "extra":
        event["data"][text] = text
    else:
        event["data"][field] = text
    result = check(event)
    assert isinstance(result, Rejection)
    dumped = json.dumps([r.as_dict() for r in result.reasons]) + repr(result)
    assert number not in dumped and number[2:] not in dumped and text not in dumped
    assert not PNR.search(dumped)


def test_retraction_reason_free_text_is_redacted() -> None:
    event = load("event_retracted")
    number = make_person_number(date(2009, 1, 2), 12, female=True)
    event["data"]["reason"] = f"fel person {number}"
    result = check(event)
    assert isinstance(result, CheckedEvent)
    assert number not in result.fields["reason"] and "[redacted]" in result.fields["reason"]


def _reason_codes(result: CheckedEvent | Rejection) -> set[tuple[str, str]]:
    assert isinstance(result, Rejection), result
    return {(r.field, r.code) for r in result.reasons}


def test_a_provider_must_be_registered_and_active() -> None:
    event = load("placement_started")
    assert _reason_codes(check(event, provider=None, registry={})) == {("/source", "unknown_provider")}
    retired = {"hvb-eken": registered("hvb-eken", retired_at=NOW)}
    assert _reason_codes(check(event, provider=None, registry=retired)) == {("/source", "unknown_provider")}
    forged = {**event, "source": "provider/200804122380"}
    assert ("/source", "unknown_provider") in _reason_codes(check(forged, provider=None))


def test_units_and_care_types_must_be_the_providers_own() -> None:
    event = load("placement_started")
    narrow = {"hvb-eken": registered("hvb-eken", units=["eken-9"], care_types=["family_home"])}
    assert _reason_codes(check(event, registry=narrow)) == {
        ("/data/unit_id", "unknown_unit"),
        ("/data/care_type", "care_type_not_registered"),
    }
    exact = {"hvb-eken": registered("hvb-eken", units=[event["data"]["unit_id"]], care_types=["hvb"])}
    assert isinstance(check(event, registry=exact), CheckedEvent)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("organisation_number", "200804122380"),
        ("organisation_number", "080412-2380"),  # a sole trader's number is a personnummer
        ("organisation_number", "556677-8890"),  # wrong check digit
        ("provider_id", "200804122380"),
        ("units", ["200804122380"]),
        ("units", []),
        ("care_types", []),
        ("display_name", "Eken\u0000"),
    ],
)
def test_the_registry_refuses_what_could_identify_a_person_or_is_incomplete(field: str, value: Any) -> None:
    with pytest.raises(ValueError):
        if field == "provider_id":
            registered(value)
        else:
            registered("hvb-eken", **{field: value})


def test_a_personnummer_sealed_to_ingest_is_opened_in_memory_and_pseudonymised_alike() -> None:
    """A provider may seal person_id to ingest's public key (JWE, utfall_events.sealed): the event is accepted
    and pseudonymised exactly as the clear one; a value sealed to another key, or damaged, is refused with a
    reason that names no value."""
    from utfall_events.sealed import Unsealer, new_key_set, public_key_set, seal

    private = new_key_set("k1")
    key = PseudonymKey("v1", b"test-key", Unsealer(private).unseal)
    event = load("placement_started")
    clear = check_event(
        event, authenticated_provider="hvb-eken", providers=REGISTRY, today=TODAY, now=NOW, key=key
    )
    sealed_event = json.loads(json.dumps(event))
    sealed_event["data"]["person_id"] = seal(event["data"]["person_id"], public_key_set(private))
    assert event["data"]["person_id"] not in json.dumps(sealed_event)
    opened = check_event(
        sealed_event, authenticated_provider="hvb-eken", providers=REGISTRY, today=TODAY, now=NOW, key=key
    )
    assert isinstance(clear, CheckedEvent) and isinstance(opened, CheckedEvent)
    assert opened.fields["subject_ref"] == clear.fields["subject_ref"] and "person_id" not in opened.fields

    other = json.loads(json.dumps(event))
    other["data"]["person_id"] = seal(event["data"]["person_id"], public_key_set(new_key_set("k2")))
    damaged = json.loads(json.dumps(sealed_event))
    damaged["data"]["person_id"] = damaged["data"]["person_id"][:-4] + "AAAA"
    for refused in (other, damaged):
        result = check_event(
            refused, authenticated_provider="hvb-eken", providers=REGISTRY, today=TODAY, now=NOW, key=key
        )
        assert isinstance(result, Rejection)
        assert [(r.field, r.code) for r in result.reasons] == [("/data/person_id", "unsealable")]
    without_keys = check(sealed_event)  # an ingest with no keys opens nothing
    assert isinstance(without_keys, Rejection) and without_keys.reasons[0].code == "unsealable"


def test_a_refusal_is_filed_under_the_authenticated_sender() -> None:
    result = check(load("placement_started"), provider="familjehem-vast")
    assert isinstance(result, Rejection) and result.source == "provider/familjehem-vast"
