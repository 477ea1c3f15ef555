"""Reading Kafka headers without decoding all of them."""

from __future__ import annotations

from collections.abc import Sequence


def header_text(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name and value is not None:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None
