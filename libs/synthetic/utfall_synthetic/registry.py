"""Registry entries for synthetic providers: what an operator registers before a demo or benchmark provider
may send (the units and care types its events name, a display name, a valid organisation number)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from utfall_events.personnummer import luhn_check_digit
from utfall_events.registry import ProviderV1

from .cohort import PROVIDERS


def organisation_number(provider_id: str) -> str:
    """A valid aktiebolag number (556…) derived from the id, so a demo provider keeps it across runs."""
    nine = f"556{zlib.crc32(provider_id.encode()) % 10**6:06d}"
    return f"{nine[:6]}-{nine[6:]}{luhn_check_digit(nine)}"


def display_name(provider_id: str) -> str:
    return " ".join(part.capitalize() for part in provider_id.split("-"))


def providers_of(events: Iterable[dict[str, Any]], now: datetime) -> list[ProviderV1]:
    """One registration per provider the events name, with every unit and care type they use."""
    units: dict[str, set[str]] = {}
    care_types: dict[str, set[str]] = {}
    for event in events:
        provider_id = str(event["source"]).removeprefix("provider/")
        data = event.get("data") or {}
        units.setdefault(provider_id, set())
        care_types.setdefault(provider_id, set())
        if "unit_id" in data:
            units[provider_id].add(data["unit_id"])
        if "care_type" in data:
            care_types[provider_id].add(data["care_type"])
    base = {p.provider_id: p for p in PROVIDERS}
    registrations = []
    for provider_id in sorted(units):
        known = next((b for name, b in base.items() if provider_id.startswith(name)), None)
        registrations.append(
            ProviderV1(
                provider_id=provider_id,
                display_name=display_name(provider_id),
                organisation_number=organisation_number(provider_id),
                care_types=sorted(care_types[provider_id] | ({known.care_type} if known else set()))
                or ["hvb"],
                units=sorted(units[provider_id] | set(known.units if known else ())) or ["unit-1"],
                registered_at=now,
            )
        )
    return registrations


def demo_providers(now: datetime) -> list[ProviderV1]:
    """The synthetic cohort's providers as an operator registers them for `make run`."""
    return [
        ProviderV1(
            provider_id=p.provider_id,
            display_name=display_name(p.provider_id),
            organisation_number=organisation_number(p.provider_id),
            care_types=[p.care_type],
            units=list(p.units),
            registered_at=now,
        )
        for p in PROVIDERS
    ]
