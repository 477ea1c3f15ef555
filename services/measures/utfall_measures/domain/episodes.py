"""An episode's state as a pure fold over its stored events.

Retracted events count as never sent; duplicates (same source and id) are stored once. The fold does not
depend on arrival order: where two live events compete for one slot (a corrected placement.ended whose
retraction of the old one has not come, or never comes), the latest by (event time, id) wins, and the
episode carries a `competing_*` data error for the provider to see until one of them is retracted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from utfall_events.outcomes import EventRef, known_event_ref
from utfall_events.vocabulary import (
    EVENT_RETRACTED,
    FOLLOWUP_RECORDED,
    PLACEMENT_ENDED,
    PLACEMENT_STARTED,
    age_band,
)

EpisodeKey = tuple[str, str]  # (provider_id, episode_id)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    source: str
    event_id: str
    type: str
    time: datetime
    subject_ref: str
    provider_id: str
    episode_id: str
    data: dict[str, Any]

    @property
    def ref(self) -> EventRef:
        return known_event_ref(self.source, self.event_id)

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.time, self.event_id)


@dataclass(frozen=True, slots=True)
class Placement:
    ref: EventRef
    subject_ref: str
    unit_id: str
    municipality_code: str
    care_type: str
    legal_basis: str
    target_group: str
    sex: str
    birth_year: int
    age_at_start: int
    start_date: date

    @property
    def age_band(self) -> str:
        return age_band(self.age_at_start)


@dataclass(frozen=True, slots=True)
class Discharge:
    ref: EventRef
    end_date: date
    end_reason: str
    destination: str


@dataclass(frozen=True, slots=True)
class Followup:
    ref: EventRef
    month: int
    assessed_on: date
    living_situation: str
    in_education_or_work: bool | None
    replaced_since_discharge: bool | None
    offending: bool | None
    substance_misuse: bool | None


@dataclass(frozen=True, slots=True)
class Episode:
    provider_id: str
    episode_id: str
    subject_ref: str
    placement: Placement | None
    discharge: Discharge | None
    followups: dict[int, Followup] = field(default_factory=dict)
    data_errors: tuple[str, ...] = ()

    @property
    def key(self) -> EpisodeKey:
        return (self.provider_id, self.episode_id)

    @property
    def closed(self) -> bool:
        """Ended, with a known start, and consistent: only such episodes have outcome facts."""
        return (
            self.placement is not None
            and self.discharge is not None
            and "end_before_start" not in self.data_errors
        )

    @property
    def length_of_stay_days(self) -> int | None:
        if not self.closed:
            return None
        assert self.placement is not None and self.discharge is not None
        return (self.discharge.end_date - self.placement.start_date).days


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def retracted_refs(events: Iterable[StoredEvent]) -> set[tuple[str, str]]:
    return {(e.source, str(e.data["retracted_event_id"])) for e in events if e.type == EVENT_RETRACTED}


def touched_episodes(new: Iterable[StoredEvent], stored: Iterable[StoredEvent]) -> set[EpisodeKey]:
    """The episodes whose fold new events can change: their own, and those of the events a new retraction
    retracts, found among all stored events (ingest files a retraction under its target's episode, but the
    fold does not rely on it). Every other episode folds as it did before they came."""
    new = list(new)
    touched = {(e.provider_id, e.episode_id) for e in new}
    retracted = retracted_refs(new)
    if retracted:
        touched |= {(e.provider_id, e.episode_id) for e in stored if (e.source, e.event_id) in retracted}
    return touched


def fold_episodes(events: Iterable[StoredEvent]) -> dict[EpisodeKey, Episode]:
    events = list(events)
    retracted = retracted_refs(events)
    live = [e for e in events if e.type != EVENT_RETRACTED and (e.source, e.event_id) not in retracted]
    by_episode: dict[EpisodeKey, list[StoredEvent]] = {}
    for event in live:
        by_episode.setdefault((event.provider_id, event.episode_id), []).append(event)
    return {key: _fold_one(key, evs) for key, evs in by_episode.items()}


def _latest(events: list[StoredEvent], type_: str) -> StoredEvent | None:
    candidates = [e for e in events if e.type == type_]
    return max(candidates, key=lambda e: e.order) if candidates else None


def _fold_one(key: EpisodeKey, events: list[StoredEvent]) -> Episode:
    started = _latest(events, PLACEMENT_STARTED)
    ended = _latest(events, PLACEMENT_ENDED)
    placement = None
    if started is not None:
        d = started.data
        placement = Placement(
            started.ref,
            started.subject_ref,
            d["unit_id"],
            d["municipality_code"],
            d["care_type"],
            d["legal_basis"],
            d["target_group"],
            d["sex"],
            int(d["birth_year"]),
            int(d["age_at_start"]),
            _date(d["start_date"]),
        )
    discharge = None
    if ended is not None:
        d = ended.data
        discharge = Discharge(ended.ref, _date(d["end_date"]), d["end_reason"], d["destination"])
    errors: list[str] = []
    for type_, name in ((PLACEMENT_STARTED, "placement_started"), (PLACEMENT_ENDED, "placement_ended")):
        if sum(1 for e in events if e.type == type_) > 1:
            errors.append(f"competing_{name}")  # shown, not set aside: the latest counts
    if placement and discharge and discharge.end_date < placement.start_date:
        errors.append("end_before_start")
    followups: dict[int, Followup] = {}
    for month in (6, 12, 24):
        candidates = [
            e for e in events if e.type == FOLLOWUP_RECORDED and int(e.data["followup_month"]) == month
        ]
        if not candidates:
            continue
        if len(candidates) > 1:
            errors.append(f"competing_followup_{month}")
        chosen = max(candidates, key=lambda e: e.order)
        d = chosen.data
        followup = Followup(
            chosen.ref,
            month,
            _date(d["assessed_on"]),
            d["living_situation"],
            d.get("in_education_or_work"),
            d.get("replaced_since_discharge"),
            d.get("offending"),
            d.get("substance_misuse"),
        )
        if discharge is not None and followup.assessed_on < discharge.end_date:
            errors.append(f"followup_{month}_before_discharge")  # set aside, counted, shown to the provider
            continue
        followups[month] = followup
    subject = started.subject_ref if started is not None else min(e.subject_ref for e in events)
    return Episode(key[0], key[1], subject, placement, discharge, followups, tuple(errors))
