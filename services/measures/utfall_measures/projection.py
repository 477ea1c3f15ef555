"""Measures' service layer: store new care events, re-fold the subjects they touch, write changed facts
and queue the outcome messages, all in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
import orjson

from utfall_events.cloudevents import binary_headers
from utfall_events.codec import decode_care_event
from utfall_events.outcomes import OUTCOME_FACT_TYPE, EpisodeDimensions, EventRef, OutcomeFactV1
from utfall_events.reference import county_of
from utfall_events.topics import OUTCOMES
from utfall_platform.consumer import Record
from utfall_platform.db import json_texts
from utfall_platform.outbox import OutboxMessage, enqueue

from . import metrics as measures_metrics
from .domain.catalogue import CATALOGUE
from .domain.episodes import Episode, EpisodeKey, StoredEvent, fold_episodes
from .domain.facts import Fact, facts_for_subject
from .domain.windows import quarter_of

SCHEMA = "measures"


@dataclass(frozen=True, slots=True)
class Incoming:
    event: StoredEvent
    ingested_at: datetime | None


def decode(record: Record) -> Incoming:
    d = decode_care_event(record.headers, record.value)
    return Incoming(
        StoredEvent(d.source, d.event_id, d.type, d.time, d.subject_ref, d.provider_id, d.episode_id, d.data),
        d.ingested_at,
    )


async def store_events(conn: asyncpg.Connection, incoming: Sequence[Incoming]) -> list[Incoming]:
    """Insert, skipping (source, id) pairs already stored; returns only the new ones."""
    if not incoming:
        return []
    unique: dict[tuple[str, str], Incoming] = {}
    for item in incoming:
        unique.setdefault((item.event.source, item.event.event_id), item)
    items = list(unique.values())
    rows = await conn.fetch(
        "INSERT INTO measures.events (source, event_id, type, subject_ref, provider_id, episode_id, time, data, "
        "ingested_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
        "$6::text[], $7::timestamptz[], $8::text[]::jsonb[], $9::timestamptz[]) ON CONFLICT DO NOTHING "
        "RETURNING source, event_id",
        [i.event.source for i in items],
        [i.event.event_id for i in items],
        [i.event.type for i in items],
        [i.event.subject_ref for i in items],
        [i.event.provider_id for i in items],
        [i.event.episode_id for i in items],
        [i.event.time for i in items],
        json_texts([i.event.data for i in items]),
        [i.ingested_at for i in items],
    )
    inserted = {(r["source"], r["event_id"]) for r in rows}
    return [i for i in items if (i.event.source, i.event.event_id) in inserted]


def _row_to_event(r: asyncpg.Record) -> StoredEvent:
    return StoredEvent(
        r["source"],
        r["event_id"],
        r["type"],
        r["time"],
        r["subject_ref"],
        r["provider_id"],
        r["episode_id"],
        r["data"],
    )


async def load_subjects(conn: asyncpg.Connection, subjects: set[str]) -> tuple[set[str], list[StoredEvent]]:
    """All events of every episode touching these subjects, closed over subject changes (a corrected
    placement.started may move an episode to another subject_ref)."""
    subjects = set(subjects)
    seen_keys: set[EpisodeKey] = set()
    events: dict[tuple[str, str], StoredEvent] = {}
    pending = set(subjects)
    for _ in range(10):
        if not pending:
            break
        rows = await conn.fetch(
            "SELECT DISTINCT provider_id, episode_id FROM measures.events WHERE subject_ref = ANY($1::text[]) "
            "UNION SELECT provider_id, episode_id FROM measures.episodes WHERE subject_ref = ANY($1::text[])",
            sorted(pending),
        )
        keys = {(r["provider_id"], r["episode_id"]) for r in rows} - seen_keys
        pending = set()
        if not keys:
            break
        seen_keys |= keys
        rows = await conn.fetch(
            "SELECT source, event_id, type, subject_ref, provider_id, episode_id, time, data FROM measures.events "
            "WHERE (provider_id, episode_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        for r in rows:
            event = _row_to_event(r)
            events[(event.source, event.event_id)] = event
            if event.subject_ref not in subjects:
                subjects.add(event.subject_ref)
                pending.add(event.subject_ref)
    return subjects, list(events.values())


@dataclass
class RefoldResult:
    episodes: int = 0
    facts_changed: int = 0
    published: int = 0


async def refold(
    conn: asyncpg.Connection, subjects: Iterable[str], *, today: date, now: datetime
) -> RefoldResult:
    subject_set = set(subjects)
    # One round trip for all the subjects' locks, taken in one global order (no deadlock between replicas).
    await conn.execute(
        "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended(s, 11) AS h "
        "FROM unnest($1::text[]) AS s ORDER BY 1) AS ordered",
        sorted(subject_set),
    )
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
    await _write_episodes(conn, list(episodes.values()), now)
    vanished = [k for k in keys if k not in episodes]  # every event of the episode retracted
    if vanished:
        await conn.execute(
            "DELETE FROM measures.episodes WHERE (provider_id, episode_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))",
            [k[0] for k in vanished],
            [k[1] for k in vanished],
        )
    existing = await conn.fetch(
        "SELECT provider_id, episode_id, measure_id, measure_version, status, revision, evidence, closes_on, "
        "outcome_date, subject_ref, unit_id, municipality_code, care_type, legal_basis, target_group, sex, age_at_start, "
        "start_date, end_date FROM measures.facts WHERE (provider_id, episode_id) IN "
        "(SELECT * FROM unnest($1::text[], $2::text[]))",  # every episode of the loaded events: index only
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    old = {((r["provider_id"], r["episode_id"]), r["measure_id"]): r for r in existing}
    upserts: list[tuple[EpisodeKey, str, Fact | None, int, Episode | None, asyncpg.Record | None]] = []
    messages: list[OutboxMessage] = []
    for fact_key in sorted(set(old) | set(new_facts)):
        episode_key, measure_id = fact_key
        fact = new_facts.get(fact_key)
        previous = old.get(fact_key)
        episode = episodes.get(episode_key)
        if fact is None:
            if previous is None or previous["status"] == "void":
                continue
            revision = previous["revision"] + 1
            upserts.append((episode_key, measure_id, None, revision, episode, previous))
            messages.append(_void_message(previous, revision, now))
            continue
        assert episode is not None
        # A message goes out when what a consumer acts on changes: the status, or the outcome date that orders
        # payments under a binding cap.
        status_changed = (
            previous is None
            or previous["status"] != fact.status
            or previous["outcome_date"] != fact.outcome_date
        )
        if previous is not None and not status_changed and not _differs(previous, fact, episode):
            continue
        revision = 1 if previous is None else previous["revision"] + (1 if status_changed else 0)
        upserts.append((episode_key, measure_id, fact, revision, episode, previous))
        if status_changed:
            messages.append(
                _fact_message(episode, fact, revision, previous["status"] if previous else None, now)
            )
            measures_metrics.FACT_CHANGES.labels(measure_id, fact.status).inc()
    await _write_facts(conn, upserts, now)
    await enqueue(conn, SCHEMA, messages)
    return RefoldResult(len(episodes), len(upserts), len(messages))


def _differs(previous: asyncpg.Record, fact: Fact, episode: Episode) -> bool:
    p = episode.placement
    assert p is not None and episode.discharge is not None
    evidence = [{"source": e.source, "id": e.id} for e in fact.evidence]
    return bool(
        previous["measure_version"] != fact.measure_version
        or previous["evidence"] != evidence
        or previous["closes_on"] != fact.closes_on
        or previous["subject_ref"] != episode.subject_ref
        or previous["unit_id"] != p.unit_id
        or previous["municipality_code"] != p.municipality_code
        or previous["care_type"] != p.care_type
        or previous["legal_basis"] != p.legal_basis
        or previous["target_group"] != p.target_group
        or previous["sex"] != p.sex
        or previous["age_at_start"] != p.age_at_start
        or previous["start_date"] != p.start_date
        or previous["end_date"] != episode.discharge.end_date
    )


async def _write_episodes(conn: asyncpg.Connection, episodes: list[Episode], now: datetime) -> None:
    if not episodes:
        return
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "provider_id",
            "episode_id",
            "subject_ref",
            "unit_id",
            "municipality_code",
            "county_code",
            "care_type",
            "legal_basis",
            "target_group",
            "sex",
            "birth_year",
            "age_at_start",
            "age_band",
            "start_date",
            "end_date",
            "end_reason",
            "destination",
            "los",
            "year",
            "quarter",
            "errors",
        )
    }
    for ep in episodes:
        p, d = ep.placement, ep.discharge
        cols["provider_id"].append(ep.provider_id)
        cols["episode_id"].append(ep.episode_id)
        cols["subject_ref"].append(ep.subject_ref)
        cols["unit_id"].append(p.unit_id if p else None)
        cols["municipality_code"].append(p.municipality_code if p else None)
        cols["county_code"].append(county_of(p.municipality_code) if p else None)
        cols["care_type"].append(p.care_type if p else None)
        cols["legal_basis"].append(p.legal_basis if p else None)
        cols["target_group"].append(p.target_group if p else None)
        cols["sex"].append(p.sex if p else None)
        cols["birth_year"].append(p.birth_year if p else None)
        cols["age_at_start"].append(p.age_at_start if p else None)
        cols["age_band"].append(p.age_band if p else None)
        cols["start_date"].append(p.start_date if p else None)
        cols["end_date"].append(d.end_date if d else None)
        cols["end_reason"].append(d.end_reason if d else None)
        cols["destination"].append(d.destination if d else None)
        cols["los"].append(ep.length_of_stay_days)
        cols["year"].append(d.end_date.year if d else None)
        cols["quarter"].append(quarter_of(d.end_date) if d else None)
        cols["errors"].append(",".join(ep.data_errors))
    await conn.execute(
        "INSERT INTO measures.episodes AS e (provider_id, episode_id, subject_ref, unit_id, municipality_code, "
        "county_code, care_type, legal_basis, target_group, sex, birth_year, age_at_start, age_band, start_date, "
        "end_date, end_reason, destination, length_of_stay_days, discharge_year, discharge_quarter, data_errors, "
        "updated_at) SELECT a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, "
        "coalesce(string_to_array(nullif(u, ''), ','), '{}'), $22 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
        "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int[], $12::int[], "
        "$13::text[], $14::date[], $15::date[], $16::text[], $17::text[], $18::int[], $19::int[], $20::int[], "
        "$21::text[]) AS x(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t, u) "
        "ON CONFLICT (provider_id, episode_id) DO UPDATE SET subject_ref = EXCLUDED.subject_ref, "
        "unit_id = EXCLUDED.unit_id, municipality_code = EXCLUDED.municipality_code, "
        "county_code = EXCLUDED.county_code, care_type = EXCLUDED.care_type, legal_basis = EXCLUDED.legal_basis, "
        "target_group = EXCLUDED.target_group, sex = EXCLUDED.sex, birth_year = EXCLUDED.birth_year, "
        "age_at_start = EXCLUDED.age_at_start, age_band = EXCLUDED.age_band, start_date = EXCLUDED.start_date, "
        "end_date = EXCLUDED.end_date, end_reason = EXCLUDED.end_reason, destination = EXCLUDED.destination, "
        "length_of_stay_days = EXCLUDED.length_of_stay_days, discharge_year = EXCLUDED.discharge_year, "
        "discharge_quarter = EXCLUDED.discharge_quarter, data_errors = EXCLUDED.data_errors, "
        "updated_at = EXCLUDED.updated_at",
        *cols.values(),
        now,
    )


async def _write_facts(
    conn: asyncpg.Connection,
    upserts: list[tuple[EpisodeKey, str, Fact | None, int, Episode | None, asyncpg.Record | None]],
    now: datetime,
) -> None:
    voids = [(k, m, rev) for k, m, fact, rev, _, _ in upserts if fact is None]
    if voids:
        await conn.execute(
            "UPDATE measures.facts AS f SET status = 'void', revision = u.r, closes_on = NULL, outcome_date = NULL, "
            "determined_at = $4 "
            "FROM unnest($1::text[], $2::text[], $3::text[], $5::int[]) AS u(p, e, m, r) "
            "WHERE f.provider_id = u.p AND f.episode_id = u.e AND f.measure_id = u.m",
            [k[0] for k, _, _ in voids],
            [k[1] for k, _, _ in voids],
            [m for _, m, _ in voids],
            now,
            [r for _, _, r in voids],
        )
    rows = [(k, m, fact, rev, ep) for k, m, fact, rev, ep, _ in upserts if fact is not None]
    if not rows:
        return
    cols: list[list[Any]] = [[] for _ in range(24)]
    for key, measure_id, fact, revision, ep in rows:
        assert fact is not None and ep is not None and ep.placement is not None and ep.discharge is not None
        p, d = ep.placement, ep.discharge
        values = [
            key[0],
            key[1],
            measure_id,
            fact.measure_version,
            ep.subject_ref,
            fact.status,
            revision,
            [{"source": e.source, "id": e.id} for e in fact.evidence],
            fact.closes_on,
            p.unit_id,
            p.municipality_code,
            county_of(p.municipality_code),
            p.care_type,
            p.legal_basis,
            p.target_group,
            p.sex,
            p.age_at_start,
            p.age_band,
            p.start_date,
            d.end_date,
            d.end_date.year,
            quarter_of(d.end_date),
            now,
            fact.outcome_date,
        ]
        for column, value in zip(cols, values, strict=True):
            column.append(value)
    await conn.execute(
        "INSERT INTO measures.facts (provider_id, episode_id, measure_id, measure_version, subject_ref, status, "
        "revision, evidence, closes_on, unit_id, municipality_code, county_code, care_type, legal_basis, "
        "target_group, sex, age_at_start, age_band, start_date, end_date, discharge_year, discharge_quarter, "
        "determined_at, outcome_date) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], "
        "$6::text[], $7::int[], $8::text[]::jsonb[], $9::date[], $10::text[], $11::text[], $12::text[], $13::text[], "
        "$14::text[], $15::text[], $16::text[], $17::int[], $18::text[], $19::date[], $20::date[], $21::int[], "
        "$22::int[], $23::timestamptz[], $24::date[]) ON CONFLICT (provider_id, episode_id, measure_id) DO UPDATE SET "
        "measure_version = EXCLUDED.measure_version, subject_ref = EXCLUDED.subject_ref, status = EXCLUDED.status, "
        "revision = EXCLUDED.revision, evidence = EXCLUDED.evidence, closes_on = EXCLUDED.closes_on, "
        "unit_id = EXCLUDED.unit_id, municipality_code = EXCLUDED.municipality_code, "
        "county_code = EXCLUDED.county_code, care_type = EXCLUDED.care_type, legal_basis = EXCLUDED.legal_basis, "
        "target_group = EXCLUDED.target_group, sex = EXCLUDED.sex, age_at_start = EXCLUDED.age_at_start, "
        "age_band = EXCLUDED.age_band, start_date = EXCLUDED.start_date, end_date = EXCLUDED.end_date, "
        "discharge_year = EXCLUDED.discharge_year, discharge_quarter = EXCLUDED.discharge_quarter, "
        "determined_at = EXCLUDED.determined_at, outcome_date = EXCLUDED.outcome_date",
        *cols[:7],
        json_texts(cols[7]),
        *cols[8:],
    )


def _message(fact: OutcomeFactV1, now: datetime) -> OutboxMessage:
    return _outcome_message(
        fact.fact_id, fact.revision, fact.episode_id, fact.subject_ref, fact.model_dump_json().encode(), now
    )


def _outcome_message(
    fact_id: str, revision: int, episode_id: str, subject_ref: str, body: bytes, now: datetime
) -> OutboxMessage:
    headers = binary_headers(
        event_id=f"{fact_id}#{revision}",
        source="utfall/measures",
        type_=OUTCOME_FACT_TYPE,
        time=now,
        subject=episode_id,
        extra={},
    )
    return OutboxMessage(OUTCOMES, subject_ref.encode(), body, headers)


def _fact_message(
    ep: Episode, fact: Fact, revision: int, previous: str | None, now: datetime
) -> OutboxMessage:
    """An OutcomeFactV1 written straight to JSON (the hot path publishes eight per ended episode; a unit test
    pins this shape to the model)."""
    p, d = ep.placement, ep.discharge
    assert p is not None
    body = {
        "fact_id": f"{ep.provider_id}/{ep.episode_id}/{fact.measure_id}",
        "measure_id": fact.measure_id,
        "measure_version": fact.measure_version,
        "subject_ref": ep.subject_ref,
        "episode_id": ep.episode_id,
        "status": fact.status,
        "previous_status": previous,
        "revision": revision,
        "evidence": [{"source": e.source, "id": e.id} for e in fact.evidence],
        "determined_at": now,
        "outcome_date": fact.outcome_date,
        "episode": {
            "provider_id": ep.provider_id,
            "unit_id": p.unit_id,
            "municipality_code": p.municipality_code,
            "care_type": p.care_type,
            "legal_basis": p.legal_basis,
            "target_group": p.target_group,
            "sex": p.sex,
            "age_at_start": p.age_at_start,
            "start_date": p.start_date,
            "end_date": d.end_date if d else None,
        },
    }
    return _outcome_message(
        str(body["fact_id"]), revision, ep.episode_id, ep.subject_ref, orjson.dumps(body), now
    )


def _void_message(previous: asyncpg.Record, revision: int, now: datetime) -> OutboxMessage:
    body = OutcomeFactV1(
        fact_id=f"{previous['provider_id']}/{previous['episode_id']}/{previous['measure_id']}",
        measure_id=previous["measure_id"],
        measure_version=previous["measure_version"],
        subject_ref=previous["subject_ref"],
        episode_id=previous["episode_id"],
        status="void",
        previous_status=previous["status"],
        revision=revision,
        evidence=[EventRef(**e) for e in previous["evidence"]],
        determined_at=now,
        episode=EpisodeDimensions(
            provider_id=previous["provider_id"],
            unit_id=previous["unit_id"],
            municipality_code=previous["municipality_code"],
            care_type=previous["care_type"],
            legal_basis=previous["legal_basis"],
            target_group=previous["target_group"],
            sex=previous["sex"],
            age_at_start=previous["age_at_start"],
            start_date=previous["start_date"],
            end_date=previous["end_date"],
        ),
    )
    return _message(body, now)
