"""JSON Schemas generated from the pydantic models, checked in under `schemas/`.

`python -m utfall_events.schemas` rewrites them; a test fails when the models and the files drift.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from . import (
    aggregates,
    auth,
    care,
    cloudevents,
    contracts,
    ledger_commands,
    outcomes,
    payments,
    registers,
    registry,
    releases,
    webhooks,
)


def models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {
        "CloudEventV1": cloudevents.CloudEventV1,
        "PlacementStartedDataV1": care.PlacementStartedDataV1,
        "PlacementEndedDataV1": care.PlacementEndedDataV1,
        "FollowupRecordedDataV1": care.FollowupRecordedDataV1,
        "EventRetractedDataV1": care.EventRetractedDataV1,
        "CareEventV1": care.CareEventV1,
        "PublishedPlacementStartedV1": care.PublishedPlacementStartedV1,
        "PublishedPlacementEndedV1": care.PublishedPlacementEndedV1,
        "PublishedFollowupRecordedV1": care.PublishedFollowupRecordedV1,
        "PublishedEventRetractedV1": care.PublishedEventRetractedV1,
        "RejectedEventV1": care.RejectedEventV1,
        "OutcomeFactV1": outcomes.OutcomeFactV1,
        "EpisodeOutcomesV2": outcomes.EpisodeOutcomesV2,
        "PaymentV1": payments.PaymentV1,
        "ContractDefinitionV1": contracts.ContractDefinitionV1,
        "ApiKeyV1": auth.ApiKeyV1,
        "ProviderV1": registry.ProviderV1,
    }
    found["AggregateFiguresV1"] = aggregates.AggregateFiguresV1
    found["AggregateSubmissionV1"] = aggregates.AggregateSubmissionV1
    found["ReleaseV1"] = releases.ReleaseV1
    found["ReleaseMeasureV1"] = releases.ReleaseMeasureV1
    found["ReleasedCellV1"] = releases.ReleasedCellV1
    found["ReleaseAuditV1"] = releases.ReleaseAuditV1
    found["RegisterExtractV1"] = registers.RegisterExtractV1
    found["RegisterPlacementRowV1"] = registers.RegisterPlacementRowV1
    found["RegisterStatusRowV1"] = registers.RegisterStatusRowV1
    found["RegisterExclusionRowV1"] = registers.RegisterExclusionRowV1
    found["RegisterRecordV1"] = registers.RegisterRecordV1
    found["RegisterCoverageV1"] = registers.RegisterCoverageV1
    found["RegisterReceiptsV1"] = registers.RegisterReceiptsV1
    found["DisputePaymentV1"] = ledger_commands.DisputePaymentV1
    found["ResolveDisputeV1"] = ledger_commands.ResolveDisputeV1
    found["ClosePeriodV1"] = ledger_commands.ClosePeriodV1
    found["RegisterWebhookV1"] = webhooks.RegisterWebhookV1
    found["RotateWebhookSecretV1"] = webhooks.RotateWebhookSecretV1
    found["ReplayWebhookV1"] = webhooks.ReplayWebhookV1
    found["RemoveWebhookV1"] = webhooks.RemoveWebhookV1
    return found


def generate() -> dict[str, dict[str, Any]]:
    out = {}
    for name, model in models().items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://utfall.se/schemas/{name}.json"
        out[name] = schema
    return out


def schema_dir() -> Path:
    return Path(str(resources.files("utfall_events").joinpath("schemas")))


def schema_names() -> list[str]:
    return sorted(models())


@cache
def load_schema(name: str) -> dict[str, Any] | None:
    if name not in models():
        return None
    path = schema_dir() / f"{name}.json"
    return json.loads(path.read_text("utf-8")) if path.exists() else None


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_all(directory: Path | None = None) -> list[Path]:
    target = directory or schema_dir()
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in generate().items():
        path = target / f"{name}.json"
        path.write_text(render(schema), "utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else None):
        print(path)
