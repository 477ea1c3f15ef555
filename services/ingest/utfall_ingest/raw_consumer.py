"""Kafka entrypoint for providers that produce directly: each to its own `care.events.raw.v1.<provider id>`,
in CloudEvents binary mode. The topic says who sent a record (only that provider's principal may write it), so
a record whose `source` names another provider is refused as `source_mismatch`.

Each record becomes the same raw event dict HTTP would have parsed, then goes through the same admission
in the consumer's transaction. Invalid input is never retried: it is a rejection with reasons, published
on `care.events.rejected.v1` with the record's position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from utfall_events.cloudevents import STRUCTURED_CONTENT_TYPE
from utfall_events.topics import provider_of_raw_topic
from utfall_platform.cloudevents_headers import header_text
from utfall_platform.consumer import Record

_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "subject", "dataschema")


def decode_record(record: Record) -> Any:
    """A raw event dict from a binary-mode (or structured-mode) record; invalid parts surface as
    validation errors later, never as exceptions here."""
    content_type = (header_text(record.headers, "content-type") or "").split(";")[0].strip().lower()
    try:
        value = orjson.loads(record.value) if record.value is not None else None
    except orjson.JSONDecodeError:
        value = _NOT_JSON
    if content_type == STRUCTURED_CONTENT_TYPE:
        return value if value is not _NOT_JSON else {}
    event: dict[str, Any] = {}
    for name in _ATTRIBUTES:
        text = header_text(record.headers, f"ce_{name}")
        if text is not None:
            event[name] = text
    if content_type and content_type != "application/json":
        event["datacontenttype"] = content_type
    event["data"] = value if value is not _NOT_JSON else "<not JSON>"
    return event


_NOT_JSON = object()


def position_of(record: Record) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"


def decode_all(records: Sequence[Record]) -> tuple[list[Any], list[str | None], list[str]]:
    """Raw event dicts, their positions, and the provider each was sent by (from its topic; a topic that names
    no provider matches no source, so its records are refused)."""
    return (
        [decode_record(r) for r in records],
        [position_of(r) for r in records],
        [provider_of_raw_topic(r.topic) or "" for r in records],
    )
