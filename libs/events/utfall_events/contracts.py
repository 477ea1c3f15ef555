"""Outcome contract definitions (INDIGO-like), as loaded from YAML or sent on `contracts.commands.v1`."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .vocabulary import CareType, LegalBasis, TargetGroup

ContractId = Annotated[str, StringConstraints(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9\-]+$")]


class CohortRuleV1(BaseModel):
    """Who is enrolled: every placement matching all of these (an empty list means any)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    care_types: list[CareType] = Field(default_factory=list)
    target_groups: list[TargetGroup] = Field(default_factory=list)
    legal_bases: list[LegalBasis] = Field(default_factory=list)
    municipalities: list[Annotated[str, StringConstraints(pattern=r"^\d{4}$")]] = Field(default_factory=list)
    min_age: int = Field(0, ge=0, le=20)
    max_age: int = Field(20, ge=0, le=20)
    enrolment_from: date
    enrolment_to: date

    @model_validator(mode="after")
    def _ranges(self) -> CohortRuleV1:
        if self.min_age > self.max_age:
            raise ValueError("min_age must not exceed max_age")
        if self.enrolment_from > self.enrolment_to:
            raise ValueError("enrolment_from must not be after enrolment_to")
        return self


class MilestoneV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    milestone_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_\-]{1,64}$")]
    measure_id: str
    price_ore: int = Field(gt=0)


class ContractDefinitionV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_id: ContractId
    name: str = Field(min_length=1, max_length=200)
    commissioner_municipality: Annotated[str, StringConstraints(pattern=r"^\d{4}$")]
    funder: Annotated[str, StringConstraints(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9\-]+$")]
    provider_ids: list[str] = Field(min_length=1)
    cohort: CohortRuleV1
    milestones: list[MilestoneV1] = Field(min_length=1)
    per_participant_cap_ore: int = Field(gt=0)
    total_cap_ore: int = Field(gt=0)
    currency: Literal["SEK"] = "SEK"

    @model_validator(mode="after")
    def _unique_milestones(self) -> ContractDefinitionV1:
        ids = [m.milestone_id for m in self.milestones]
        if len(ids) != len(set(ids)):
            raise ValueError("milestone_id values must be unique")
        return self
