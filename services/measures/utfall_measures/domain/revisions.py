"""Revisions of outcome facts, as a pure function: the facts stored before a re-fold and the facts the fold
gives now in; the rows to write and the messages to publish out.

Rules
- A fact that is new gets revision 1 and is published.
- A fact whose status or outcome date changed gets the next revision and is published: those are what a
  consumer acts on (contracts order payments by outcome date under a binding cap).
- A fact whose other details changed (evidence, dimensions, closes_on) is rewritten at the same revision and
  not published.
- A fact that no longer exists (its episode retracted, or no longer ended) is voided at the next revision and
  the void is published, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from .episodes import Episode, EpisodeKey
from .facts import Fact

FactKey = tuple[EpisodeKey, str]  # (episode, measure id)


@dataclass(frozen=True, slots=True)
class StoredFact:
    """A row of measures.facts as the last fold left it."""

    provider_id: str
    episode_id: str
    measure_id: str
    measure_version: int
    status: str
    revision: int
    evidence: list[dict[str, Any]]
    closes_on: date | None
    outcome_date: date | None
    subject_ref: str
    unit_id: str
    municipality_code: str
    care_type: str
    legal_basis: str
    target_group: str
    sex: str
    age_at_start: int
    start_date: date
    end_date: date | None


@dataclass(frozen=True, slots=True)
class FactWrite:
    """A fact to store at `revision` (the fact of `episode`), or, with `fact` None, to void."""

    key: EpisodeKey
    measure_id: str
    fact: Fact | None
    revision: int
    episode: Episode | None


@dataclass(frozen=True, slots=True)
class Publication:
    """An outcome message: the fact at its new revision, or the void of `previous`."""

    revision: int
    fact: Fact | None
    episode: Episode | None
    previous: StoredFact | None

    @property
    def previous_status(self) -> str | None:
        return self.previous.status if self.previous is not None else None


@dataclass(frozen=True, slots=True)
class RevisionPlan:
    writes: list[FactWrite]
    publish: list[Publication]


def plan_revisions(
    old: Mapping[FactKey, StoredFact], new: Mapping[FactKey, Fact], episodes: Mapping[EpisodeKey, Episode]
) -> RevisionPlan:
    writes: list[FactWrite] = []
    publish: list[Publication] = []
    for fact_key in sorted(set(old) | set(new)):
        episode_key, measure_id = fact_key
        fact = new.get(fact_key)
        previous = old.get(fact_key)
        episode = episodes.get(episode_key)
        if fact is None:
            if previous is None or previous.status == "void":
                continue
            revision = previous.revision + 1
            writes.append(FactWrite(episode_key, measure_id, None, revision, episode))
            publish.append(Publication(revision, None, episode, previous))
            continue
        assert episode is not None
        status_changed = (
            previous is None or previous.status != fact.status or previous.outcome_date != fact.outcome_date
        )
        if previous is not None and not status_changed and not _details_differ(previous, fact, episode):
            continue
        revision = 1 if previous is None else previous.revision + (1 if status_changed else 0)
        writes.append(FactWrite(episode_key, measure_id, fact, revision, episode))
        if status_changed:
            publish.append(Publication(revision, fact, episode, previous))
    return RevisionPlan(writes, publish)


def evidence_json(fact: Fact) -> list[dict[str, str]]:
    return [{"source": e.source, "id": e.id} for e in fact.evidence]


def _details_differ(previous: StoredFact, fact: Fact, episode: Episode) -> bool:
    p, d = episode.placement, episode.discharge
    assert p is not None and d is not None
    # the evidence last: it is the only comparison that walks a list
    return (
        previous.measure_version != fact.measure_version
        or previous.closes_on != fact.closes_on
        or previous.subject_ref != episode.subject_ref
        or previous.unit_id != p.unit_id
        or previous.municipality_code != p.municipality_code
        or previous.care_type != p.care_type
        or previous.legal_basis != p.legal_basis
        or previous.target_group != p.target_group
        or previous.sex != p.sex
        or previous.age_at_start != p.age_at_start
        or previous.start_date != p.start_date
        or previous.end_date != d.end_date
        or not _same_evidence(previous.evidence, fact)
    )


def _same_evidence(stored: list[dict[str, Any]], fact: Fact) -> bool:
    """`stored == evidence_json(fact)` without building the dicts (most facts compared are unchanged)."""
    refs = fact.evidence
    return len(stored) == len(refs) and all(
        len(s) == 2 and s.get("source") == r.source and s.get("id") == r.id
        for s, r in zip(stored, refs, strict=True)
    )
