"""The INDIGO export validates against the JSON Schema of the fields Utfall emits (written from the standard's
project schema), carries Planned and Actual payments per period, and marks disputed and small figures."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from utfall_gateway.domain.forecast import OpenMilestone, Rate, forecast
from utfall_gateway.domain.indigo import ActualPayments, MilestoneResult, export

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads(
    Path(str(resources.files("utfall_gateway").joinpath("indigo_project_subset.schema.json"))).read_text()
)
TODAY = date(2026, 11, 15)


def hvb_contract(paid: int) -> dict[str, object]:
    definition = yaml.safe_load((ROOT / "deploy" / "contracts" / "hvb-ungdom-stockholm.yaml").read_text())
    definition = json.loads(json.dumps(definition, default=str))
    return {
        "contract_id": definition["contract_id"],
        "version": 1,
        "name": definition["name"],
        "commissioner_municipality": definition["commissioner_municipality"],
        "definition": definition,
        "per_participant_cap_ore": definition["per_participant_cap_ore"],
        "total_cap_ore": definition["total_cap_ore"],
        "paid_net_ore": paid,
    }


def build(open_disputes: int = 0) -> dict[str, object]:
    contract = hvb_contract(paid=17_500_000)
    items = [
        OpenMilestone(
            "hvb-eken",
            f"e{i}",
            "no-replacement-12m",
            "no_replacement_12m",
            7_500_000,
            "hvb",
            "behaviour",
            date(2025, 1, 1),
            date(2026, 2, 1),
        )
        for i in range(12)
    ]
    rates = {("no_replacement_12m", "hvb", "behaviour"): Rate(60, 100)}
    planned = forecast(
        contract,
        items,
        {},
        rates,
        {},
        {"2026-Q2": 12_500_000, "2026-Q3": 5_000_000},
        period_kind="quarter",
        today=TODAY,
    )
    actual = [
        ActualPayments("2026-Q2", "planned-discharge", "hvb-eken", 5_000_000, 0),
        ActualPayments("2026-Q2", "no-replacement-12m", "hvb-eken", 7_500_000, open_disputes),
        ActualPayments("2026-Q3", "planned-discharge", "hvb-bjorken", 5_000_000, 0),
    ]
    results = [MilestoneResult("planned-discharge", 40, 25), MilestoneResult("no-replacement-12m", 40, 3)]
    return export(contract, planned, actual, results, min_cell=10, today=TODAY)


def test_export_of_the_hvb_contract_validates_against_the_standard_fields() -> None:
    document = build()
    jsonschema.validate(document, SCHEMA)
    assert [m["id"] for m in document["outcome_metrics"]] == [
        "planned-discharge",
        "no-replacement-12m",
        "no-replacement-24m",
        "education-or-work-12m",
    ]
    assert document["outcome_pricings"][0]["price_per_unit"]["amount"]["value"] == 50_000.0
    assert (
        document["overall_project_finance"]["maximum_potential_outcome_payment_v2"]["amount"]["value"]
        == 20_000_000.0
    )
    types = {p["type"]["value"] for p in document["outcome_payments"]}
    assert types == {"Planned", "Actual"}
    actual = sum(
        p["money"]["amount"]["value"] for p in document["outcome_payments"] if p["type"]["value"] == "Actual"
    )
    assert (
        actual
        == 175_000.0
        == document["overall_project_finance"]["total_outcome_payments_made"]["amount"]["value"]
    )
    planned = [p for p in document["outcome_payments"] if p["type"]["value"] == "Planned"]
    assert planned and all(p["period"]["start_date"]["value"] >= "2026-10-01" for p in planned)
    statuses = {r["outcome_metric_id"]["value"]: r["status"] for r in document["results"]}
    assert statuses == {"planned-discharge": "PUBLIC", "no-replacement-12m": "PRIVATE"}  # 3 achieved: too few


def test_an_open_dispute_marks_its_period_and_the_totals_disputed() -> None:
    document = build(open_disputes=1)
    jsonschema.validate(document, SCHEMA)
    disputed = [p for p in document["outcome_payments"] if p["status"] == "DISPUTED"]
    assert [p["outcome_metric_id"]["value"] for p in disputed] == ["no-replacement-12m"]
    assert document["outcome_payment_commitments"][0]["status"] == "DISPUTED"


@pytest.mark.parametrize(
    "broken",
    [
        lambda d: d["outcome_payments"][0]["type"].update(value="Forecast"),
        lambda d: d["outcome_payments"][0]["period"]["start_date"].update(value="Q1 2026"),
        lambda d: d.update(outcome_payment=[]),
        lambda d: d["results"][0].update(status="SECRET"),
    ],
)
def test_the_schema_refuses_what_the_standard_does_not_define(broken) -> None:  # type: ignore[no-untyped-def]
    document = build()
    broken(document)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA)
