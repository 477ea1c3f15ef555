"""Care events as measures receives them from `care.events.v1`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from utfall_events.codec import decode_care_event
from utfall_platform.consumer import Record

from .domain.episodes import StoredEvent


@dataclass(frozen=True, slots=True)
class Incoming:
    event: StoredEvent
    ingested_at: datetime | None


def decode(record: Record) -> Incoming:
    d = decode_care_event(record.headers, record.value)
    return Incoming(
        StoredEvent(d.source, d.event_id, d.type, d.time, d.subject_ref, d.provider_id, d.episode_id, d.data),
        d.ingested_at,
    )
