"""Arrival orders for the permutation tests on the real stack, and the seeded cohort they reorder.

The same events, three ways: as generated, reversed, and adversarial (every correction before the
retraction of the event it replaces, every re-placement after the payments it undoes). Each run's copy of
the cohort gets its own providers (a suffix) and its own persons (every personnummer's serial shifted by a
constant, which keeps birth date and sex), so runs sharing one Kafka never meet."""

from __future__ import annotations

import copy
import zlib
from datetime import date
from typing import Any

from utfall_events.personnummer import luhn_check_digit
from utfall_synthetic.cohort import CohortConfig, generate, renamed

ORDERS = ("generated", "reversed", "adversarial")
RETRACTED = "se.utfall.event.retracted.v1"
STARTED = "se.utfall.placement.started.v1"


def cohort(subjects: int, seed: int, today: date) -> list[dict[str, Any]]:
    config = CohortConfig(
        subjects=subjects,
        seed=seed,
        today=today,
        retraction_rate=0.12,
        start_correction_rate=0.06,
        followup_correction_rate=0.06,
        replacement_rate=0.4,
    )
    return generate(config).events


def shifted_person(person_id: str, shift: int) -> str:
    """The same birth date and sex, another person: the serial's first digit moves by `shift`."""
    serial = (int(person_id[8:11]) + 100 * shift) % 1000
    nine = f"{person_id[2:8]}{serial:03d}"
    return f"{person_id[:8]}{serial:03d}{luhn_check_digit(nine)}"


def for_run(events: list[dict[str, Any]], run: int, suffix: str) -> list[dict[str, Any]]:
    out = renamed(events, suffix=f"-{suffix}")
    for event in out:
        if "person_id" in event["data"]:
            event["data"] = copy.copy(event["data"])
            event["data"]["person_id"] = shifted_person(event["data"]["person_id"], run + 1)
    return out


def base_provider(provider: str, suffix: str) -> str:
    return provider.removesuffix(f"-{suffix}")


def replacement_starts(events: list[dict[str, Any]]) -> set[str]:
    """Ids of the placement.started of every episode after a person's first (the re-placements)."""
    firsts: dict[str, str] = {}
    out = set()
    for event in sorted(
        (e for e in events if e["type"] == STARTED), key=lambda e: (e["data"]["start_date"], e["id"])
    ):
        person = event["data"]["person_id"]
        episode = event["data"]["episode_id"]
        if firsts.setdefault(person, episode) != episode:
            out.add(event["id"])
    return out


def phases(events: list[dict[str, Any]], order: str) -> list[list[dict[str, Any]]]:
    """The events in the order's phases; the test waits for the payments of one phase before the next."""
    if order == "generated":
        return [list(events)]
    if order == "reversed":
        return [list(reversed(events))]
    assert order == "adversarial"
    late = replacement_starts(events)
    first = [e for e in events if e["type"] != RETRACTED and e["id"] not in late]
    second = [e for e in reversed(events) if e["type"] == RETRACTED or e["id"] in late]
    return [first, second]


def over_kafka(event: dict[str, Any]) -> bool:
    """About a third of the events go over the raw topic, the rest over HTTP: the two paths interleave."""
    return zlib.crc32(event["id"].encode()) % 3 == 0
