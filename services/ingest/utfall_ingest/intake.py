"""What ingest's HTTP handlers need, built once by `create_app` and kept in `app.state.intake`; and the one
body reader every handler uses (a size limit, the media type, JSON, UTF-8 CSV)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request

from utfall_events.sealed import Unsealer
from utfall_platform.problems import Problem
from utfall_platform.registry import ProviderRegistry
from utfall_platform.service import ServiceRuntime

from .domain.validation import PseudonymKey
from .settings import IngestSettings


@dataclass(frozen=True, slots=True)
class Intake:
    runtime: ServiceRuntime  # its pool and clock, once started
    settings: IngestSettings
    key: PseudonymKey
    providers: ProviderRegistry
    sealing: Unsealer | None = None


def intake(request: Request) -> Intake:
    found: Intake = request.app.state.intake
    return found


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (declared or streamed)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise Problem(413, "too-large", f"The body is larger than {limit} bytes.")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "too-large", f"The body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "invalid-json", f"The body is not valid JSON (at byte {exc.pos}).") from None


def csv_text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Problem(400, "invalid-encoding", "A CSV sheet must be UTF-8.") from None
