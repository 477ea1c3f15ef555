"""Measures' service layer: store new care events, re-fold the subjects they touch, write changed facts
and queue the outcome messages, all in the caller's transaction. The rules are pure (`domain/episodes.py`,
`domain/facts.py`, `domain/revisions.py`); the queries are in `store.py`; the messages in `messages.py`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from utfall_platform.outbox import enqueue

from . import metrics as measures_metrics
from . import store
from .domain.catalogue import CATALOGUE
from .domain.episodes import Episode, EpisodeKey, StoredEvent, fold_episodes
from .domain.facts import Fact, facts_for_subject
from .domain.revisions import plan_revisions
from .incoming import Incoming, decode
from .messages import outcome_messages
from .store import load_subjects, store_events

__all__ = ["Incoming", "RefoldResult", "apply_fold", "decode", "load_subjects", "refold", "store_events"]

SCHEMA = "measures"


@dataclass
class RefoldResult:
    episodes: int = 0
    facts_changed: int = 0
    published: int = 0


async def refold(
    conn: asyncpg.Connection, subjects: Iterable[str], *, today: date, now: datetime
) -> RefoldResult:
    subject_set = set(subjects)
    await store.lock_subjects(conn, subject_set)
    _, events = await load_subjects(conn, subject_set)
    return await apply_fold(conn, events, today=today, now=now)


async def apply_fold(
    conn: asyncpg.Connection,
    events: list[StoredEvent],
    *,
    today: date,
    now: datetime,
    episodes: dict[EpisodeKey, Episode] | None = None,
) -> RefoldResult:
    """Fold the events (all of every episode they touch), evaluate the facts, write what changed and queue the
    outcome messages. `episodes` may be passed when already folded (the rebuild folds in memory)."""
    if episodes is None:
        episodes = fold_episodes(events)
    by_subject: dict[str, list[Episode]] = {}
    for folded in episodes.values():
        by_subject.setdefault(folded.subject_ref, []).append(folded)
    new_facts: dict[tuple[EpisodeKey, str], Fact] = {}
    for subject_episodes in by_subject.values():
        new_facts.update(facts_for_subject(subject_episodes, today, CATALOGUE))

    keys = sorted({(e.provider_id, e.episode_id) for e in events})
    await store.write_episodes(conn, list(episodes.values()), now)
    await store.delete_episodes(conn, [k for k in keys if k not in episodes])  # every event retracted
    plan = plan_revisions(await store.stored_facts(conn, keys), new_facts, episodes)
    await store.write_facts(conn, plan.writes, now)
    for publication in plan.publish:
        if publication.fact is not None:
            measures_metrics.FACT_CHANGES.labels(publication.fact.measure_id, publication.fact.status).inc()
    await enqueue(conn, SCHEMA, outcome_messages(plan.publish, now))
    return RefoldResult(len(episodes), len(plan.writes), len(plan.publish))
