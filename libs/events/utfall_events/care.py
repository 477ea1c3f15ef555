"""Care events: what providers send (with the personnummer) and what ingest publishes (pseudonymised).

Inbound models (`*DataV1`) are the provider contract of SPEC section 3. Published models (`Published*V1`)
are what `care.events.v1` carries: the personnummer is replaced by `subject_ref`, and `birth_year`, `sex`
and `age_at_start` are derived from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

from .personnummer import looks_like_personnummer
from .sealed import SEALED_PATTERN
from .vocabulary import (
    EVENT_RETRACTED,
    FOLLOWUP_RECORDED,
    PLACEMENT_ENDED,
    PLACEMENT_STARTED,
    CareEventType,
    CareType,
    Destination,
    EndReason,
    FollowupMonth,
    LegalBasis,
    LivingSituation,
    Sex,
    TargetGroup,
)

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _require_iso_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        return value  # pydantic then rejects impossible dates such as 2023-02-30
    raise ValueError("must be a calendar date written YYYY-MM-DD")


IsoDate = Annotated[date, BeforeValidator(_require_iso_date)]

_ISO_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _require_iso_date_time(value: Any) -> Any:
    """A moment is written as ISO 8601 with its offset: a bare number is never taken for a Unix time."""
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATE_TIME.match(value)):
        return value  # AwareDatetime then refuses one without an offset
    raise ValueError("must be an ISO 8601 date-time with an offset, e.g. 2026-12-05T13:00:00Z")


IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_require_iso_date_time)]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


def _not_a_personnummer(value: str) -> str:
    # an identifier is published and shown: one shaped like an identity number is refused wherever it appears
    if looks_like_personnummer(value):
        raise PydanticCustomError(
            "personnummer_in_identifier", "identifiers must not contain a personal identity number"
        )
    return value


FreeText = Annotated[str, AfterValidator(_no_control_characters)]


@dataclass(frozen=True)
class TextRule:
    """One identifier's constraints, for the models (pydantic, and their JSON Schemas) and for the compiled
    decoders (`wire.py`, msgspec): one definition, so a constraint cannot be added to one side only."""

    pattern: str  # anchored with ^ and $, as JSON Schema and pydantic read it
    min_length: int | None = None
    max_length: int | None = None

    def __post_init__(self) -> None:
        if not (self.pattern.startswith("^") and self.pattern.endswith("$")):
            raise ValueError(f"a rule's pattern is anchored at both ends: {self.pattern!r}")

    def constraints(self) -> StringConstraints:
        return StringConstraints(min_length=self.min_length, max_length=self.max_length, pattern=self.pattern)

    @property
    def python_pattern(self) -> str:
        """The pattern for Python's `re` (msgspec): `$` there also matches before a final newline, `\\Z`
        does not, as pydantic's `$` does not."""
        return self.pattern[:-1] + r"\Z"


EPISODE_ID = TextRule(r"^[A-Za-z0-9._:\-]+$", min_length=1, max_length=64)
PROVIDER_ID = TextRule(r"^[a-z0-9][a-z0-9\-]+$", min_length=2, max_length=63)
UNIT_ID = TextRule(r"^[A-Za-z0-9._:\-]+$", min_length=1, max_length=64)
MUNICIPALITY_CODE = TextRule(r"^\d{4}$")
SUBJECT_REF = TextRule(r"^v\d+:[A-Z2-7]+$")
EpisodeId = Annotated[str, EPISODE_ID.constraints(), AfterValidator(_not_a_personnummer)]
ProviderId = Annotated[str, PROVIDER_ID.constraints(), AfterValidator(_not_a_personnummer)]
UnitId = Annotated[str, UNIT_ID.constraints(), AfterValidator(_not_a_personnummer)]
MunicipalityCode = Annotated[str, MUNICIPALITY_CODE.constraints()]
PersonId = Annotated[
    str,
    StringConstraints(pattern=rf"^(\d{{8}}-?\d{{4}}|{SEALED_PATTERN})$", max_length=8400),
    Field(
        description="Personnummer or samordningsnummer, 12 digits (YYYYMMDDNNNC), optional hyphen; or the same "
        "sealed to ingest's public key (GET /v1/keys/person-id on ingest): a JWE compact serialisation, "
        "ECDH-ES+A256KW with A256GCM"
    ),
]
SubjectRef = Annotated[str, SUBJECT_REF.constraints()]
Unknowable = StrictBool | None


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlacementStartedDataV1(_Data):
    """`se.utfall.placement.started.v1`: a young person is placed with a provider."""

    episode_id: EpisodeId
    person_id: PersonId
    provider_id: ProviderId
    unit_id: UnitId
    municipality_code: MunicipalityCode = Field(description="SCB code of the placing municipality")
    care_type: CareType
    legal_basis: LegalBasis
    target_group: TargetGroup
    start_date: IsoDate


class PlacementEndedDataV1(_Data):
    """`se.utfall.placement.ended.v1`: the placement ends (discharge)."""

    episode_id: EpisodeId
    end_date: IsoDate
    end_reason: EndReason
    destination: Destination


class FollowupRecordedDataV1(_Data):
    """`se.utfall.followup.recorded.v1`: a follow-up 6, 12 or 24 months after discharge."""

    episode_id: EpisodeId
    followup_month: FollowupMonth
    assessed_on: IsoDate
    living_situation: LivingSituation
    in_education_or_work: Unknowable = None
    replaced_since_discharge: Unknowable = None
    offending: Unknowable = None
    substance_misuse: Unknowable = None


class EventRetractedDataV1(_Data):
    """`se.utfall.event.retracted.v1`: the named event no longer counts; a corrected one may follow."""

    retracted_event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    reason: Annotated[FreeText, StringConstraints(min_length=1, max_length=500)]


# --- published on care.events.v1 (no personnummer) -------------------------------------------------


class _Published(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    subject_ref: SubjectRef = Field(description="Keyed HMAC-SHA256 pseudonym of the person, versioned")
    provider_id: ProviderId
    episode_id: EpisodeId


class PublishedPlacementStartedV1(_Published):
    birth_year: int = Field(ge=1900, le=2100)  # from a personnummer; bounded so every decoder agrees on it
    sex: Sex
    age_at_start: int = Field(ge=0, le=20)
    unit_id: UnitId
    municipality_code: MunicipalityCode
    care_type: CareType
    legal_basis: LegalBasis
    target_group: TargetGroup
    start_date: date


class PublishedPlacementEndedV1(_Published):
    end_date: date
    end_reason: EndReason
    destination: Destination


class PublishedFollowupRecordedV1(_Published):
    followup_month: FollowupMonth
    assessed_on: date
    living_situation: LivingSituation
    in_education_or_work: bool | None = None
    replaced_since_discharge: bool | None = None
    offending: bool | None = None
    substance_misuse: bool | None = None


class PublishedEventRetractedV1(_Published):
    retracted_event_id: str
    retracted_event_type: str
    reason: str


PublishedData = (
    PublishedPlacementStartedV1
    | PublishedPlacementEndedV1
    | PublishedFollowupRecordedV1
    | PublishedEventRetractedV1
)


class CareEventV1(BaseModel):
    """One message on `care.events.v1`: CloudEvents attributes plus the pseudonymised data.

    On Kafka the attributes travel as binary-mode `ce_*` headers and `data` is the JSON value; this model
    is the decoded whole, used by consumers and by the JSON Schema.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    source: str
    type: CareEventType
    time: datetime
    subject: str = Field(description="The episode id")
    ingested_at: datetime
    data: dict[str, Any]


PUBLISHED_MODEL_BY_TYPE: dict[str, type[_Published]] = {
    PLACEMENT_STARTED: PublishedPlacementStartedV1,
    PLACEMENT_ENDED: PublishedPlacementEndedV1,
    FOLLOWUP_RECORDED: PublishedFollowupRecordedV1,
    EVENT_RETRACTED: PublishedEventRetractedV1,
}

INBOUND_MODEL_BY_TYPE: dict[str, type[_Data]] = {
    PLACEMENT_STARTED: PlacementStartedDataV1,
    PLACEMENT_ENDED: PlacementEndedDataV1,
    FOLLOWUP_RECORDED: FollowupRecordedDataV1,
    EVENT_RETRACTED: EventRetractedDataV1,
}


class RejectedEventV1(BaseModel):
    """One message on `care.events.rejected.v1`: why an event was refused. Never holds a personnummer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str | None = Field(description="The provider's event id, if it could be read")
    source: str | None
    type: str | None
    channel: Literal["http", "kafka"]
    reasons: list[RejectionReason]
    rejected_at: datetime
    raw_position: str | None = Field(default=None, description="topic/partition/offset for raw-topic input")


class RejectionReason(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(description="JSON pointer-like path of the offending field, or '' for the event")
    code: str
    message: str


RejectedEventV1.model_rebuild()
