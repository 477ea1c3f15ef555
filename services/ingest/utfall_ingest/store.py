"""Ingest's Postgres adapter: load what a batch needs to be decided, and write the decision."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg

from utfall_platform.db import json_texts

from .domain.admission import Decision, Episode, EpisodeKey, EventKey, KnownEvent
from .domain.validation import CheckedEvent, Rejection

SCHEMA = "ingest"


async def lock_sources(conn: asyncpg.Connection, sources: Iterable[str]) -> None:
    # One batch at a time per provider: dedup and episode checks then never race (providers don't share).
    for source in sorted(set(sources)):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", source)


async def load_context(
    conn: asyncpg.Connection, items: list[CheckedEvent]
) -> tuple[dict[EventKey, KnownEvent], dict[EpisodeKey, Episode], dict[EpisodeKey, list[CheckedEvent]]]:
    ids = {(e.source, e.event_id) for e in items}
    ids |= {(e.source, e.fields["retracted_event_id"]) for e in items if "retracted_event_id" in e.fields}
    rows = await conn.fetch(
        "SELECT source, event_id, type, episode_id, status, retracted_by, followup_month "
        "FROM ingest.received_events WHERE (source, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [s for s, _ in ids],
        [i for _, i in ids],
    )
    known = {
        (r["source"], r["event_id"]): KnownEvent(
            r["source"],
            r["event_id"],
            r["type"],
            r["episode_id"],
            r["status"],
            r["retracted_by"] is not None,
            r["followup_month"],
        )
        for r in rows
    }
    episode_keys = {(e.source, e.episode_id) for e in items if e.episode_id}
    episode_keys |= {(k.source, k.episode_id) for k in known.values()}
    rows = await conn.fetch(
        "SELECT * FROM ingest.episodes WHERE (source, episode_id) IN "
        "(SELECT * FROM unnest($1::text[], $2::text[])) FOR UPDATE",
        [s for s, _ in episode_keys],
        [e for _, e in episode_keys],
    )
    episodes = {
        (r["source"], r["episode_id"]): Episode(
            r["source"],
            r["episode_id"],
            r["subject_ref"],
            r["started_event_id"],
            r["start_date"],
            r["ended_event_id"],
            r["end_date"],
            tuple((int(m), str(eid)) for m, eid in r["followups"]),
        )
        for r in rows
    }
    held: dict[EpisodeKey, list[CheckedEvent]] = {}
    waiting = [k for k in episode_keys if k not in episodes or episodes[k].subject_ref is None]
    if waiting:
        rows = await conn.fetch(
            "SELECT * FROM ingest.held_events WHERE (source, episode_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY held_at, event_id",
            [s for s, _ in waiting],
            [e for _, e in waiting],
        )
        for r in rows:
            held.setdefault((r["source"], r["episode_id"]), []).append(_held_event(r))
    return known, episodes, held


def _held_event(row: asyncpg.Record) -> CheckedEvent:
    from datetime import date

    fields: dict[str, Any] = dict(row["fields"])
    for name in ("start_date", "end_date", "assessed_on"):
        if isinstance(fields.get(name), str):
            fields[name] = date.fromisoformat(fields[name])
    return CheckedEvent(
        row["event_id"],
        row["source"],
        row["source"].removeprefix("provider/"),
        row["type"],
        row["time"],
        fields.get("episode_id"),
        fields,
    )


async def save_decision(conn: asyncpg.Connection, decision: Decision, *, channel: str, now: datetime) -> None:
    if decision.new_events:
        await conn.execute(
            "INSERT INTO ingest.received_events (source, event_id, type, episode_id, status, channel, "
            "followup_month, received_at) SELECT u.*, $8::timestamptz FROM unnest($1::text[], $2::text[], "
            "$3::text[], $4::text[], $5::text[], $6::text[], $7::int[]) AS u",
            [e.source for e in decision.new_events],
            [e.event_id for e in decision.new_events],
            [e.type for e in decision.new_events],
            [e.episode_id for e in decision.new_events],
            [e.status for e in decision.new_events],
            [channel] * len(decision.new_events),
            [e.followup_month for e in decision.new_events],
            now,
        )
    if decision.retracted:
        await conn.execute(
            "UPDATE ingest.received_events AS r SET retracted_by = u.by FROM unnest($1::text[], $2::text[], "
            "$3::text[]) AS u(s, i, by) WHERE r.source = u.s AND r.event_id = u.i",
            [k[0] for k, _ in decision.retracted],
            [k[1] for k, _ in decision.retracted],
            [by for _, by in decision.retracted],
        )
    if decision.released:
        await conn.execute(
            "UPDATE ingest.received_events AS r SET status = 'accepted' FROM unnest($1::text[], $2::text[]) "
            "AS u(s, i) WHERE r.source = u.s AND r.event_id = u.i",
            [s for s, _ in decision.released],
            [i for _, i in decision.released],
        )
        await conn.execute(
            "DELETE FROM ingest.held_events WHERE (source, event_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))",
            [s for s, _ in decision.released],
            [i for _, i in decision.released],
        )
    if decision.episodes:
        eps = list(decision.episodes.values())
        await conn.execute(
            "INSERT INTO ingest.episodes AS e (source, episode_id, subject_ref, started_event_id, start_date, "
            "ended_event_id, end_date, followups) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], "
            "$4::text[], $5::date[], $6::text[], $7::date[], $8::text[]::jsonb[]) "
            "ON CONFLICT (source, episode_id) DO UPDATE SET subject_ref = EXCLUDED.subject_ref, "
            "started_event_id = EXCLUDED.started_event_id, start_date = EXCLUDED.start_date, "
            "ended_event_id = EXCLUDED.ended_event_id, end_date = EXCLUDED.end_date, "
            "followups = EXCLUDED.followups",
            [e.source for e in eps],
            [e.episode_id for e in eps],
            [e.subject_ref for e in eps],
            [e.started_event_id for e in eps],
            [e.start_date for e in eps],
            [e.ended_event_id for e in eps],
            [e.end_date for e in eps],
            json_texts([[list(f) for f in e.followups] for e in eps]),
        )
    if decision.held:
        await conn.execute(
            "INSERT INTO ingest.held_events (source, event_id, episode_id, type, time, fields, held_at) "
            "SELECT u.*, $7::timestamptz FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
            "$5::timestamptz[], $6::text[]::jsonb[]) AS u",
            [e.source for e in decision.held],
            [e.event_id for e in decision.held],
            [_episode_of(decision, e) for e in decision.held],
            [e.type for e in decision.held],
            [e.time for e in decision.held],
            json_texts([e.fields for e in decision.held]),
            now,
        )


def _episode_of(decision: Decision, event: CheckedEvent) -> str:
    for known in decision.new_events:
        if known.source == event.source and known.event_id == event.event_id:
            return known.episode_id
    raise AssertionError("held event without a known episode")


async def save_rejections(
    conn: asyncpg.Connection, rejections: list[Rejection], *, channel: str, now: datetime
) -> None:
    keyed = [r for r in rejections if r.event_id and r.source]
    if not keyed:
        return
    latest = {(r.source, r.event_id): r for r in keyed}  # one row per id even if a batch repeats it
    await conn.execute(
        "INSERT INTO ingest.rejections AS j (source, event_id, type, channel, reasons, rejected_at) "
        "SELECT u.*, $6::timestamptz FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]::jsonb[]) AS u "
        "ON CONFLICT (source, event_id) DO UPDATE SET type = EXCLUDED.type, channel = EXCLUDED.channel, "
        "reasons = EXCLUDED.reasons, rejected_at = EXCLUDED.rejected_at",
        [k[0] for k in latest],
        [k[1] for k in latest],
        [r.type for r in latest.values()],
        [channel] * len(latest),
        json_texts([[reason.as_dict() for reason in r.reasons] for r in latest.values()]),
        now,
    )


async def receipt(
    conn: asyncpg.Connection | asyncpg.Pool, source: str, event_id: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM ingest_read.event_receipts WHERE source = $1 AND event_id = $2", source, event_id
    )
    return row
