"""Measures' Postgres adapter: the events it keeps, the episodes and facts it writes. Every query of the
projection lives here; the rules that decide what to write live in `domain/`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

from utfall_events.aggregates import AggregateSubmissionV1
from utfall_events.reference import county_of
from utfall_platform import locks
from utfall_platform.bulk import EVERY_OTHER_COLUMN, BulkInsert, key_arrays

from .domain.episodes import Episode, EpisodeKey, StoredEvent
from .domain.revisions import FactKey, FactWrite, StoredFact, evidence_json
from .domain.windows import quarter_of
from .incoming import Incoming

_INSERT_EVENTS = BulkInsert(
    "measures.events",
    (
        ("source", "text"),
        ("event_id", "text"),
        ("type", "text"),
        ("subject_ref", "text"),
        ("provider_id", "text"),
        ("episode_id", "text"),
        ("time", "timestamptz"),
        ("data", "jsonb"),
        ("ingested_at", "timestamptz"),
    ),
    conflict=(),
    returning="source, event_id",
)


def _event_row(item: Incoming) -> dict[str, Any]:
    e = item.event
    return {
        "source": e.source,
        "event_id": e.event_id,
        "type": e.type,
        "subject_ref": e.subject_ref,
        "provider_id": e.provider_id,
        "episode_id": e.episode_id,
        "time": e.time,
        "data": e.data,
        "ingested_at": item.ingested_at,
    }


async def store_events(conn: asyncpg.Connection, incoming: Sequence[Incoming]) -> list[Incoming]:
    """Insert, skipping (source, id) pairs already stored; returns only the new ones."""
    if not incoming:
        return []
    unique: dict[tuple[str, str], Incoming] = {}
    for item in incoming:
        unique.setdefault((item.event.source, item.event.event_id), item)
    items = list(unique.values())
    rows = await _INSERT_EVENTS.write(conn, map(_event_row, items))
    inserted = {(r["source"], r["event_id"]) for r in rows}
    return [i for i in items if (i.event.source, i.event.event_id) in inserted]


_REPLAY_EVENTS = dataclasses.replace(_INSERT_EVENTS, returning=None)


async def replay_events(conn: asyncpg.Connection, incoming: Sequence[Incoming]) -> None:
    """A rebuild's batch of replayed events (COPY through the staging table); duplicates are skipped."""
    async with conn.transaction():
        await _REPLAY_EVENTS.write(conn, map(_event_row, incoming))


async def count_events(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM measures.events"))


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
            *key_arrays(keys),
        )
        for r in rows:
            event = _row_to_event(r)
            events[(event.source, event.event_id)] = event
            if event.subject_ref not in subjects:
                subjects.add(event.subject_ref)
                pending.add(event.subject_ref)
    return subjects, list(events.values())


async def subjects_of_share(
    conn: asyncpg.Connection, share: int, shares: int, *, after: str, limit: int
) -> list[str]:
    """The next `limit` subjects after `after` whose hash falls in this share (a rebuild worker's part), read
    along the subject index so no worker holds the list of every subject."""
    rows = await conn.fetch(
        "SELECT DISTINCT subject_ref FROM measures.events WHERE subject_ref > $1 "
        "AND (hashtextextended(subject_ref, 0) & 2147483647) % $2 = $3 ORDER BY subject_ref LIMIT $4",
        after,
        shares,
        share,
        limit,
    )
    return [r["subject_ref"] for r in rows]


async def lock_subjects(conn: asyncpg.Connection, subjects: set[str]) -> None:
    """One round trip for all the subjects' locks, taken in one global order (no deadlock between replicas)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended(s, $2) AS h "
        "FROM unnest($1::text[]) AS s ORDER BY 1) AS ordered",
        sorted(subjects),
        locks.MEASURES_SUBJECT,
    )


async def delete_episodes(conn: asyncpg.Connection, keys: Sequence[EpisodeKey]) -> None:
    if keys:
        await conn.execute(
            "DELETE FROM measures.episodes WHERE (provider_id, episode_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))",
            *key_arrays(keys),
        )


# A fact or an episode row carries its placement's dimensions: one function names them for both tables.
def placement_columns(ep: Episode) -> dict[str, Any]:
    p = ep.placement
    return {
        "unit_id": p.unit_id if p else None,
        "municipality_code": p.municipality_code if p else None,
        "county_code": county_of(p.municipality_code) if p else None,
        "care_type": p.care_type if p else None,
        "legal_basis": p.legal_basis if p else None,
        "target_group": p.target_group if p else None,
        "sex": p.sex if p else None,
        "age_at_start": p.age_at_start if p else None,
        "age_band": p.age_band if p else None,
        "start_date": p.start_date if p else None,
    }


def discharge_columns(ep: Episode) -> dict[str, Any]:
    d = ep.discharge
    return {
        "end_date": d.end_date if d else None,
        "discharge_year": d.end_date.year if d else None,
        "discharge_quarter": quarter_of(d.end_date) if d else None,
    }


PLACEMENT_TYPES = (
    ("unit_id", "text"),
    ("municipality_code", "text"),
    ("county_code", "text"),
    ("care_type", "text"),
    ("legal_basis", "text"),
    ("target_group", "text"),
    ("sex", "text"),
    ("age_at_start", "int"),
    ("age_band", "text"),
    ("start_date", "date"),
)
DISCHARGE_TYPES = (("end_date", "date"), ("discharge_year", "int"), ("discharge_quarter", "int"))

_UPSERT_EPISODES = BulkInsert(
    "measures.episodes",
    (
        ("provider_id", "text"),
        ("episode_id", "text"),
        ("subject_ref", "text"),
        *PLACEMENT_TYPES,
        ("birth_year", "int"),
        *DISCHARGE_TYPES,
        ("end_reason", "text"),
        ("destination", "text"),
        ("length_of_stay_days", "int"),
        ("data_errors", "text"),  # comma-joined: unnest cannot take an array of arrays
    ),
    constants=(("updated_at", "timestamptz"),),
    select={"data_errors": "coalesce(string_to_array(nullif(x.data_errors, ''), ','), '{}')"},
    conflict=("provider_id", "episode_id"),
    update=EVERY_OTHER_COLUMN,
)


def _episode_row(ep: Episode) -> dict[str, Any]:
    p, d = ep.placement, ep.discharge
    return {
        "provider_id": ep.provider_id,
        "episode_id": ep.episode_id,
        "subject_ref": ep.subject_ref,
        **placement_columns(ep),
        "birth_year": p.birth_year if p else None,
        **discharge_columns(ep),
        "end_reason": d.end_reason if d else None,
        "destination": d.destination if d else None,
        "length_of_stay_days": ep.length_of_stay_days,
        "data_errors": ",".join(ep.data_errors),
    }


_UPSERT_FACTS = BulkInsert(
    "measures.facts",
    (
        ("provider_id", "text"),
        ("episode_id", "text"),
        ("measure_id", "text"),
        ("measure_version", "int"),
        ("subject_ref", "text"),
        ("status", "text"),
        ("revision", "int"),
        ("evidence", "jsonb"),
        ("closes_on", "date"),
        ("outcome_date", "date"),
        *PLACEMENT_TYPES,
        *DISCHARGE_TYPES,
    ),
    constants=(("determined_at", "timestamptz"),),
    conflict=("provider_id", "episode_id", "measure_id"),
    update=EVERY_OTHER_COLUMN,
)


def _fact_row(write: FactWrite, episode_columns: dict[str, Any]) -> dict[str, Any]:
    fact = write.fact
    assert fact is not None
    return {
        "provider_id": write.key[0],
        "episode_id": write.key[1],
        "measure_id": write.measure_id,
        "measure_version": fact.measure_version,
        "status": fact.status,
        "revision": write.revision,
        "evidence": evidence_json(fact),
        "closes_on": fact.closes_on,
        "outcome_date": fact.outcome_date,
        **episode_columns,  # subject_ref and the placement's and discharge's columns
    }


_FACT_COLUMNS = ", ".join(f.name for f in dataclasses.fields(StoredFact))  # a stored fact is its row


async def stored_facts(conn: asyncpg.Connection, keys: Sequence[EpisodeKey]) -> dict[FactKey, StoredFact]:
    rows = await conn.fetch(
        f"SELECT {_FACT_COLUMNS} FROM measures.facts WHERE (provider_id, episode_id) IN "
        "(SELECT * FROM unnest($1::text[], $2::text[]))",  # every episode of the loaded events: index only
        *key_arrays(keys),
    )
    # the columns are selected in the dataclass's field order: positional, without a dict per row
    return {((r[0], r[1]), r[2]): StoredFact(*r) for r in rows}


async def write_episodes(conn: asyncpg.Connection, episodes: list[Episode], now: datetime) -> None:
    if not episodes:
        return
    await _UPSERT_EPISODES.write(conn, map(_episode_row, episodes), now)


async def write_facts(conn: asyncpg.Connection, writes: Sequence[FactWrite], now: datetime) -> None:
    voids = [w for w in writes if w.fact is None]
    if voids:
        await conn.execute(
            "UPDATE measures.facts AS f SET status = 'void', revision = u.r, closes_on = NULL, outcome_date = NULL, "
            "determined_at = $4 "
            "FROM unnest($1::text[], $2::text[], $3::text[], $5::int[]) AS u(p, e, m, r) "
            "WHERE f.provider_id = u.p AND f.episode_id = u.e AND f.measure_id = u.m",
            [w.key[0] for w in voids],
            [w.key[1] for w in voids],
            [w.measure_id for w in voids],
            now,
            [w.revision for w in voids],
        )
    rows = [w for w in writes if w.fact is not None]
    if rows:
        # an episode's columns are the same for each of its facts: built once per episode
        columns: dict[EpisodeKey, dict[str, Any]] = {}
        for w in rows:
            if w.key not in columns:
                ep = w.episode
                assert ep is not None and ep.placement is not None and ep.discharge is not None
                columns[w.key] = {
                    "subject_ref": ep.subject_ref,
                    **placement_columns(ep),
                    **discharge_columns(ep),
                }
        await _UPSERT_FACTS.write(conn, (_fact_row(w, columns[w.key]) for w in rows), now)


# --- the tick, gauges and aggregated submissions -----------------------------------------------------------
async def subjects_with_closed_windows(conn: asyncpg.Connection, today: date, limit: int) -> set[str]:
    """Subjects with a pending fact whose window (plus grace) closed before `today`."""
    rows = await conn.fetch(
        "SELECT DISTINCT subject_ref FROM measures.facts WHERE status = 'pending' AND closes_on < $1 LIMIT $2",
        today,
        limit,
    )
    return {r["subject_ref"] for r in rows}


async def fact_counts(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(
        await pool.fetch("SELECT measure_id, status, count(*) AS n FROM measures.facts GROUP BY 1, 2")
    )


async def data_error_counts(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(
        await pool.fetch("SELECT error, sum(episodes) AS n FROM measures_read.data_errors GROUP BY 1")
    )


async def keep_newest_submissions(
    conn: asyncpg.Connection, submissions: Iterable[AggregateSubmissionV1]
) -> None:
    """Each submission key's newest version (an older one arriving later changes nothing)."""
    for s in submissions:
        quarter = int(s.period[-1]) if "-Q" in s.period else None
        await conn.execute(
            "INSERT INTO measures.aggregate_submissions AS a (submission_key, version, provider_id, measure_id, "
            "measure_version, period, discharge_year, discharge_quarter, target_group, care_type, legal_basis, sex, "
            "age_band, numerator, denominator, missing, method, channel, submitted_at) VALUES ($1, $2, $3, $4, $5, "
            "$6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) ON CONFLICT (submission_key) DO UPDATE "
            "SET version = EXCLUDED.version, numerator = EXCLUDED.numerator, denominator = EXCLUDED.denominator, "
            "missing = EXCLUDED.missing, method = EXCLUDED.method, channel = EXCLUDED.channel, "
            "submitted_at = EXCLUDED.submitted_at, measure_version = EXCLUDED.measure_version "
            "WHERE a.version < EXCLUDED.version",
            s.submission_key,
            s.version,
            s.provider_id,
            s.measure_id,
            s.measure_version,
            s.period,
            int(s.period[:4]),
            quarter,
            s.target_group,
            s.care_type,
            s.legal_basis,
            s.sex,
            s.age_band,
            s.numerator,
            s.denominator,
            s.missing,
            s.method,
            s.channel,
            s.submitted_at,
        )


# --- rebuilding the projection -----------------------------------------------------------------------------
async def empty_projection(conn: asyncpg.Connection, *, marked: bool) -> None:
    """Events and episodes gone (facts stay: the re-fold revises them); `marked`: a rebuild is under way, so a
    service that starts before it ends completes it."""
    await conn.execute("TRUNCATE measures.events, measures.episodes")
    if marked:
        await conn.execute(
            "INSERT INTO measures.rebuild_marker (id, started_at) VALUES (1, now()) "
            "ON CONFLICT (id) DO UPDATE SET started_at = now()"
        )
    else:
        await conn.execute("DELETE FROM measures.rebuild_marker")


async def rebuild_under_way(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT 1 FROM measures.rebuild_marker"))


async def rebuild_done(conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM measures.rebuild_marker")
