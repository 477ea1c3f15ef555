"""Ingest's Postgres adapter: load what a batch needs to be decided, and write the decision."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import asyncpg

from utfall_events.vocabulary import EVENT_RETRACTED
from utfall_platform import locks
from utfall_platform.db import json_texts

from .domain.admission import Candidate, Decision, Episode, EpisodeKey, EventKey, HeldEvent, KnownEvent
from .domain.validation import CheckedEvent, Rejection

SCHEMA = "ingest"


async def lock_sources(conn: asyncpg.Connection, sources: Iterable[str]) -> None:
    # One batch at a time per provider: dedup and episode checks then never race (providers don't share).
    for source in sorted(set(sources)):
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))", source, locks.INGEST_SOURCE
        )


async def load_context(
    conn: asyncpg.Connection, items: list[CheckedEvent]
) -> tuple[
    dict[EventKey, KnownEvent],
    dict[EpisodeKey, Episode],
    dict[EpisodeKey, list[HeldEvent]],
    dict[EventKey, list[HeldEvent]],
]:
    """What deciding this batch needs: the recorded events it names, the episodes they touch (row-locked),
    the events held for those episodes and the retractions waiting for the batch's events."""
    batch_ids = {(e.source, e.event_id) for e in items}
    awaiting: dict[EventKey, list[HeldEvent]] = {}
    for row in await conn.fetch(
        "SELECT * FROM ingest.held_events WHERE awaits_event_id IS NOT NULL AND (source, awaits_event_id) IN "
        "(SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY held_at, event_id",
        *_unnest(batch_ids),
    ):
        awaiting.setdefault((row["source"], row["awaits_event_id"]), []).append(_held_event(row))
    ids = batch_ids | {
        (e.source, str(e.fields["retracted_event_id"])) for e in items if e.type == EVENT_RETRACTED
    }
    ids |= {h.key for waiting in awaiting.values() for h in waiting}
    known = await _known(conn, ids)
    episode_keys = {(e.source, e.episode_id) for e in items if e.episode_id}
    episode_keys |= {(k.source, k.episode_id) for k in known.values() if k.episode_id is not None}
    rows = await conn.fetch(
        "SELECT source, episode_id, subject_ref, starts, ends FROM ingest.episodes WHERE (source, episode_id) IN "
        "(SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY source, episode_id FOR UPDATE",
        *_unnest(episode_keys),
    )
    episodes = {
        (r["source"], r["episode_id"]): Episode(
            r["source"],
            r["episode_id"],
            r["subject_ref"],
            tuple(_candidate(c) for c in r["starts"]),
            tuple(_candidate(c) for c in r["ends"]),
        )
        for r in rows
    }
    held: dict[EpisodeKey, list[HeldEvent]] = {}
    waiting = [k for k in episode_keys if k not in episodes or episodes[k].subject_ref is None]
    if waiting:
        for row in await conn.fetch(
            "SELECT * FROM ingest.held_events WHERE (source, episode_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[])) ORDER BY held_at, event_id",
            *_unnest(waiting),
        ):
            held.setdefault((row["source"], row["episode_id"]), []).append(_held_event(row))
        unknown = {h.key for v in held.values() for h in v} - set(known)
        if unknown:
            known.update(await _known(conn, unknown))
    return known, episodes, held, awaiting


def _unnest(keys: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    ordered = sorted(keys)
    return [k[0] for k in ordered], [k[1] for k in ordered]


async def _known(conn: asyncpg.Connection, ids: set[EventKey]) -> dict[EventKey, KnownEvent]:
    rows = await conn.fetch(
        "SELECT source, event_id, type, episode_id, status, retracted_by, followup_month "
        "FROM ingest.received_events WHERE (source, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        *_unnest(ids),
    )
    return {
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


def _candidate(value: dict[str, Any]) -> Candidate:
    return Candidate(
        str(value["event_id"]),
        datetime.fromisoformat(value["time"]),
        date.fromisoformat(value["day"]),
        value.get("subject_ref"),
    )


def _candidate_json(candidate: Candidate) -> dict[str, Any]:
    out: dict[str, Any] = {
        "event_id": candidate.event_id,
        "time": candidate.time.isoformat(),
        "day": candidate.day.isoformat(),
    }
    if candidate.subject_ref is not None:
        out["subject_ref"] = candidate.subject_ref
    return out


def _held_event(row: asyncpg.Record) -> HeldEvent:
    fields: dict[str, Any] = dict(row["fields"])
    for name in ("start_date", "end_date", "assessed_on"):
        if isinstance(fields.get(name), str):
            fields[name] = date.fromisoformat(fields[name])
    event = CheckedEvent(
        row["event_id"],
        row["source"],
        row["source"].removeprefix("provider/"),
        row["type"],
        row["time"],
        fields.get("episode_id"),
        fields,
    )
    return HeldEvent(event, row["episode_id"], row["awaits_event_id"], row["held_at"])


async def save_decision(conn: asyncpg.Connection, decision: Decision, *, channel: str, now: datetime) -> None:
    if decision.forgotten or decision.late_rejections:
        gone = decision.forgotten | {(r.source or "", r.event_id or "") for r in decision.late_rejections}
        await conn.execute(
            "DELETE FROM ingest.received_events WHERE (source, event_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))",
            *_unnest(gone),
        )
    records = [*decision.new_events.values(), *decision.changed_events.values()]
    if records:
        # New rows are inserted; rows already known (a held event released) change status and episode only.
        await conn.execute(
            "INSERT INTO ingest.received_events AS r (source, event_id, type, episode_id, status, channel, "
            "followup_month, received_at) SELECT u.*, $8::timestamptz FROM unnest($1::text[], $2::text[], "
            "$3::text[], $4::text[], $5::text[], $6::text[], $7::int[]) AS u "
            "ON CONFLICT (source, event_id) DO UPDATE SET status = EXCLUDED.status, episode_id = EXCLUDED.episode_id",
            [e.source for e in records],
            [e.event_id for e in records],
            [e.type for e in records],
            [e.episode_id for e in records],
            [e.status for e in records],
            [channel] * len(records),
            [e.followup_month for e in records],
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
    if decision.unhold:
        await conn.execute(
            "DELETE FROM ingest.held_events WHERE (source, event_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))",
            *_unnest(decision.unhold),
        )
    if decision.episodes:
        eps = list(decision.episodes.values())
        await conn.execute(
            "INSERT INTO ingest.episodes AS e (source, episode_id, subject_ref, starts, ends) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]::jsonb[], $5::text[]::jsonb[]) "
            "ON CONFLICT (source, episode_id) DO UPDATE SET subject_ref = EXCLUDED.subject_ref, "
            "starts = EXCLUDED.starts, ends = EXCLUDED.ends",
            [e.source for e in eps],
            [e.episode_id for e in eps],
            [e.subject_ref for e in eps],
            json_texts([[_candidate_json(c) for c in e.starts] for e in eps]),
            json_texts([[_candidate_json(c) for c in e.ends] for e in eps]),
        )
    if decision.hold:
        held = list(decision.hold.values())
        await conn.execute(
            "INSERT INTO ingest.held_events (source, event_id, episode_id, awaits_event_id, type, time, fields, "
            "held_at) SELECT u.s, u.i, u.e, u.a, u.t, u.tm, u.f, coalesce(u.h, $9::timestamptz) FROM "
            "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], "
            "$7::text[]::jsonb[], $8::timestamptz[]) AS u(s, i, e, a, t, tm, f, h)",
            [h.event.source for h in held],
            [h.event.event_id for h in held],
            [h.episode_id for h in held],
            [h.awaits_event_id for h in held],
            [h.event.type for h in held],
            [h.event.time for h in held],
            json_texts([h.event.fields for h in held]),
            [h.held_at for h in held],
            now,
        )


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
