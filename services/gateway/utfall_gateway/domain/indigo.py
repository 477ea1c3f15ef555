"""A contract in the shape of the INDIGO impact bond data standard (project schema, `schema/project.json` of
INDIGO-Initiative/indigo-data-standard): outcome metrics, their pricing, the outcome payer's commitment,
outcome payments per period typed Planned or Actual, and results; every section carries a PUBLIC, PRIVATE or
DISPUTED status. Pure: the figures come from the ledger, the forecast and the participants' outcomes.

Amounts are in kronor (INDIGO's money values are in the currency's units). Organisation ids are Utfall's own
(`utfall:municipality:0180`, `utfall:funder:…`, `utfall:provider:…`), not ids the INDIGO registry assigned.
A payment under an open dispute makes its period's row DISPUTED; results of fewer than `min_cell`
participants are PRIVATE (counts that small are not published, as on the public pages).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from utfall_events.catalogue import CATALOGUE
from utfall_events.periods import parse_period

STANDARD = "INDIGO impact bond data standard, project schema (4.1)"
_MEASURES = {m.id: m for m in CATALOGUE}


@dataclass(frozen=True, slots=True)
class ActualPayments:
    period: str  # 2026-Q1 or 2026-03
    milestone_id: str
    provider_id: str
    net_ore: int
    open_disputes: int


@dataclass(frozen=True, slots=True)
class MilestoneResult:
    milestone_id: str
    engaged: int  # participants enrolled
    achieved: int


def _v(value: Any, status: str | None = None) -> dict[str, Any]:
    return {"value": value} if status is None else {"value": value, "status": status}


def _small(count: int, min_cell: int) -> bool:
    return 0 < count < min_cell


def _kr(ore: int) -> float:
    return ore / 100


def _dates(label: str) -> dict[str, Any]:
    period = parse_period(label)
    assert period is not None
    return {"start_date": _v(period.start.date().isoformat()), "end_date": _v(period.last_day.isoformat())}


def export(
    contract: Mapping[str, Any],
    forecast: Mapping[str, Any],
    actual: Sequence[ActualPayments],
    results: Sequence[MilestoneResult],
    *,
    min_cell: int,
    today: date,
) -> dict[str, Any]:
    definition = dict(contract["definition"])
    cohort = definition["cohort"]
    payer = f"utfall:municipality:{contract['commissioner_municipality']}"
    milestones = definition["milestones"]
    population = (
        f"Young people aged {cohort['min_age']}–{cohort['max_age']} placed in out-of-home care "
        f"({', '.join(cohort['care_types']) or 'any care type'}; target groups "
        f"{', '.join(cohort['target_groups']) or 'any'}) with the contracted providers, placements starting "
        f"{cohort['enrolment_from']} to {cohort['enrolment_to']}"
    )
    metrics = [
        {
            "id": m["milestone_id"],
            "definition": _v(
                _MEASURES[m["measure_id"]].definition_en if m["measure_id"] in _MEASURES else m["measure_id"]
            ),
            "target_population": _v(population),
            "unit_type_of_targeted_service_users_or_beneficiaries": _v("Individual"),
            "outcome_validation_method": _v(
                "Validated administrative data"
                if m.get("validation") == "register"
                else "Simple ex-post verification"
            ),
            "data_source_for_outcome_validation": _v(
                "Administrative registers (a municipality's or a national register of placements, school and "
                "work status, deaths and emigrations), matched to the providers' events; paid only once the "
                f"register covers the outcome and confirms it; measure {m['measure_id']} of the Utfall catalogue"
                if m.get("validation") == "register"
                else "Administrative data: placement, discharge and follow-up events reported by the providers, "
                f"measure {m['measure_id']} of the Utfall catalogue"
            ),
            "policy_sector": _v("Child and family welfare"),
            "status": "PUBLIC",
        }
        for m in milestones
    ]
    pricings = [
        {
            "outcome_metric_id": _v(m["milestone_id"]),
            "currency": _v(definition.get("currency", "SEK")),
            "price_per_unit": {"amount": _v(_kr(int(m["price_ore"])))},
            "price_description": _v(
                f"per participant achieving the outcome; at most {_kr(int(definition['per_participant_cap_ore'])):.2f} "
                f"per participant and {_kr(int(definition['total_cap_ore'])):.2f} in total"
            ),
            "status": "PUBLIC",
        }
        for m in milestones
    ]
    paid = int(contract["paid_net_ore"])
    disputed_anywhere = any(a.open_disputes for a in actual)
    commitments = [
        {
            "organisation_id": _v(payer),
            "organisation_role_category": _v("Government/Public Sector/Public Bank"),
            "maximum_potential_outcome_payment": {
                "currency": _v(definition.get("currency", "SEK"), "PUBLIC"),
                "amount": _v(_kr(int(definition["total_cap_ore"]))),
            },
            "result_type": _v("Interim"),
            "period": {"start_date": _v(str(cohort["enrolment_from"])), "end_date": _v(today.isoformat())},
            "total_outcome_payments": {
                "currency": _v(
                    definition.get("currency", "SEK"), "DISPUTED" if disputed_anywhere else "PUBLIC"
                ),
                "amount": _v(_kr(paid)),
            },
            "status": "DISPUTED" if disputed_anywhere else "PUBLIC",
        }
    ]
    payments: list[dict[str, Any]] = []
    for row in sorted(actual, key=lambda a: (a.period, a.milestone_id, a.provider_id)):
        payments.append(
            {
                "outcome_metric_id": _v(row.milestone_id),
                "period": _dates(row.period),
                "payer_organisation_id": _v(payer),
                "recipient_organisation_id": _v(f"utfall:provider:{row.provider_id}"),
                "type": _v("Actual"),
                "money": {"currency": _v(definition.get("currency", "SEK")), "amount": _v(_kr(row.net_ore))},
                "status": "DISPUTED" if row.open_disputes else "PUBLIC",
                "notes": f"net of reversals; {row.open_disputes} payment(s) under open dispute"
                if row.open_disputes
                else "net of reversals",
            }
        )
    for period in forecast["periods"]:
        for milestone_id, ore in period.get("planned_by_milestone_ore", {}).items():
            payments.append(
                {
                    "outcome_metric_id": _v(milestone_id),
                    "period": _dates(period["period"]),
                    "payer_organisation_id": _v(payer),
                    "type": _v("Planned"),
                    "money": {"currency": _v(definition.get("currency", "SEK")), "amount": _v(_kr(ore))},
                    "status": "PUBLIC",
                    "notes": "expected: price × observed rate of comparable episodes, by window close",
                }
            )
    result_rows = [
        {
            "outcome_metric_id": _v(r.milestone_id),
            "result_level": _v("Outcome level"),
            "result_type": _v("Interim"),
            "period": {"start_date": _v(str(cohort["enrolment_from"])), "end_date": _v(today.isoformat())},
            "number_engaged_in_impact_bond": _v(r.engaged),
            "number_with_positive_social_outcomes": _v(r.achieved),
            "status": "PRIVATE"
            if _small(r.engaged, min_cell)
            or _small(r.achieved, min_cell)
            or _small(r.engaged - r.achieved, min_cell)
            else "PUBLIC",
        }
        for r in results
    ]
    return {
        "status": "PUBLIC",
        "name": _v(contract["name"]),
        "stage_development": _v("Implementation"),
        "dates": {
            "start_date_of_service_provision": _v(str(cohort["enrolment_from"]), "PUBLIC"),
            "anticipated_end_date_of_service_provision": _v(str(cohort["enrolment_to"]), "PUBLIC"),
        },
        "jurisdiction": {"jurisdiction": _v("SE", "PUBLIC")},
        "overall_project_finance": {
            "maximum_potential_outcome_payment_v2": {
                "currency": _v(definition.get("currency", "SEK"), "PUBLIC"),
                "amount": _v(_kr(int(definition["total_cap_ore"])), "PUBLIC"),
            },
            "total_outcome_payments_made": {
                "currency": _v(definition.get("currency", "SEK"), "PUBLIC"),
                "amount": _v(_kr(paid), "DISPUTED" if disputed_anywhere else "PUBLIC"),
            },
            "notes": f"Utfall contract {contract['contract_id']} version {contract['version']}; {STANDARD}",
        },
        "outcome_metrics": metrics,
        "outcome_pricings": pricings,
        "outcome_payment_commitments": commitments,
        "outcome_payments": payments,
        "results": result_rows,
    }
