"""Validation of one provider event, as pure functions: raw JSON value in, checked event or reasons out.

Stage 1 (`check_event`) needs nothing but the event, the authenticated provider, the provider registry, the
clock's today and the pseudonym key: envelope, type, schema, personnummer, municipality, dates, provider (known
to the registry, with the unit and care type it registered).
Stage 2 (`check_against_episode`) compares with what ingest already knows of the episode (date order).
Every reason points at a field (JSON Pointer) and never echoes a submitted value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from utfall_events.care import INBOUND_MODEL_BY_TYPE
from utfall_events.cloudevents import CloudEventV1
from utfall_events.personnummer import (
    InvalidPersonNumber,
    age_on,
    looks_like_personnummer,
    parse_person_number,
    redact,
)
from utfall_events.reference import is_municipality
from utfall_events.registry import ProviderV1
from utfall_events.sealed import SealError, looks_sealed
from utfall_events.vocabulary import (
    EVENT_RETRACTED,
    FOLLOWUP_RECORDED,
    PLACEMENT_ENDED,
    PLACEMENT_STARTED,
)

from .pseudonym import subject_ref

EARLIEST_DATE = date(2000, 1, 1)
CLOCK_SKEW = timedelta(minutes=5)
IDENTIFIER_FIELDS = ("episode_id", "unit_id", "retracted_event_id")


@dataclass(frozen=True, slots=True)
class Reason:
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class CheckedEvent:
    """An event that passed stage 1. `fields` is the published data minus subject_ref (for all types but
    placement.started, whose subject_ref is computed here) and holds no personnummer."""

    event_id: str
    source: str
    provider_id: str
    type: str
    time: datetime
    episode_id: str | None
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejection:
    event_id: str | None
    source: str | None
    type: str | None
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class EpisodeState:
    """The dates of an episode's live (not retracted) starts and ends; usually one of each at most, more
    while a correction is in flight."""

    subject_ref: str | None = None
    start_dates: tuple[date, ...] = ()
    end_dates: tuple[date, ...] = ()


@dataclass(frozen=True, slots=True)
class PseudonymKey:
    version: str
    secret: bytes
    # opens a personnummer sealed to ingest (utfall_events.sealed); None: ingest accepts none sealed
    unseal: Callable[[str], str] | None = None


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f]")


def open_person_id(text: str, key: PseudonymKey, pointer: str) -> str | Reason:
    """A person_id as sent: a personnummer in clear, or one sealed to this ingest, opened in memory."""
    if not looks_sealed(text):
        return text
    try:
        if key.unseal is None:
            raise SealError("no key")
        return key.unseal(text)
    except SealError:
        return Reason(
            pointer,
            "unsealable",
            "person_id is sealed, but not to a key of this ingest (see GET /v1/keys/person-id)",
        )


def clean(text: str, limit: int = 200) -> str:
    """Reason text is ours, but pointers name submitted keys: no control characters, bounded, redacted."""
    text = _UNPRINTABLE.sub("?", text)
    return redact(text if len(text) <= limit else text[: limit - 1] + "…")


def _pointer(loc: tuple[Any, ...], prefix: str = "") -> str:
    return prefix + "".join(f"/{part}" for part in loc)


def reasons_of(exc: ValidationError, prefix: str) -> list[Reason]:
    """A pydantic error as field-pointed reasons (JSON pointers under `prefix`), never echoing the input."""
    reasons = []
    for err in exc.errors(include_input=False, include_url=False):
        code = str(err.get("type", "invalid"))
        message = str(err.get("msg", "invalid value"))
        if code == "extra_forbidden":
            message = "unknown field"
        elif code == "missing":
            message = "required field is missing"
        reasons.append(Reason(clean(_pointer(tuple(err.get("loc", ())), prefix)), code, clean(message)))
    return reasons


def safe_text(value: Any, limit: int = 128) -> str | None:
    if not isinstance(value, str) or not value or len(value) > limit:
        return None
    if looks_like_personnummer(value) or _CONTROL_CHARACTER.search(value):
        return None
    return value


def _date_reasons(pointer: str, value: date, today: date) -> list[Reason]:
    if value < EARLIEST_DATE:
        return [Reason(pointer, "before_2000", "dates before 2000-01-01 are not accepted")]
    if value > today:
        return [Reason(pointer, "future_date", "the date is in the future")]
    return []


def named_providers(raw_events: list[Any]) -> set[str]:
    """The provider ids the events' sources name (to bring the registry up to date before deciding)."""
    return {
        raw["source"].removeprefix("provider/")
        for raw in raw_events
        if isinstance(raw, dict) and isinstance(raw.get("source"), str)
    }


def _registry_reasons(fields: Mapping[str, Any], provider: ProviderV1) -> list[Reason]:
    """A unit or care type the provider has not registered: a typo or a forged event, never counted."""
    reasons = []
    unit = fields.get("unit_id")
    if unit is not None and unit not in provider.units:
        reasons.append(Reason("/data/unit_id", "unknown_unit", "not one of the provider's registered units"))
    care_type = fields.get("care_type")
    if care_type is not None and care_type not in provider.care_types:
        reasons.append(
            Reason(
                "/data/care_type",
                "care_type_not_registered",
                "the provider is not registered for this care type",
            )
        )
    return reasons


def check_event(
    raw: Any,
    *,
    authenticated_provider: str | None,
    providers: Mapping[str, ProviderV1],
    today: date,
    now: datetime,
    key: PseudonymKey,
) -> CheckedEvent | Rejection:
    if not isinstance(raw, dict):
        return Rejection(None, None, None, (Reason("", "not_an_object", "each event must be a JSON object"),))
    event_id = safe_text(raw.get("id"))
    # A refusal is filed under whoever sent the event (its API key, or the raw topic only it may write), not
    # under the source it claims: the sender reads its receipts, and nobody reads another's.
    source = (
        f"provider/{authenticated_provider}"
        if authenticated_provider is not None
        else safe_text(raw.get("source"), 80)
    )
    type_ = safe_text(raw.get("type"), 100)

    def reject(*reasons: Reason) -> Rejection:
        return Rejection(event_id, source, type_, tuple(reasons))

    try:
        envelope = CloudEventV1.model_validate(raw)
    except ValidationError as exc:
        return reject(*reasons_of(exc, ""))

    reasons: list[Reason] = []
    for name in ("id", "subject"):
        value = getattr(envelope, name)
        if value and looks_like_personnummer(value):
            reasons.append(
                Reason(
                    f"/{name}",
                    "personnummer_in_identifier",
                    "identifiers must not contain a personal identity number",
                )
            )
    provider_id = envelope.source.removeprefix("provider/")
    if authenticated_provider is not None and provider_id != authenticated_provider:
        reasons.append(
            Reason(
                "/source",
                "source_mismatch",
                "source does not match the authenticated provider (its API key, or its own raw topic)",
            )
        )
    registered = providers.get(provider_id)
    if registered is None or not registered.active:
        reasons.append(
            Reason("/source", "unknown_provider", "source names no active provider in the provider registry")
        )
    if envelope.time > now + CLOCK_SKEW:
        reasons.append(Reason("/time", "future_time", "the event time is in the future"))
    model = INBOUND_MODEL_BY_TYPE.get(envelope.type)
    if model is None:
        reasons.append(Reason("/type", "unknown_type", "unknown event type; see GET /v1/schemas"))
        return reject(*reasons)
    try:
        data: BaseModel = model.model_validate(envelope.data)
    except ValidationError as exc:
        return reject(*reasons, *reasons_of(exc, "/data"))

    # the validated fields as a dict: looking up a field the type does not have costs pydantic an exception
    fields = data.model_dump(mode="python")
    for name in IDENTIFIER_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and looks_like_personnummer(value):
            reasons.append(
                Reason(
                    f"/data/{name}",
                    "personnummer_in_identifier",
                    "identifiers must not contain a personal identity number",
                )
            )
    if registered is not None:
        reasons += _registry_reasons(fields, registered)
    episode_id: str | None = fields.get("episode_id")
    if episode_id is not None and envelope.subject is not None and envelope.subject != episode_id:
        reasons.append(Reason("/subject", "subject_mismatch", "subject must equal data.episode_id"))

    if envelope.type == PLACEMENT_STARTED:
        fields.pop("person_id")
        opened = open_person_id(data.person_id, key, "/data/person_id")  # type: ignore[attr-defined]
        if isinstance(opened, Reason):
            reasons.append(opened)
        person_text = opened if isinstance(opened, str) else ""
        if data.provider_id != provider_id:  # type: ignore[attr-defined]
            reasons.append(
                Reason(
                    "/data/provider_id",
                    "provider_mismatch",
                    "provider_id must be the provider named in source",
                )
            )
        if not is_municipality(data.municipality_code):  # type: ignore[attr-defined]
            reasons.append(
                Reason(
                    "/data/municipality_code",
                    "unknown_municipality",
                    "not one of the 290 SCB municipality codes",
                )
            )
        start: date = data.start_date  # type: ignore[attr-defined]
        reasons += _date_reasons("/data/start_date", start, today)
        try:
            person = parse_person_number(person_text, today=today) if person_text else None
        except InvalidPersonNumber as exc:
            person = None
            reasons.append(Reason("/data/person_id", exc.code, exc.message))
        if person is not None:
            age = age_on(person.birth_date, start)
            if not 0 <= age <= 20:
                reasons.append(
                    Reason("/data/person_id", "age_out_of_range", "age at start_date must be 0-20 years")
                )
            fields["subject_ref"] = subject_ref(person.digits, key=key.secret, version=key.version)
            fields["birth_year"] = person.birth_date.year
            fields["sex"] = person.sex
            fields["age_at_start"] = age
        del person_text
    elif envelope.type == PLACEMENT_ENDED:
        reasons += _date_reasons("/data/end_date", fields["end_date"], today)
        fields["provider_id"] = provider_id
    elif envelope.type == FOLLOWUP_RECORDED:
        reasons += _date_reasons("/data/assessed_on", fields["assessed_on"], today)
        fields["provider_id"] = provider_id
    elif envelope.type == EVENT_RETRACTED:
        fields["reason"] = redact(fields["reason"])
        fields["provider_id"] = provider_id
        if fields["retracted_event_id"] == envelope.id:
            reasons.append(
                Reason("/data/retracted_event_id", "self_retraction", "an event cannot retract itself")
            )
    if reasons:
        return reject(*reasons)
    return CheckedEvent(
        envelope.id, envelope.source, provider_id, envelope.type, envelope.time, episode_id, fields
    )


def check_against_episode(event: CheckedEvent, episode: EpisodeState) -> list[Reason]:
    """Date order, checked wherever the earlier event is already known. Refused only when the event
    contradicts every live candidate: while a correction is in flight the episode may have two ends, and the
    one that counts in the end is not known yet (measures sets a lasting contradiction aside)."""
    if event.type == PLACEMENT_ENDED and episode.start_dates:
        if event.fields["end_date"] < min(episode.start_dates):
            return [
                Reason("/data/end_date", "end_before_start", "end_date is before the episode's start_date")
            ]
    if event.type == PLACEMENT_STARTED and episode.end_dates:
        if event.fields["start_date"] > max(episode.end_dates):
            return [
                Reason("/data/start_date", "start_after_end", "start_date is after the episode's end_date")
            ]
    if event.type == FOLLOWUP_RECORDED and episode.end_dates:
        if event.fields["assessed_on"] < min(episode.end_dates):
            return [
                Reason(
                    "/data/assessed_on",
                    "followup_before_discharge",
                    "the follow-up is dated before the episode ended",
                )
            ]
    return []
