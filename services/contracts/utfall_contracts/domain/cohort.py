"""Enrolment by rule: every placement matching a contract's cohort is a participant; nobody picks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from utfall_events.contracts import ContractDefinitionV1


@dataclass(frozen=True, slots=True)
class PlacementFacts:
    provider_id: str
    episode_id: str
    subject_ref: str
    municipality_code: str
    care_type: str
    legal_basis: str
    target_group: str
    age_at_start: int
    start_date: date


def enrols(contract: ContractDefinitionV1, placement: PlacementFacts) -> bool:
    rule = contract.cohort
    return (
        placement.provider_id in contract.provider_ids
        and (not rule.municipalities or placement.municipality_code in rule.municipalities)
        and (not rule.care_types or placement.care_type in rule.care_types)
        and (not rule.target_groups or placement.target_group in rule.target_groups)
        and (not rule.legal_bases or placement.legal_basis in rule.legal_bases)
        and rule.min_age <= placement.age_at_start <= rule.max_age
        and rule.enrolment_from <= placement.start_date <= rule.enrolment_to
    )
