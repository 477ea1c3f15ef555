"""Measures' service layer: store new care events, re-fold the subjects they touch, write changed facts
and queue the outcome messages, all in the caller's transaction. The rules are pure (`domain/episodes.py`,
`domain/facts.py`, `domain/revisions.py`); the queries are in `store.py`; the messages in `messages.py`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from utfall_platform.outbox import enqueue

from . import metrics as measures_metrics
from . import register_store, store
from .domain.catalogue import BY_ID, CATALOGUE
from .domain.episodes import Episode, EpisodeKey, StoredEvent, fold_episodes, touched_episodes
from .domain.facts import Fact, facts_for_subject
from .domain.revisions import plan_revisions
from .domain.verification import Coverage, VerifiedFact, verified_for_subject
from .incoming import Incoming, decode
from .messages import outcome_messages
from .store import load_subjects, store_events

__all__ = [
    "Incoming",
    "RefoldResult",
    "apply_fold",
    "decode",
    "load_subjects",
    "refold",
    "refold_closure",
    "store_events",
]

SCHEMA = "measures"


@dataclass
class RefoldResult:
    episodes: int = 0
    facts_changed: int = 0
    published: int = 0


async def refold(
    conn: asyncpg.Connection,
    subjects: Iterable[str],
    *,
    today: date,
    now: datetime,
    new_events: Sequence[StoredEvent] | None = None,
) -> RefoldResult:
    """Re-fold these subjects. With `new_events` (what a batch stored), only the episodes they can change are
    rewritten; without (the tick, a rebuild), every folded episode is."""
    subject_set = set(subjects)
    await store.lock_subjects(conn, subject_set)
    _, events = await load_subjects(conn, subject_set)
    touched = None if new_events is None else touched_episodes(new_events, events)
    return await apply_fold(conn, events, today=today, now=now, touched=touched)


async def refold_closure(
    conn: asyncpg.Connection, subjects: Iterable[str], *, today: date, now: datetime
) -> RefoldResult:
    """`refold` for workers that fold concurrently (a rebuild): every subject the events lead to is locked
    too, not only those asked for, so two workers never write one episode at once. The closure is known only
    once loaded: lock what it added and load again until nothing is added. Locks taken late are out of the
    global order, so two workers can deadlock: the caller folds the chunk again."""
    locked = set(subjects)
    await store.lock_subjects(conn, locked)
    while True:
        closure, events = await load_subjects(conn, locked)
        if closure <= locked:
            break
        await store.lock_subjects(conn, closure - locked)
        locked |= closure
    return await apply_fold(conn, events, today=today, now=now)


async def apply_fold(
    conn: asyncpg.Connection,
    events: list[StoredEvent],
    *,
    today: date,
    now: datetime,
    touched: Collection[EpisodeKey] | None = None,
) -> RefoldResult:
    """Fold the events (all of every episode they touch), evaluate the facts, write what changed and queue the
    outcome messages. Episodes are rewritten when in `touched` (None: all); an episode is a fold of its own
    events, so the others are stored as they fold now, and every subject's episodes are still folded for its
    facts (a re-placement in one episode settles a fact of another)."""
    episodes = fold_episodes(events)
    by_subject: dict[str, list[Episode]] = {}
    for folded in episodes.values():
        by_subject.setdefault(folded.subject_ref, []).append(folded)
    new_facts: dict[tuple[EpisodeKey, str], Fact] = {}
    for subject_episodes in by_subject.values():
        new_facts.update(facts_for_subject(subject_episodes, today, CATALOGUE))
    verified = await _verify(conn, by_subject, new_facts)
    for (key, measure_id), v in verified.items():  # decided verified outcomes are published as facts too
        fact = v.as_fact(BY_ID[measure_id])
        if fact is not None:
            new_facts[(key, fact.measure_id)] = fact

    keys = sorted({(e.provider_id, e.episode_id) for e in events})
    await store.write_episodes(
        conn, [ep for key, ep in episodes.items() if touched is None or key in touched], now
    )
    await store.delete_episodes(conn, [k for k in keys if k not in episodes])  # every event retracted
    plan = plan_revisions(await store.stored_facts(conn, keys), new_facts, episodes)
    await store.write_facts(conn, plan.writes, now)
    await register_store.write_verified(conn, keys, verified, episodes, now)
    changes = Counter((p.fact.measure_id, p.fact.status) for p in plan.publish if p.fact is not None)
    for (measure_id, status), n in changes.items():  # one labels() lookup per kind, not per fact
        measures_metrics.FACT_CHANGES.labels(measure_id, status).inc(n)
    await enqueue(conn, SCHEMA, outcome_messages(plan.publish, now))
    return RefoldResult(len(episodes), len(plan.writes), len(plan.publish))


async def _verify(
    conn: asyncpg.Connection,
    by_subject: dict[str, list[Episode]],
    reported: dict[tuple[EpisodeKey, str], Fact],
) -> dict[tuple[EpisodeKey, str], VerifiedFact]:
    """The verified facts of these subjects' episodes, from their register rows and the registers' coverage of
    their placing municipalities."""
    records = await register_store.records_of(conn, by_subject)
    municipalities = {
        ep.placement.municipality_code
        for eps in by_subject.values()
        for ep in eps
        if ep.placement is not None
    }
    coverage = Coverage(tuple(await register_store.coverage_of(conn, municipalities)))
    verified: dict[tuple[EpisodeKey, str], VerifiedFact] = {}
    for subject, subject_episodes in by_subject.items():
        verified.update(verified_for_subject(subject_episodes, records.get(subject, []), coverage, reported))
    return verified
