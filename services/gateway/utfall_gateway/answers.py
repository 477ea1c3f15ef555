"""Typed answers of the results API: what a row of results, a comparison and a scorecard hold. Routes declare
them as response models, so the OpenAPI document says what each field is and every answer is checked against
it on the way out. A row keeps the fields it was built with (`response_model_exclude_unset`): a reported
measure's row has `missing` and `pending`, a verified measure's `excluded` and `unverified`, a suppressed row
its dimensions and nulls."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Count = int | None
Rate = float | None


class ResultRow(BaseModel):
    """One published row: its dimensions, counts and rates, or only its dimensions when suppressed."""

    # comparisons add a provider's risk adjustment, funnel judgement, data errors and display name
    model_config = ConfigDict(extra="allow")

    source: Literal["events", "self_reported", "verified"] = Field(
        description="events: as providers reported them; self_reported: aggregated submissions; verified: "
        "decided against registers"
    )
    status: Literal["ok", "suppressed"]
    exact: bool = Field(description="the reader's own cell, exact and live")
    provider_id: str | None = None
    unit_id: str | None = None
    municipality_code: str | None = None
    county_code: str | None = None
    target_group: str | None = None
    care_type: str | None = None
    legal_basis: str | None = None
    sex: str | None = None
    age_band: str | None = None
    discharge_year: int | None = None
    discharge_quarter: int | None = None
    result: Literal["final", "preliminary"] | None = None
    episodes: Count = None
    achieved: Count = None
    not_achieved: Count = None
    missing: Count = Field(None, description="reported measures: no outcome once the window closed")
    pending: Count = Field(None, description="reported measures: the window is still open")
    excluded: Count = Field(None, description="verified measures: a death or emigration the register holds")
    unverified: Count = Field(None, description="verified measures: not covered by a register (yet)")
    closed: Count = None
    windows_closed: Count = None
    windows_closed_share: Rate = None
    observed_rate: Rate = None
    itt_rate: Rate = None
    ci_low: Rate = None
    ci_high: Rate = None


class ReleaseRef(BaseModel):
    number: int
    data_as_of: str
    min_cell: int


class Localised(BaseModel):
    sv: str
    en: str


class MeasureOut(BaseModel):
    """One version of a measure's definition, as published."""

    id: str
    version: int
    title: Localised
    definition: Localised
    window_months: int | None
    grace_days: int | None
    source_fields: list[str]
    current: bool
    rule: str
    source: Literal["reported", "verified"] = Field(
        description="verified: decided against registers (`<id>@register`), counted achieved, not achieved, "
        "excluded and unverified; reported: as the providers' events give it"
    )
    verifies: str | None = Field(description="verified: the reported measure it checks")
    final_when: str


class MeasureVersionsOut(MeasureOut):
    versions: list[MeasureOut]


class MeasuresOut(BaseModel):
    measures: list[MeasureOut]


class ResultsOut(BaseModel):
    measure_id: str
    period: Literal["year", "quarter"]
    group_by: list[str]
    filters: dict[str, str]
    min_cell: int
    rows: list[ResultRow]
    totals: list[ResultRow]
    release: ReleaseRef | None = Field(description="the release the figures outside your scope come from")
    next_cursor: str | None


class ComparisonOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    measure_id: str
    year: int | None
    filters: dict[str, str]
    providers: list[ResultRow]
    total: ResultRow | None
    self_reported_total: ResultRow | None = None
    funnel: dict[str, Any] | None = None
    min_cell: int | None = None  # a release's (in `release`) when the answer comes from one
    risk_adjustment: dict[str, Any] | None = None
    release: ReleaseRef | None = None


class ScorecardMeasure(BaseModel):
    measure: MeasureOut
    year: int | None
    provider: ResultRow | None
    self_reported: ResultRow | None
    all_providers: ResultRow | None


class ScorecardOut(BaseModel):
    provider_id: str
    display_name: str
    year: int | None
    exact: bool
    measures: list[ScorecardMeasure]
    data_errors: Any = None
    length_of_stay: list[dict[str, Any]] | None = None


class ProviderOut(BaseModel):
    """A registered, active provider, as the registry publishes it."""

    provider_id: str
    display_name: str
    organisation_number: str
    care_types: list[str]


class ProvidersOut(BaseModel):
    providers: list[ProviderOut]
