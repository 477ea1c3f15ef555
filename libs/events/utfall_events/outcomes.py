"""`outcomes.v1`: one outcome fact per ended episode and measure, published whenever its status changes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FactStatus = Literal["achieved", "not_achieved", "missing", "pending", "void"]
OUTCOME_FACT_TYPE = "se.utfall.outcome.fact.v1"


class EventRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    id: str


class EpisodeDimensions(BaseModel):
    """The breakdown values of an episode, as of its (non-retracted) placement.started."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider_id: str
    unit_id: str
    municipality_code: str
    care_type: str
    legal_basis: str
    target_group: str
    sex: str
    age_at_start: int
    start_date: date
    end_date: date | None


class OutcomeFactV1(BaseModel):
    """The status of one measure for one episode.

    `void` means the fact no longer exists (the episode's end or start was retracted): a consumer that
    paid on it must reverse. `revision` grows by one with every published change of the fact.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fact_id: str = Field(description="provider_id/episode_id/measure_id")
    measure_id: str
    measure_version: int
    subject_ref: str
    episode_id: str
    status: FactStatus
    previous_status: FactStatus | None
    revision: int = Field(ge=1)
    evidence: list[EventRef]
    determined_at: datetime
    outcome_date: date | None = Field(
        default=None,
        description="The day the evidence settled the status: the discharge date (discharge measures), the "
        "deciding follow-up's assessment date, the re-placement's start, or the day after the window and grace "
        "closed. Null while pending and when void. Contracts pay in this order (first determined, first paid).",
    )
    episode: EpisodeDimensions
