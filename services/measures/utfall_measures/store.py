"""Measures' Postgres adapter: the events it keeps, the episodes and facts it writes. Every query of the
projection lives here; the rules that decide what to write live in `domain/`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from utfall_events.reference import county_of
from utfall_platform import locks
from utfall_platform.db import json_texts

from .domain.episodes import Episode, EpisodeKey, StoredEvent
from .domain.revisions import FactKey, FactWrite, StoredFact, evidence_json
from .domain.windows import quarter_of
from .incoming import Incoming


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
            [k[0] for k in keys],
            [k[1] for k in keys],
        )


# The episodes table's columns as written, each with the array type unnest takes it in. One list: the INSERT,
# the SELECT from unnest and the ON CONFLICT update are all generated from it.
_EPISODE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("provider_id", "text"),
    ("episode_id", "text"),
    ("subject_ref", "text"),
    ("unit_id", "text"),
    ("municipality_code", "text"),
    ("county_code", "text"),
    ("care_type", "text"),
    ("legal_basis", "text"),
    ("target_group", "text"),
    ("sex", "text"),
    ("birth_year", "int"),
    ("age_at_start", "int"),
    ("age_band", "text"),
    ("start_date", "date"),
    ("end_date", "date"),
    ("end_reason", "text"),
    ("destination", "text"),
    ("length_of_stay_days", "int"),
    ("discharge_year", "int"),
    ("discharge_quarter", "int"),
    ("data_errors", "text"),  # comma-joined: unnest cannot take an array of arrays
)
_EPISODE_KEY = ("provider_id", "episode_id")
_EPISODE_SELECT = {"data_errors": "coalesce(string_to_array(nullif(data_errors, ''), ','), '{}')"}


def _episode_row(ep: Episode) -> dict[str, Any]:
    p, d = ep.placement, ep.discharge
    return {
        "provider_id": ep.provider_id,
        "episode_id": ep.episode_id,
        "subject_ref": ep.subject_ref,
        "unit_id": p.unit_id if p else None,
        "municipality_code": p.municipality_code if p else None,
        "county_code": county_of(p.municipality_code) if p else None,
        "care_type": p.care_type if p else None,
        "legal_basis": p.legal_basis if p else None,
        "target_group": p.target_group if p else None,
        "sex": p.sex if p else None,
        "birth_year": p.birth_year if p else None,
        "age_at_start": p.age_at_start if p else None,
        "age_band": p.age_band if p else None,
        "start_date": p.start_date if p else None,
        "end_date": d.end_date if d else None,
        "end_reason": d.end_reason if d else None,
        "destination": d.destination if d else None,
        "length_of_stay_days": ep.length_of_stay_days,
        "discharge_year": d.end_date.year if d else None,
        "discharge_quarter": quarter_of(d.end_date) if d else None,
        "data_errors": ",".join(ep.data_errors),
    }


def _replace_all(names: Iterable[str]) -> str:
    return ", ".join(f"{name} = EXCLUDED.{name}" for name in names)


_FACT_COLUMNS = ", ".join(f.name for f in dataclasses.fields(StoredFact))  # a stored fact is its row


async def stored_facts(conn: asyncpg.Connection, keys: Sequence[EpisodeKey]) -> dict[FactKey, StoredFact]:
    rows = await conn.fetch(
        f"SELECT {_FACT_COLUMNS} FROM measures.facts WHERE (provider_id, episode_id) IN "
        "(SELECT * FROM unnest($1::text[], $2::text[]))",  # every episode of the loaded events: index only
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {((r["provider_id"], r["episode_id"]), r["measure_id"]): StoredFact(**dict(r)) for r in rows}


async def write_episodes(conn: asyncpg.Connection, episodes: list[Episode], now: datetime) -> None:
    if not episodes:
        return
    rows = [_episode_row(ep) for ep in episodes]
    names = [name for name, _ in _EPISODE_COLUMNS]
    arrays = ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(_EPISODE_COLUMNS, start=1))
    updated = [name for name in names if name not in _EPISODE_KEY] + ["updated_at"]
    # unnest(...) AS x(<the table's own column names>): each value lands in the column named for it
    await conn.execute(
        f"INSERT INTO measures.episodes AS e ({', '.join(names)}, updated_at) "
        f"SELECT {', '.join(_EPISODE_SELECT.get(n, n) for n in names)}, ${len(names) + 1} "
        f"FROM unnest({arrays}) AS x({', '.join(names)}) "
        f"ON CONFLICT (provider_id, episode_id) DO UPDATE SET {_replace_all(updated)}",
        *([row[name] for row in rows] for name in names),
        now,
    )


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
    if not rows:
        return
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "provider_id",
            "episode_id",
            "measure_id",
            "measure_version",
            "subject_ref",
            "status",
            "revision",
            "evidence",
            "closes_on",
            "unit_id",
            "municipality_code",
            "county_code",
            "care_type",
            "legal_basis",
            "target_group",
            "sex",
            "age_at_start",
            "age_band",
            "start_date",
            "end_date",
            "discharge_year",
            "discharge_quarter",
            "determined_at",
            "outcome_date",
        )
    }
    for write in rows:
        fact, ep = write.fact, write.episode
        assert fact is not None and ep is not None and ep.placement is not None and ep.discharge is not None
        p, d = ep.placement, ep.discharge
        values = {
            "provider_id": write.key[0],
            "episode_id": write.key[1],
            "measure_id": write.measure_id,
            "measure_version": fact.measure_version,
            "subject_ref": ep.subject_ref,
            "status": fact.status,
            "revision": write.revision,
            "evidence": evidence_json(fact),
            "closes_on": fact.closes_on,
            "unit_id": p.unit_id,
            "municipality_code": p.municipality_code,
            "county_code": county_of(p.municipality_code),
            "care_type": p.care_type,
            "legal_basis": p.legal_basis,
            "target_group": p.target_group,
            "sex": p.sex,
            "age_at_start": p.age_at_start,
            "age_band": p.age_band,
            "start_date": p.start_date,
            "end_date": d.end_date,
            "discharge_year": d.end_date.year,
            "discharge_quarter": quarter_of(d.end_date),
            "determined_at": now,
            "outcome_date": fact.outcome_date,
        }
        for name, value in values.items():
            columns[name].append(value)
    columns["evidence"] = json_texts(columns["evidence"])
    await conn.execute(
        f"INSERT INTO measures.facts ({', '.join(columns)}) SELECT * FROM unnest($1::text[], $2::text[], "
        "$3::text[], $4::int[], $5::text[], "
        "$6::text[], $7::int[], $8::text[]::jsonb[], $9::date[], $10::text[], $11::text[], $12::text[], $13::text[], "
        "$14::text[], $15::text[], $16::text[], $17::int[], $18::text[], $19::date[], $20::date[], $21::int[], "
        "$22::int[], $23::timestamptz[], $24::date[]) ON CONFLICT (provider_id, episode_id, measure_id) DO UPDATE SET "
        + _replace_all([name for name in columns if name not in ("provider_id", "episode_id", "measure_id")]),
        *columns.values(),
    )
