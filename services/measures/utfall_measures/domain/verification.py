"""Verified outcomes: each verifiable measure decided again from the care events and the registers, as pure
functions of an episode, its subject's other episodes, the subject's register rows and the registers'
coverage.

- A re-placement anywhere (an episode on Utfall, or a register placement with any provider) that starts
  after the end date and within the window makes `no_replacement` not achieved; none, where the registers
  cover the placing municipality's placements for every day of the window, makes it achieved.
- The register's school or work status nearest the follow-up date (the window's end), within
  STATUS_BEFORE_DAYS before it and the measure's grace after it, decides `education_or_work`.
- A death or emigration on or before the outcome would be decided excludes the episode from the measure.
- Anything else is `unverified`: what the registers do not cover is never guessed.

Which version of a register row counts (`current_records`) and what is covered (`Coverage`) are set
functions, so the verified facts are the same in any arrival order of events, rows and corrections.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from utfall_events.catalogue import register_fact_id, verifiable
from utfall_events.outcomes import EventRef, known_event_ref
from utfall_events.registers import IN_EDUCATION_OR_WORK

from .catalogue import CATALOGUE, MeasureDefinition
from .episodes import Episode, EpisodeKey
from .facts import Fact
from .windows import window_end

STATUS_BEFORE_DAYS = 92  # a status up to a quarter before the follow-up date speaks for it


VERIFIABLE: tuple[MeasureDefinition, ...] = tuple(m for m in CATALOGUE if verifiable(m))


@dataclass(frozen=True, slots=True)
class RegisterRecord:
    register_id: str
    record_id: str
    extract_id: str
    as_of: date
    subject_ref: str
    kind: str  # placement | status | exclusion
    body: Mapping[str, Any]

    @property
    def precedence(self) -> tuple[date, str]:
        return (self.as_of, self.extract_id)

    @property
    def ref(self) -> EventRef:
        return known_event_ref(f"register/{self.register_id}", self.record_id)

    def day(self, name: str) -> date | None:
        value = self.body.get(name)
        if value is None or isinstance(value, date):
            return value
        return date.fromisoformat(value)


def current_records(records: Iterable[RegisterRecord]) -> list[RegisterRecord]:
    """The version of each (register, record) that counts: the one of the latest extract."""
    best: dict[tuple[str, str], RegisterRecord] = {}
    for r in records:
        key = (r.register_id, r.record_id)
        if key not in best or r.precedence > best[key].precedence:
            best[key] = r
    return list(best.values())


@dataclass(frozen=True, slots=True)
class CoverageClaim:
    register_id: str
    extract_id: str
    municipality_code: str
    kind: str
    covers_from: date
    covers_through: date


@dataclass(frozen=True)
class Coverage:
    """Every claim of every register; `covers` asks whether their union holds each day of a span."""

    claims: tuple[CoverageClaim, ...] = ()
    _by_key: dict[tuple[str, str], list[tuple[date, date]]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_key: dict[tuple[str, str], list[tuple[date, date]]] = {}
        for c in self.claims:
            by_key.setdefault((c.municipality_code, c.kind), []).append((c.covers_from, c.covers_through))
        for spans in by_key.values():
            spans.sort()
        object.__setattr__(self, "_by_key", by_key)

    def covers(self, municipality_code: str, kind: str, first: date, last: date) -> bool:
        reached = first - timedelta(days=1)  # every day up to `reached` is covered
        for start, through in self._by_key.get((municipality_code, kind), ()):
            if start > reached + timedelta(days=1):
                break
            reached = max(reached, through)
            if reached >= last:
                return True
        return reached >= last


@dataclass(frozen=True, slots=True)
class VerifiedFact:
    measure_id: str
    status: str  # achieved | not_achieved | excluded | unverified
    reported_status: str
    outcome_date: date | None
    evidence: tuple[EventRef, ...]

    def as_fact(self, measure: MeasureDefinition) -> Fact | None:
        """The fact contracts pay register-validated milestones on: decided outcomes only."""
        if self.status == "unverified":
            return None
        return Fact(
            register_fact_id(self.measure_id),
            measure.version,
            self.status,
            self.evidence,
            None,
            self.outcome_date,
        )


def _verified(
    m: MeasureDefinition, status: str, reported: Fact, outcome: date | None, evidence: Iterable[EventRef]
) -> VerifiedFact:
    return VerifiedFact(m.id, status, reported.status, outcome, tuple(evidence))


def _exclusion(records: list[RegisterRecord], after: date, until: date) -> RegisterRecord | None:
    found = [
        r
        for r in records
        if r.kind == "exclusion" and (on := r.day("on_date")) is not None and after <= on <= until
    ]
    return min(found, key=lambda r: (r.day("on_date"), r.register_id, r.record_id)) if found else None


def _no_replacement(
    m: MeasureDefinition,
    ep: Episode,
    others: list[Episode],
    records: list[RegisterRecord],
    coverage: Coverage,
    reported: Fact,
) -> VerifiedFact:
    assert ep.discharge is not None and ep.placement is not None and m.window_months is not None
    end = ep.discharge.end_date
    until = window_end(end, m.window_months)
    starts: list[tuple[date, EventRef]] = [
        (o.placement.start_date, o.placement.ref)
        for o in others
        if o.key != ep.key
        and o.placement is not None
        and o.placement.care_type != "outpatient"
        and end < o.placement.start_date <= until
    ]
    for r in records:
        start = r.day("start_date")
        if (
            r.kind == "placement"
            and r.body.get("care_type") != "outpatient"
            and start
            and end < start <= until
        ):
            starts.append((start, r.ref))
    first = min(starts, key=lambda s: (s[0], s[1].source, s[1].id)) if starts else None
    excluded = _exclusion(records, end, first[0] - timedelta(days=1) if first else until)
    discharge = ep.discharge.ref
    if excluded is not None:
        return _verified(m, "excluded", reported, excluded.day("on_date"), [discharge, excluded.ref])
    if first is not None:
        return _verified(m, "not_achieved", reported, first[0], [discharge, first[1]])
    if coverage.covers(ep.placement.municipality_code, "placement", end + timedelta(days=1), until):
        return _verified(m, "achieved", reported, until, [discharge])
    return _verified(m, "unverified", reported, None, [discharge])


def _education_or_work(
    m: MeasureDefinition, ep: Episode, records: list[RegisterRecord], reported: Fact
) -> VerifiedFact:
    assert ep.discharge is not None and m.window_months is not None
    on = window_end(ep.discharge.end_date, m.window_months)
    discharge = ep.discharge.ref
    excluded = _exclusion(records, ep.discharge.end_date, on)
    if excluded is not None:
        return _verified(m, "excluded", reported, excluded.day("on_date"), [discharge, excluded.ref])
    earliest, latest = on - timedelta(days=STATUS_BEFORE_DAYS), on + timedelta(days=m.grace_days)
    statuses = [
        r
        for r in records
        if r.kind == "status" and (day := r.day("on_date")) is not None and earliest <= day <= latest
    ]
    if not statuses:
        return _verified(m, "unverified", reported, None, [discharge])

    def nearness(r: RegisterRecord) -> tuple[int, int, str, str]:
        day = r.day("on_date")
        assert day is not None
        return (abs((day - on).days), -day.toordinal(), r.register_id, r.record_id)  # nearest, later, fixed

    chosen = min(statuses, key=nearness)
    status = "achieved" if chosen.body.get("status") in IN_EDUCATION_OR_WORK else "not_achieved"
    return _verified(m, status, reported, chosen.day("on_date"), [discharge, chosen.ref])


def verify(
    measure: MeasureDefinition,
    episode: Episode,
    subject_episodes: list[Episode],
    records: list[RegisterRecord],
    coverage: Coverage,
    reported: Fact,
) -> VerifiedFact:
    if measure.kind == "no_replacement":
        return _no_replacement(measure, episode, subject_episodes, records, coverage, reported)
    return _education_or_work(measure, episode, records, reported)


def verified_for_subject(
    episodes: list[Episode],
    records: list[RegisterRecord],
    coverage: Coverage,
    reported: Mapping[tuple[EpisodeKey, str], Fact],
    catalogue: tuple[MeasureDefinition, ...] = VERIFIABLE,
) -> dict[tuple[EpisodeKey, str], VerifiedFact]:
    """Every verified fact of one subject's closed episodes; `records` are the subject's rows (every
    version: the current one is chosen here)."""
    current = current_records(records)
    out: dict[tuple[EpisodeKey, str], VerifiedFact] = {}
    for episode in episodes:
        if not episode.closed:
            continue
        for measure in catalogue:
            fact = reported.get((episode.key, measure.id))
            if fact is not None:
                out[(episode.key, measure.id)] = verify(measure, episode, episodes, current, coverage, fact)
    return out
