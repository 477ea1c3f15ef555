"""Decoding binary-mode CloudEvents records of `care.events.v1` (headers ce_*, JSON data value)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from .care import PUBLISHED_MODEL_BY_TYPE
from .outcomes import EpisodeOutcomesV2
from .wire import EpisodeOutcomesWire, episode_outcomes_wire, fast_episode_outcomes, fast_published_data


class UndecodableRecord(ValueError):
    """A record that does not hold a valid message of its topic: bad input, the only thing a consumer may
    dead-letter. Raised by decoding alone; any other exception in a handler is a bug and stops the consumer."""


class UndecodableEvent(UndecodableRecord):
    """A record that does not hold a care event."""


Message = TypeVar("Message", bound=BaseModel)


def describe(error: ValidationError, limit: int = 5) -> str:
    """Where and why a message is invalid, without the values themselves (they may hold anything)."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in error.errors()[:limit]]
    more = error.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def decode_message(
    model: type[Message], value: bytes | None, error: type[UndecodableRecord] = UndecodableRecord
) -> Message:
    """A JSON record value as a versioned model; anything else is bad input with the reasons."""
    try:
        return model.model_validate_json(value or b"")
    except ValidationError as exc:
        raise error(f"not a valid {model.__name__}: {describe(exc)}") from None


@dataclass(frozen=True, slots=True)
class DecodedCareEvent:
    source: str
    event_id: str
    type: str
    time: datetime
    ingested_at: datetime | None
    subject_ref: str
    provider_id: str
    episode_id: str
    data: dict[str, Any]


def _header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name and value is not None:
            try:
                return bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None


def care_event_type(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The `ce_type` header alone: lets a consumer pass over the types it does not read without decoding them
    (a bad record of such a type is the business of the consumers that read it)."""
    return _header(headers, "ce_type")


def decode_care_event(headers: Sequence[tuple[str, bytes]] | None, value: bytes | None) -> DecodedCareEvent:
    event_id = _header(headers, "ce_id")
    source = _header(headers, "ce_source")
    type_ = _header(headers, "ce_type")
    time = _header(headers, "ce_time")
    if not (event_id and source and type_ and time and value):
        raise UndecodableEvent("missing CloudEvents attributes or value")
    model = PUBLISHED_MODEL_BY_TYPE.get(type_)
    if model is None:
        raise UndecodableEvent("unknown care event type")
    try:
        data = orjson.loads(value)
        if fast_published_data(type_, value) is None:  # not on the strict path: the model decides
            model.model_validate(data)
        ingested = _header(headers, "ce_ingestedat")
        return DecodedCareEvent(
            source,
            event_id,
            type_,
            datetime.fromisoformat(time),
            datetime.fromisoformat(ingested) if ingested else None,
            str(data["subject_ref"]),
            str(data["provider_id"]),
            str(data["episode_id"]),
            data,
        )
    except (
        orjson.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
    ) as exc:  # ValidationError is a ValueError
        raise UndecodableEvent(f"undecodable care event: {type(exc).__name__}") from None


def decode_episode_outcomes(value: bytes | None) -> EpisodeOutcomesWire:
    """An `outcomes.v2` record: the compiled decoder for what our producer writes, the model for the rest
    (it accepts lax spellings or says why the record is bad input)."""
    fast = fast_episode_outcomes(value or b"")
    if fast is not None:
        return fast
    return episode_outcomes_wire(decode_message(EpisodeOutcomesV2, value))
