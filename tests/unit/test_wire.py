"""The compiled decoders (`utfall_events.wire`, msgspec) are pinned to the pydantic models: every golden example
of `care.events.v1` data and `outcomes.v2` round-trips through both with the same values, and no valid or
mutated message is accepted by the fast path unless the model accepts it with the same values."""

from __future__ import annotations

import copy
import json
import os
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from utfall_events.care import PUBLISHED_MODEL_BY_TYPE
from utfall_events.codec import UndecodableRecord, decode_care_event, decode_episode_outcomes
from utfall_events.schemas import models
from utfall_events.wire import EpisodeOutcomesWire, fast_episode_outcomes, fast_published_data

MESSAGES = Path(str(resources.files("utfall_events").joinpath("examples"))) / "messages"
TYPE_BY_MODEL = {model.__name__: type_ for type_, model in PUBLISHED_MODEL_BY_TYPE.items()}
WIRED = {"EpisodeOutcomesV2", *TYPE_BY_MODEL}
GOLDEN = [
    (path.stem, case["schema"], case["message"])
    for path in sorted(MESSAGES.glob("*.json"))
    if (case := json.loads(path.read_text()))["schema"] in WIRED
]


def plain(wire: msgspec.Struct) -> Any:
    return msgspec.to_builtins(wire, builtin_types=(date, datetime))


def fast(schema: str, value: bytes) -> msgspec.Struct | None:
    if schema == "EpisodeOutcomesV2":
        return fast_episode_outcomes(value)
    return fast_published_data(TYPE_BY_MODEL[schema], value)


def by_model(schema: str, value: bytes) -> BaseModel | None:
    """What the model decides for the same bytes: outcomes.v2 from JSON; care event data the way
    `decode_care_event` reads it (orjson, then the model on the dict)."""
    model = models()[schema]
    try:
        if schema == "EpisodeOutcomesV2":
            return model.model_validate_json(value)
        return model.model_validate(orjson.loads(value))
    except (ValidationError, orjson.JSONDecodeError):
        return None


def test_every_wired_schema_has_a_golden_example() -> None:
    assert {schema for _, schema, _ in GOLDEN} == WIRED


@pytest.mark.parametrize(("name", "schema", "message"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_examples_round_trip_through_both(name: str, schema: str, message: dict[str, Any]) -> None:
    value = orjson.dumps(message)
    wire = fast(schema, value)
    model = by_model(schema, value)
    assert wire is not None and model is not None
    assert plain(wire) == model.model_dump()
    # each one's encoding reads back through the other
    assert models()[schema].model_validate_json(msgspec.json.encode(wire)) == model
    again = fast(schema, model.model_dump_json().encode())
    assert again == wire
    assert json.loads(msgspec.json.encode(wire)) == json.loads(model.model_dump_json()) == message


# --- mutations: values a producer bug or a hostile writer could put anywhere in a message ----------------

EDGE_VALUES = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        1,
        -1,
        15,
        15.0,
        21,
        2**63,
        2**70,
        1.5,
        "",
        " ",
        "15",
        "true",
        "null",
        "2024-03-01",
        "2024-02-30",
        "2024-03-01\n",
        "2024-03-01T00:00:00",
        "2024-03-01Z",
        "20240301",
        "2024-11-20T15:30:02.118000Z",
        "2024-11-20 15:30:02z",
        "2024-11-20T15:30:02",
        "2024-11-20t15:30:02Z",
        "2024-11-20T15:30:02+01:00",
        "2024-11-20T24:00:00Z",
        "1732116602",
        "hvb",
        "hvb\n",
        "HVB",
        "achieved",
        "void",
        "pending\n",
        "ep-1\n",
        "199001011239",
        "19900101-1239",
        "ep-19900101-1239",
        "v1:ABC\n",
        "v1:abc",
        "v1:ABC",
        "0180",
        "0180\n",
        "180",
        "a" * 65,
        "\u00e5",
        "e\x00",
        [],
        {},
        [{"source": "provider/a", "id": "e1"}],
        {"source": "provider/a", "id": "e1"},
    ]
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | EDGE_VALUES,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


def _near(value: Any) -> list[Any]:
    """Values close to a valid one: the same, another spelling of it, or just off it."""
    near: list[Any] = [value, None, str(value)]
    if isinstance(value, str):
        near += [
            value + "\n",
            " " + value,
            value.upper(),
            value[:-1],
            value + value[-1:],
            value.replace("-", ""),
        ]
    if isinstance(value, bool):
        near += [int(value), not value]
    elif isinstance(value, int):
        near += [float(value), value + 1, value - 1, -value, value * 2]
    if isinstance(value, list):
        near += [[], value + value, value[:1]]
    return near


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    _, schema, message = draw(st.sampled_from(GOLDEN))
    document = json.loads(json.dumps(message))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        path = draw(st.sampled_from(_paths(document)[1:]))
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace"] * 6 + ["delete", "add"]))
        if action == "replace":
            original = parent[path[-1]]
            # a copy: a value drawn from a fixed list is one shared object, and a later mutation must not
            # change it (nor make it part of itself)
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(_near(original)) | JSON_VALUES))
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = copy.deepcopy(draw(JSON_VALUES))
        else:
            parent.append(copy.deepcopy(draw(JSON_VALUES)))
    return schema, json.dumps(document).encode()  # orjson refuses integers past 64 bits; a writer may not


@settings(
    max_examples=int(os.environ.get("WIRE_EXAMPLES", "1500")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=mutated())
def test_the_fast_path_accepts_nothing_the_model_refuses(case: tuple[str, bytes]) -> None:
    schema, value = case
    wire = fast(schema, value)
    if wire is not None:
        model = by_model(schema, value)
        assert model is not None, f"fast path accepted what {schema} refuses: {value!r}"
        assert plain(wire) == model.model_dump()


@settings(max_examples=int(os.environ.get("WIRE_EXAMPLES", "300")), deadline=None)
@given(case=mutated())
def test_decoding_gives_what_the_model_gives_or_refuses_as_the_model_does(case: tuple[str, bytes]) -> None:
    """The public decoders, fast path and fallback together, decide exactly as the models do."""
    schema, value = case
    model = by_model(schema, value)
    if schema == "EpisodeOutcomesV2":
        try:
            decoded: Any = plain(decode_episode_outcomes(value))
        except UndecodableRecord:
            decoded = None
        assert decoded == (None if model is None else model.model_dump())
        return
    headers = [
        ("ce_id", b"e-1"),
        ("ce_source", b"provider/hvb-eken"),
        ("ce_type", TYPE_BY_MODEL[schema].encode()),
        ("ce_time", b"2024-03-01T10:00:00+00:00"),
    ]
    try:
        event = decode_care_event(headers, value)
    except UndecodableRecord:
        assert model is None
    else:
        assert model is not None and event.data == orjson.loads(value)


@pytest.mark.parametrize(("name", "schema", "message"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_every_field_set_to_every_near_value(name: str, schema: str, message: dict[str, Any]) -> None:
    """Exhaustive where the generated cases are a sample: each field of each golden example replaced by each
    value near its own (a trailing newline, another spelling, one off), deleted, or joined by an unknown one."""
    checked = 0
    for path in _paths(message)[1:]:
        original: Any = message
        for step in path:
            original = original[step]
        for action, replacement in [("delete", None), ("add", 1), *(("replace", v) for v in _near(original))]:
            document = json.loads(json.dumps(message))
            parent = document
            for step in path[:-1]:
                parent = parent[step]
            if action == "replace":
                parent[path[-1]] = copy.deepcopy(replacement)
            elif action == "delete":
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent["unknown_field"] = replacement
            else:
                parent.append(replacement)
            value = json.dumps(document).encode()
            wire = fast(schema, value)
            if wire is not None:
                model = by_model(schema, value)
                assert model is not None, f"fast path accepted what {schema} refuses: {value!r}"
                assert plain(wire) == model.model_dump()
            checked += 1
    assert checked > 50


def test_duplicate_keys_are_checked_each_and_the_last_counts() -> None:
    _, _, message = next(g for g in GOLDEN if g[1] == "PublishedPlacementStartedV1")
    body = orjson.dumps(message)[:-1]
    assert fast("PublishedPlacementStartedV1", body + b',"age_at_start":99,"age_at_start":16}') is None
    twice = fast("PublishedPlacementStartedV1", body + b',"age_at_start":16}')
    assert twice is not None and twice.age_at_start == 16  # type: ignore[attr-defined]
    assert orjson.loads(body + b',"age_at_start":16}')["age_at_start"] == 16


def test_a_lax_spelling_the_model_accepts_goes_through_the_model() -> None:
    _, _, message = next(g for g in GOLDEN if g[1] == "EpisodeOutcomesV2")
    lax = json.loads(json.dumps(message))
    lax["facts"][0]["revision"] = "2"
    value = orjson.dumps(lax)
    assert fast_episode_outcomes(value) is None
    decoded = decode_episode_outcomes(value)
    assert isinstance(decoded, EpisodeOutcomesWire) and decoded.facts[0].revision == 2


def test_bad_input_is_refused_with_the_models_reasons() -> None:
    _, _, message = next(g for g in GOLDEN if g[1] == "EpisodeOutcomesV2")
    bad = json.loads(json.dumps(message))
    bad["facts"][0]["revision"] = 0
    with pytest.raises(UndecodableRecord, match=r"not a valid EpisodeOutcomesV2: facts\.0\.revision"):
        decode_episode_outcomes(orjson.dumps(bad))
    with pytest.raises(UndecodableRecord):
        decode_episode_outcomes(b"not json")


def test_an_identifier_shaped_like_a_personnummer_is_left_to_the_model_which_refuses_it() -> None:
    _, _, message = next(g for g in GOLDEN if g[1] == "PublishedPlacementEndedV1")
    value = orjson.dumps({**message, "episode_id": "ep-199001011239"})
    assert fast("PublishedPlacementEndedV1", value) is None
    assert by_model("PublishedPlacementEndedV1", value) is None


def test_the_identifier_rules_are_one_definition_for_the_models_and_the_decoders() -> None:
    """care.py's TextRules give both the pydantic constraints (and JSON Schemas) and the msgspec ones; the
    decoders' patterns are the models' with `\\Z` for `$`, so a trailing newline fails both."""
    import msgspec
    from pydantic import TypeAdapter

    from utfall_events import care, wire

    pairs = [
        (care.EPISODE_ID, care.EpisodeId, wire.EpisodeId, "ep-1"),
        (care.PROVIDER_ID, care.ProviderId, wire.ProviderId, "hvb-a"),
        (care.UNIT_ID, care.UnitId, wire.UnitId, "unit-1"),
        (care.MUNICIPALITY_CODE, care.MunicipalityCode, wire.MunicipalityCode, "0180"),
        (care.SUBJECT_REF, care.SubjectRef, wire.SubjectRef, "v1:ABC234"),
    ]
    for rule, model_type, wire_type, good in pairs:
        schema = TypeAdapter(model_type).json_schema()
        assert schema["pattern"] == rule.pattern and rule.python_pattern == rule.pattern[:-1] + "\\Z"
        (meta,) = wire_type.__metadata__
        assert (meta.pattern, meta.min_length, meta.max_length) == (
            rule.python_pattern,
            rule.min_length,
            rule.max_length,
        )
        assert TypeAdapter(model_type).validate_python(good) == msgspec.convert(good, wire_type) == good
        for bad in (good + "\n", "\n" + good, ""):
            with pytest.raises(ValueError):
                TypeAdapter(model_type).validate_python(bad)
            with pytest.raises(msgspec.ValidationError):
                msgspec.convert(bad, wire_type)
    with pytest.raises(ValueError, match="anchored"):
        care.TextRule(r"^[a-z]+")
