"""Building the Kafka messages ingest publishes (through its outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from utfall_events.care import RejectedEventV1, RejectionReason
from utfall_events.cloudevents import binary_headers
from utfall_events.topics import CARE_EVENTS, CARE_EVENTS_REJECTED
from utfall_platform.outbox import OutboxMessage

from .domain.admission import Publish
from .domain.validation import Rejection


def care_event_message(item: Publish, *, ingested_at: datetime) -> OutboxMessage:
    event = item.event
    data: dict[str, Any] = dict(event.fields)
    data["subject_ref"] = item.subject_ref
    data["episode_id"] = item.episode_id
    data["provider_id"] = event.provider_id
    if item.retracted_event_type is not None:
        data["retracted_event_type"] = item.retracted_event_type
    # Every field was validated on the way in (check_event); the published shape is pinned by a unit test
    # against the Published*V1 models rather than validated again per message on the hot path.
    headers = binary_headers(
        event_id=event.event_id,
        source=event.source,
        type_=event.type,
        time=event.time,
        subject=item.episode_id,
        extra={"ingestedat": ingested_at.isoformat()},
    )
    return OutboxMessage(CARE_EVENTS, item.subject_ref.encode(), orjson.dumps(data), headers)


def rejected_message(
    rejection: Rejection, *, channel: str, at: datetime, position: str | None = None
) -> OutboxMessage:
    body = RejectedEventV1(
        event_id=rejection.event_id,
        source=rejection.source,
        type=rejection.type,
        channel=channel,
        reasons=[RejectionReason(field=r.field, code=r.code, message=r.message) for r in rejection.reasons],
        rejected_at=at,
        raw_position=position,
    )
    key = (rejection.source or "unknown").encode()
    return OutboxMessage(CARE_EVENTS_REJECTED, key, body.model_dump_json().encode())
