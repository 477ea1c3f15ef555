"""The checked-in JSON Schemas are exactly what the models generate; golden examples validate against them."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from utfall_events.schemas import generate, render, schema_dir

EXAMPLES = Path(str(resources.files("utfall_events").joinpath("examples")))


@pytest.mark.parametrize("name", sorted(generate()))
def test_checked_in_schema_matches_the_model(name: str) -> None:
    path = schema_dir() / f"{name}.json"
    assert path.exists(), f"run `make schemas`: {path} is missing"
    assert path.read_text() == render(generate()[name]), f"{name} drifted from its model: run `make schemas`"


def test_no_stale_schema_files() -> None:
    assert {p.stem for p in schema_dir().glob("*.json")} == set(generate())


@pytest.mark.parametrize("path", sorted((EXAMPLES / "valid").glob("*.json")), ids=lambda p: p.stem)
def test_golden_examples_match_the_schemas(path: Path) -> None:
    envelope = json.loads((schema_dir() / "CloudEventV1.json").read_text())
    value = json.loads(path.read_text())
    for event in value if isinstance(value, list) else [value]:
        jsonschema.validate(event, envelope)
        name = "".join(p.capitalize() for p in event["type"].split(".")[2:4]) + "DataV1"
        jsonschema.validate(event["data"], json.loads((schema_dir() / f"{name}.json").read_text()))


def test_asyncapi_document_is_checked_in_and_current() -> None:
    from utfall_platform.asyncapi import document

    root = Path(__file__).resolve().parents[2]
    checked_in = json.loads((root / "docs" / "asyncapi.json").read_text())
    assert checked_in == document(), "run `python -m utfall_platform.asyncapi`"
    assert checked_in["asyncapi"] == "3.0.0"
    assert "payments.v1:publish" in checked_in["channels"]


@pytest.mark.parametrize("path", sorted((EXAMPLES / "messages").glob("*.json")), ids=lambda p: p.stem)
def test_golden_messages_match_schema_and_model(path: Path) -> None:
    from utfall_events.schemas import models

    case = json.loads(path.read_text())
    jsonschema.validate(case["message"], json.loads((schema_dir() / f"{case['schema']}.json").read_text()))
    model = models()[case["schema"]].model_validate(case["message"])
    assert json.loads(model.model_dump_json()) == case["message"]


CONTRACT_FILES = sorted((Path(__file__).resolve().parents[2] / "deploy" / "contracts").glob("*.yaml"))


@pytest.mark.parametrize("path", CONTRACT_FILES, ids=lambda p: p.name)
def test_contract_files_match_the_published_contract_schema(path: Path) -> None:
    """The contract file format is published as `ContractDefinitionV1.json`; every example contract is valid
    against that JSON Schema (what a contract author's editor checks) and against the model (what Utfall
    checks), so the two cannot drift apart unnoticed."""
    import yaml

    from utfall_events.contracts import ContractDefinitionV1

    document = yaml.safe_load(path.read_text("utf-8"))
    schema = json.loads((schema_dir() / "ContractDefinitionV1.json").read_text())
    jsonschema.validate(json.loads(json.dumps(document, default=str)), schema)
    ContractDefinitionV1.model_validate(document)
    assert CONTRACT_FILES, "deploy/contracts holds the example contracts"


def test_a_known_event_ref_is_the_validated_one_built_once() -> None:
    from utfall_events.outcomes import EventRef, known_event_ref

    ref = known_event_ref("provider/hvb-a", "e-1")
    validated = EventRef.model_validate({"source": "provider/hvb-a", "id": "e-1"})
    assert ref == validated and hash(ref) == hash(validated)
    assert ref.model_dump() == validated.model_dump() and ref.model_fields_set == validated.model_fields_set
    assert known_event_ref("provider/hvb-a", "e-1") is ref  # shared, not rebuilt
    assert known_event_ref("provider/hvb-a", "e-2") != ref
