"""Registered providers for tests: every test provider is registered the way an operator would register it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from utfall_events.registry import ProviderV1
from utfall_events.vocabulary import CARE_TYPES
from utfall_synthetic.cohort import PROVIDERS
from utfall_synthetic.registry import organisation_number

# Units of the synthetic cohort's providers and of the hand-written test events: a test provider runs them all.
TEST_UNITS: tuple[str, ...] = tuple(sorted({u for p in PROVIDERS for u in p.units} | {"unit-1", "u", "u1"}))
REGISTERED_AT = datetime(2020, 1, 1, tzinfo=UTC)


def registered(
    provider_id: str,
    *,
    units: Iterable[str] = TEST_UNITS,
    care_types: Iterable[str] = CARE_TYPES,
    **overrides: Any,
) -> ProviderV1:
    values: dict[str, Any] = {
        "provider_id": provider_id,
        "display_name": f"Testvården {provider_id}",
        "organisation_number": organisation_number(provider_id),
        "care_types": list(care_types),
        "units": list(units),
        "registered_at": REGISTERED_AT,
    }
    values.update(overrides)
    return ProviderV1.model_validate(values)


class EveryProviderRegistered(dict[str, ProviderV1]):
    """A registry in which any provider id is registered (for unit tests about something else)."""

    def __missing__(self, provider_id: str) -> ProviderV1:
        self[provider_id] = registered(provider_id)
        return self[provider_id]

    def get(self, provider_id: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[provider_id]
