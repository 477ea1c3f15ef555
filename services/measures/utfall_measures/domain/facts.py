"""Outcome facts: each measure's rule kind as one small pure function of an episode, its subject's other
episodes and today's date (from the injected clock).

Every settled fact carries its outcome date, the day its evidence settled it: the discharge date for the
discharge measures, the assessment date of the deciding follow-up, the start of the re-placement, or the
day after the window (plus grace) closed. Contracts pay "first determined, first paid" in this order, a
function of the events alone, never of when a message arrived."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from utfall_events.outcomes import EventRef

from .catalogue import CATALOGUE, MeasureDefinition
from .episodes import Episode, EpisodeKey
from .windows import closes_on, window_end


@dataclass(frozen=True, slots=True)
class Fact:
    measure_id: str
    measure_version: int
    status: str  # achieved | not_achieved | missing | pending
    evidence: tuple[EventRef, ...]
    closes_on: date | None  # for a pending fact: the last day before it turns missing / not achieved
    outcome_date: date | None = None  # the day the evidence settled the status (None while pending)


Rule = Callable[[MeasureDefinition, Episode, list[Episode], date], Fact]


def _fact(
    m: MeasureDefinition,
    status: str,
    evidence: Iterable[EventRef],
    outcome_date: date | None,
    closes: date | None = None,
) -> Fact:
    return Fact(m.id, m.version, status, tuple(evidence), closes, outcome_date)


def _end_reason_in(m: MeasureDefinition, ep: Episode, _: list[Episode], __: date) -> Fact:
    assert ep.discharge is not None
    status = "achieved" if ep.discharge.end_reason in m.achieved_values else "not_achieved"
    return _fact(m, status, [ep.discharge.ref], ep.discharge.end_date)


def _destination_in(m: MeasureDefinition, ep: Episode, _: list[Episode], __: date) -> Fact:
    assert ep.discharge is not None
    status = "achieved" if ep.discharge.destination in m.achieved_values else "not_achieved"
    return _fact(m, status, [ep.discharge.ref], ep.discharge.end_date)


def _pending_or(m: MeasureDefinition, ep: Episode, today: date, closed_status: str) -> Fact:
    assert ep.discharge is not None and m.window_months is not None
    last_pending_day = closes_on(ep.discharge.end_date, m.window_months, m.grace_days)
    if today > last_pending_day:
        return _fact(m, closed_status, [ep.discharge.ref], last_pending_day + timedelta(days=1))
    return _fact(m, "pending", [ep.discharge.ref], None, last_pending_day)


def _no_replacement(m: MeasureDefinition, ep: Episode, others: list[Episode], today: date) -> Fact:
    assert ep.discharge is not None and m.window_months is not None
    end = ep.discharge.end_date
    until = window_end(end, m.window_months)
    replacements = sorted(
        (
            o.placement
            for o in others
            if o.key != ep.key
            and o.placement is not None
            and o.placement.care_type != "outpatient"
            and end < o.placement.start_date <= until
        ),
        key=lambda p: (p.start_date, p.ref.source, p.ref.id),
    )
    if replacements:
        return _fact(m, "not_achieved", [ep.discharge.ref, replacements[0].ref], replacements[0].start_date)
    said_yes = [
        f
        for month, f in sorted(ep.followups.items())
        if month <= m.window_months and f.replaced_since_discharge is True
    ]
    if said_yes:
        return _fact(m, "not_achieved", [ep.discharge.ref, said_yes[0].ref], said_yes[0].assessed_on)
    own = ep.followups.get(m.window_months)
    if own is not None and own.replaced_since_discharge is False:
        return _fact(m, "achieved", [ep.discharge.ref, own.ref], own.assessed_on)
    return _pending_or(m, ep, today, "missing")


def _followup_bool(m: MeasureDefinition, ep: Episode, _: list[Episode], today: date) -> Fact:
    assert m.window_months is not None and m.followup_field is not None and ep.discharge is not None
    followup = ep.followups.get(m.window_months)
    answer = getattr(followup, m.followup_field) if followup is not None else None
    if followup is not None and answer is True:
        return _fact(m, "achieved", [ep.discharge.ref, followup.ref], followup.assessed_on)
    if followup is not None and answer is False:
        return _fact(m, "not_achieved", [ep.discharge.ref, followup.ref], followup.assessed_on)
    return _pending_or(m, ep, today, "missing")


def _followup_living(m: MeasureDefinition, ep: Episode, _: list[Episode], today: date) -> Fact:
    assert m.window_months is not None and ep.discharge is not None
    followup = ep.followups.get(m.window_months)
    if followup is not None and followup.living_situation in m.achieved_values:
        return _fact(m, "achieved", [ep.discharge.ref, followup.ref], followup.assessed_on)
    if followup is not None and followup.living_situation in m.not_achieved_values:
        return _fact(m, "not_achieved", [ep.discharge.ref, followup.ref], followup.assessed_on)
    return _pending_or(m, ep, today, "missing")


def _followup_exists(m: MeasureDefinition, ep: Episode, _: list[Episode], today: date) -> Fact:
    assert m.window_months is not None and ep.discharge is not None
    followup = ep.followups.get(m.window_months)
    if followup is not None:
        return _fact(m, "achieved", [ep.discharge.ref, followup.ref], followup.assessed_on)
    return _pending_or(m, ep, today, "not_achieved")


RULES: dict[str, Rule] = {
    "end_reason_in": _end_reason_in,
    "destination_in": _destination_in,
    "no_replacement": _no_replacement,
    "followup_bool": _followup_bool,
    "followup_living": _followup_living,
    "followup_exists": _followup_exists,
}


def evaluate(
    measure: MeasureDefinition, episode: Episode, subject_episodes: list[Episode], today: date
) -> Fact:
    return RULES[measure.kind](measure, episode, subject_episodes, today)


def facts_for_subject(
    episodes: list[Episode], today: date, catalogue: tuple[MeasureDefinition, ...] = CATALOGUE
) -> dict[tuple[EpisodeKey, str], Fact]:
    """Every fact of every closed episode of one subject (re-placement looks across its episodes)."""
    out: dict[tuple[EpisodeKey, str], Fact] = {}
    for episode in episodes:
        if not episode.closed:
            continue
        for measure in catalogue:
            out[(episode.key, measure.id)] = evaluate(measure, episode, episodes, today)
    return out
