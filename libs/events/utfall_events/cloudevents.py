"""CloudEvents 1.0: the structured-mode envelope (HTTP) and binary-mode headers (Kafka)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _require_rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _RFC3339.match(value):
        return value
    raise ValueError("must be an RFC 3339 timestamp with a time zone, e.g. 2024-03-01T09:12:00+01:00")


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_require_rfc3339)]

EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]
ProviderSource = Annotated[
    str, StringConstraints(min_length=10, max_length=80, pattern=r"^provider/[a-z0-9][a-z0-9\-]{1,62}$")
]

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


class CloudEventV1(BaseModel):
    """A provider's event as it arrives over HTTP (structured mode)."""

    model_config = ConfigDict(extra="forbid", title="CloudEvent")

    specversion: Literal["1.0"]
    id: EventId = Field(description="Unique per source; a resend with the same id is a duplicate")
    source: ProviderSource = Field(description="The provider, e.g. provider/hvb-eken")
    type: str = Field(max_length=100)
    time: Rfc3339 = Field(description="When the provider's system recorded the event (RFC 3339)")
    subject: str | None = Field(default=None, max_length=128, description="The episode id")
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = Field(default=None, max_length=300)
    data: dict[str, Any]


def binary_headers(
    *, event_id: str, source: str, type_: str, time: datetime, subject: str | None, extra: dict[str, str]
) -> list[tuple[str, bytes]]:
    """CloudEvents Kafka binary-mode headers (ce_*) for a JSON value."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", type_.encode()),
        ("ce_time", time.isoformat().encode()),
        ("content-type", b"application/json"),
    ]
    if subject is not None:
        headers.append(("ce_subject", subject.encode()))
    headers.extend((f"ce_{name}", value.encode()) for name, value in extra.items())
    return headers


def headers_to_dict(headers: Any) -> dict[str, str]:
    """Kafka headers (a sequence of (name, bytes)) as a dict of text; undecodable values are dropped."""
    out: dict[str, str] = {}
    for name, value in headers or ():
        if value is None:
            continue
        try:
            out[name] = value.decode("utf-8") if isinstance(value, bytes | bytearray) else str(value)
        except UnicodeDecodeError:
            continue
    return out
