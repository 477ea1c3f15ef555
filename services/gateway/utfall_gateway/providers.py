"""Providers as the public sees them: the registry's display names beside the ids in every answer."""

from __future__ import annotations

from typing import Any

from utfall_platform.registry import ProviderRegistry


def display_name(registry: ProviderRegistry, provider_id: str) -> str:
    """The registered name (a retired provider keeps it for its past results); the id when none is known."""
    registered = registry.rows.get(provider_id)
    return registered.display_name if registered is not None else provider_id


def with_display_names(comparison_: dict[str, Any], registry: ProviderRegistry) -> dict[str, Any]:
    """A comparison with each provider's registered display name (the cached answer itself is left alone)."""
    return {
        **comparison_,
        "providers": [
            {**p, "display_name": display_name(registry, p["provider_id"])} for p in comparison_["providers"]
        ],
    }
