"""The closed vocabularies of the care event contract (SPEC section 3)."""

from __future__ import annotations

from typing import Literal, get_args

CareType = Literal["hvb", "family_home", "supported_housing", "sis", "outpatient"]
LegalBasis = Literal["SoL", "LVU"]
TargetGroup = Literal[
    "behaviour", "substance_use", "mental_health", "neuropsychiatric", "unaccompanied", "other"
]
EndReason = Literal["planned", "unplanned", "moved_to_other_care", "aged_out", "other"]
Destination = Literal[
    "parents",
    "relatives",
    "family_home",
    "own_housing",
    "supported_housing",
    "hvb",
    "sis",
    "other",
    "unknown",
]
LivingSituation = Literal[
    "parents", "relatives", "family_home", "own_housing", "supported_housing", "institution", "unknown"
]
FollowupMonth = Literal[6, 12, 24]
Sex = Literal["female", "male"]
AgeBand = Literal["0-12", "13-15", "16-17", "18-20"]

CARE_TYPES: tuple[str, ...] = get_args(CareType)
LEGAL_BASES: tuple[str, ...] = get_args(LegalBasis)
TARGET_GROUPS: tuple[str, ...] = get_args(TargetGroup)
END_REASONS: tuple[str, ...] = get_args(EndReason)
DESTINATIONS: tuple[str, ...] = get_args(Destination)
LIVING_SITUATIONS: tuple[str, ...] = get_args(LivingSituation)
SEXES: tuple[str, ...] = get_args(Sex)
AGE_BANDS: tuple[str, ...] = get_args(AgeBand)

# The dimensions an episode's results break down by (the gateway's filters and group_by), and the strata of
# indirect standardisation: named once, here.
EPISODE_DIMENSIONS: tuple[str, ...] = (
    "provider_id",
    "unit_id",
    "municipality_code",
    "county_code",
    "target_group",
    "care_type",
    "legal_basis",
    "sex",
    "age_band",
)
RISK_STRATA: tuple[str, ...] = ("age_band", "sex", "legal_basis", "target_group")

# The care event types: the one place they are named (models, decoders, admission and read models take them here).
CareEventType = Literal[
    "se.utfall.placement.started.v1",
    "se.utfall.placement.ended.v1",
    "se.utfall.followup.recorded.v1",
    "se.utfall.event.retracted.v1",
]
CARE_EVENT_TYPES: tuple[CareEventType, ...] = get_args(CareEventType)
PLACEMENT_STARTED, PLACEMENT_ENDED, FOLLOWUP_RECORDED, EVENT_RETRACTED = CARE_EVENT_TYPES


def age_band(age: int) -> AgeBand:
    if age <= 12:
        return "0-12"
    if age <= 15:
        return "13-15"
    if age <= 17:
        return "16-17"
    return "18-20"
