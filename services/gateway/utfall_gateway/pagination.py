"""Opaque cursors for lists that grow."""

from __future__ import annotations

import base64

import orjson

from utfall_platform.problems import Problem


def encode_cursor(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, object]:
    if not cursor:
        return {}
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, orjson.JSONDecodeError):
        raise Problem(400, "invalid-cursor", "The cursor is not one this API gave out.") from None
    if not isinstance(value, dict):
        raise Problem(400, "invalid-cursor", "The cursor is not one this API gave out.")
    return value


def cursor_int(cursor: str | None, name: str) -> int:
    value = decode_cursor(cursor).get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Problem(400, "invalid-cursor", "The cursor is not one this API gave out.")
    return value
