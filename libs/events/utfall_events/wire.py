"""Compiled (msgspec) decoders for the two internal topics every event crosses: `care.events.v1` and
`outcomes.v2`.

The pydantic models stay the contract (JSON Schemas, golden examples, error messages). The structs here are a
strict fast path beside them: a record they accept, the model accepts with the same values; anything they
refuse goes to the model, which either accepts it (a lax spelling the model tolerates, such as `"15"` for 15)
or says why it is bad input. So the decoders accept exactly what the models accept, and only the common case
is fast. `tests/unit/test_wire.py` pins this: every golden example through both, and generated valid and
mutated messages through both.

Patterns end in `\\Z`, not `$`: msgspec matches with Python's `re`, where `$` also matches before a final
newline; pydantic's regex engine does not.

Encoding needs nothing here: the producers write with orjson, already a compiled encoder, from dicts that unit
tests pin to the models (`test_wire.py` also checks msgspec's encoding of the structs reads back through the
models).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from .care import EPISODE_ID, MUNICIPALITY_CODE, PROVIDER_ID, SUBJECT_REF, UNIT_ID, TextRule
from .outcomes import EpisodeOutcomesV2, FactStatus
from .personnummer import looks_like_personnummer
from .vocabulary import (
    EVENT_RETRACTED,
    FOLLOWUP_RECORDED,
    PLACEMENT_ENDED,
    PLACEMENT_STARTED,
    CareType,
    Destination,
    EndReason,
    FollowupMonth,
    LegalBasis,
    LivingSituation,
    Sex,
    TargetGroup,
)


def _meta(rule: TextRule) -> Meta:
    return Meta(min_length=rule.min_length, max_length=rule.max_length, pattern=rule.python_pattern)


# the constraints of care.py's EpisodeId, ProviderId, UnitId, MunicipalityCode and SubjectRef, from its rules
EpisodeId = Annotated[str, _meta(EPISODE_ID)]
ProviderId = Annotated[str, _meta(PROVIDER_ID)]
UnitId = Annotated[str, _meta(UNIT_ID)]
MunicipalityCode = Annotated[str, _meta(MUNICIPALITY_CODE)]
SubjectRef = Annotated[str, _meta(SUBJECT_REF)]
Revision = Annotated[int, Meta(ge=1)]


class _Wire(Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


# --- care.events.v1 data (the Published*V1 models) ------------------------------------------------


class _PublishedWire(_Wire, frozen=True):
    subject_ref: SubjectRef
    provider_id: ProviderId
    episode_id: EpisodeId


class PlacementStartedWire(_PublishedWire, frozen=True):
    birth_year: Annotated[int, Meta(ge=1900, le=2100)]  # as the model: an integer past 64 bits is refused too
    sex: Sex
    age_at_start: Annotated[int, Meta(ge=0, le=20)]
    unit_id: UnitId
    municipality_code: MunicipalityCode
    care_type: CareType
    legal_basis: LegalBasis
    target_group: TargetGroup
    start_date: date


class PlacementEndedWire(_PublishedWire, frozen=True):
    end_date: date
    end_reason: EndReason
    destination: Destination


class FollowupRecordedWire(_PublishedWire, frozen=True):
    followup_month: FollowupMonth
    assessed_on: date
    living_situation: LivingSituation
    in_education_or_work: bool | None = None
    replaced_since_discharge: bool | None = None
    offending: bool | None = None
    substance_misuse: bool | None = None


class EventRetractedWire(_PublishedWire, frozen=True):
    retracted_event_id: str
    retracted_event_type: str
    reason: str


PublishedWire = PlacementStartedWire | PlacementEndedWire | FollowupRecordedWire | EventRetractedWire

_CARE_DECODERS: dict[str, msgspec.json.Decoder[PublishedWire]] = {
    PLACEMENT_STARTED: msgspec.json.Decoder(PlacementStartedWire),
    PLACEMENT_ENDED: msgspec.json.Decoder(PlacementEndedWire),
    FOLLOWUP_RECORDED: msgspec.json.Decoder(FollowupRecordedWire),
    EVENT_RETRACTED: msgspec.json.Decoder(EventRetractedWire),
}


def fast_published_data(type_: str, value: bytes) -> PublishedWire | None:
    """The data of a care event of a known type if the strict path accepts it, else None (then the model
    decides). The identifiers' personnummer check is the models' AfterValidator, which msgspec cannot express."""
    decoder = _CARE_DECODERS.get(type_)
    if decoder is None:
        return None
    try:
        data = decoder.decode(value)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if looks_like_personnummer(data.provider_id) or looks_like_personnummer(data.episode_id):
        return None
    if isinstance(data, PlacementStartedWire) and looks_like_personnummer(data.unit_id):
        return None
    return data


# --- outcomes.v2 (EpisodeOutcomesV2) -----------------------------------------------------------------


class EventRefWire(_Wire, frozen=True):
    source: str
    id: str


class EpisodeDimensionsWire(_Wire, frozen=True):
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


class OutcomeChangeWire(_Wire, frozen=True):
    measure_id: str
    measure_version: int
    status: FactStatus
    previous_status: FactStatus | None
    revision: Revision
    evidence: list[EventRefWire]
    outcome_date: date | None = None


class EpisodeOutcomesWire(_Wire, frozen=True):
    subject_ref: str
    episode_id: str
    determined_at: datetime
    episode: EpisodeDimensionsWire
    facts: Annotated[list[OutcomeChangeWire], Meta(min_length=1)]


_OUTCOMES_DECODER = msgspec.json.Decoder(EpisodeOutcomesWire)


def fast_episode_outcomes(value: bytes) -> EpisodeOutcomesWire | None:
    """An `outcomes.v2` value if the strict path accepts it, else None (then the model decides)."""
    try:
        return _OUTCOMES_DECODER.decode(value)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def episode_outcomes_wire(model: EpisodeOutcomesV2) -> EpisodeOutcomesWire:
    """A message the model accepted on its lax path, as the struct the fast path gives."""
    return msgspec.convert(model.model_dump(), EpisodeOutcomesWire)
