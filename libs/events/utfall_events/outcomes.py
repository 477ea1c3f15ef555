"""Outcome facts: the status of each measure for each ended episode, published whenever it changes.

`outcomes.v2` (what measures publishes): one message per episode per change, holding every fact of it that
changed (`EpisodeOutcomesV2`). `outcomes.v1` (retired for writing, still read by contracts until its last
records are consumed): one message per fact (`OutcomeFactV1`). `EpisodeOutcomesV2.facts_v1()` gives the v1
view of a v2 message, so a consumer handles both the same way.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# `excluded`: only a verified fact (measure id ending `@register`): a death or emigration the register holds
FactStatus = Literal["achieved", "not_achieved", "missing", "pending", "void", "excluded"]
OUTCOME_FACT_TYPE = "se.utfall.outcome.fact.v1"
EPISODE_OUTCOMES_TYPE = "se.utfall.outcome.episode.v2"


class EventRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    id: str


@lru_cache(maxsize=1 << 16)
def known_event_ref(source: str, id: str) -> EventRef:
    """An EventRef of text already validated (our own rows, events that passed ingest), built once and shared:
    it is frozen, and pydantic's model_construct costs tens of µs a call (a seventh of contracts' CPU, which
    reads the same references back on every reconciliation)."""
    return EventRef.model_construct(source=source, id=id)


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


class OutcomeChangeV2(BaseModel):
    """One fact of an episode at its new revision (in `EpisodeOutcomesV2.facts`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    measure_id: str
    measure_version: int
    status: FactStatus
    previous_status: FactStatus | None
    revision: int = Field(ge=1)
    evidence: list[EventRef]
    outcome_date: date | None = None


class EpisodeOutcomesV2(BaseModel):
    """`outcomes.v2` (key: subject_ref): every fact of one episode that changed in one of measures'
    transactions, with the episode's dimensions once. The same rules as OutcomeFactV1 per fact: `void` means
    the fact no longer exists, `revision` grows by one with every published change of a fact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject_ref: str
    episode_id: str
    determined_at: datetime
    episode: EpisodeDimensions
    facts: list[OutcomeChangeV2] = Field(min_length=1)

    def facts_v1(self) -> list[OutcomeFactV1]:
        return [
            OutcomeFactV1(
                fact_id=f"{self.episode.provider_id}/{self.episode_id}/{f.measure_id}",
                measure_id=f.measure_id,
                measure_version=f.measure_version,
                subject_ref=self.subject_ref,
                episode_id=self.episode_id,
                status=f.status,
                previous_status=f.previous_status,
                revision=f.revision,
                evidence=f.evidence,
                determined_at=self.determined_at,
                outcome_date=f.outcome_date,
                episode=self.episode,
            )
            for f in self.facts
        ]
