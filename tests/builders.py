"""Contract definitions for tests: one builder, so every test states only what its case is about."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from utfall_events.contracts import ContractDefinitionV1

EVERY_CARE_TYPE = ["hvb", "family_home", "supported_housing", "sis"]


def milestones(prices: Mapping[str, int], *, ids: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One milestone per measure at its price; the milestone id is the measure id with dashes, unless given."""
    return [
        {"milestone_id": (ids or {}).get(m, m.replace("_", "-")), "measure_id": m, "price_ore": p}
        for m, p in prices.items()
    ]


def contract_document(
    contract_id: str,
    providers: Iterable[str],
    prices: Mapping[str, int] | list[dict[str, Any]],
    *,
    per_participant_cap_ore: int,
    total_cap_ore: int,
    care_types: Iterable[str] = ("hvb",),
    enrolment: tuple[str, str] = ("2020-01-01", "2030-12-31"),
    ages: tuple[int, int] = (0, 20),
    name: str = "test contract",
    funder: str = "fund",
    **cohort: Any,
) -> dict[str, Any]:
    """A contract as its YAML file or admin API request holds it. A per-participant cap above the total cap is
    refused on entry; it binds exactly as one equal to the total, so it is lowered to it here."""
    return {
        "contract_id": contract_id,
        "name": name,
        "commissioner_municipality": "0180",
        "funder": funder,
        "provider_ids": list(providers),
        "cohort": {
            "care_types": list(care_types),
            "min_age": ages[0],
            "max_age": ages[1],
            "enrolment_from": enrolment[0],
            "enrolment_to": enrolment[1],
            **cohort,
        },
        "milestones": prices if isinstance(prices, list) else milestones(prices),
        "per_participant_cap_ore": min(per_participant_cap_ore, total_cap_ore),
        "total_cap_ore": total_cap_ore,
    }


def contract_definition(*args: Any, **kwargs: Any) -> ContractDefinitionV1:
    return ContractDefinitionV1.model_validate(contract_document(*args, **kwargs))
