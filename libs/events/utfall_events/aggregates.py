"""Aggregated submissions: a provider's own outcome figures where it cannot send individual events.

The submission key is (provider, measure and version, period, target group and the optional breakdowns);
a resubmission of the same key is a new version that supersedes the previous one (history is kept).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator

from .auth import PersonV1
from .care import FreeText
from .vocabulary import AgeBand, CareType, LegalBasis, Sex, TargetGroup

# The columns of an aggregated CSV sheet, as ingest reads it and the providers' template offers it.
CSV_COLUMNS = (
    "provider_id",
    "measure_id",
    "measure_version",
    "period",
    "target_group",
    "care_type",
    "legal_basis",
    "sex",
    "age_band",
    "numerator",
    "denominator",
    "missing",
    "method",
)

Period = Annotated[
    str,
    StringConstraints(pattern=r"^(20\d\d)(-Q[1-4])?$"),
    Field(description="A discharge year (2024) or quarter (2024-Q3)"),
]


class AggregateFiguresV1(BaseModel):
    """What a provider submits (over HTTP as JSON, or as one CSV row)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9\-]+$", max_length=63)]
    measure_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+$", max_length=64)]
    measure_version: StrictInt = Field(ge=1)
    period: Period
    target_group: TargetGroup
    care_type: CareType | None = None
    legal_basis: LegalBasis | None = None
    sex: Sex | None = None
    age_band: AgeBand | None = None
    numerator: StrictInt = Field(ge=0, description="Closed episodes where the outcome was achieved")
    denominator: StrictInt = Field(
        ge=0, description="Closed episodes with an answer: achieved + not achieved"
    )
    missing: StrictInt = Field(
        0, ge=0, description="Closed episodes with no evidence (window closed, no answer)"
    )
    method: Annotated[FreeText, StringConstraints(min_length=1, max_length=1000)] = Field(
        description="How the figures were measured (source system, follow-up method)"
    )

    @model_validator(mode="after")
    def _numerator_within_denominator(self) -> AggregateFiguresV1:
        if self.numerator > self.denominator:
            raise ValueError("numerator must not exceed denominator")
        return self

    def key(self) -> str:
        parts = [
            self.provider_id,
            self.measure_id,
            str(self.measure_version),
            self.period,
            self.target_group,
            self.care_type or "*",
            self.legal_basis or "*",
            self.sex or "*",
            self.age_band or "*",
        ]
        return "/".join(parts)


class AggregateSubmissionV1(AggregateFiguresV1):
    """One message on `aggregates.v1` (keyed by submission key): a version of a submission."""

    submission_key: str
    version: int = Field(ge=1)
    supersedes: int | None = None
    submitted_at: datetime
    channel: Literal["json", "csv"]
    submitted_by: str | None = Field(
        None, description="the provider key's id, or person:<subject> for a person"
    )
    person: PersonV1 | None = Field(None, description="the provider's staff member who sent it, if signed in")
