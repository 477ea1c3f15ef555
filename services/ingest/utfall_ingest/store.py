"""Ingest's Postgres adapter: load what a batch needs to be decided, and write the decision."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import asyncpg

from utfall_events.vocabulary import EVENT_RETRACTED
from utfall_platform import locks
from utfall_platform.bulk import EVERY_OTHER_COLUMN, BulkInsert, key_arrays

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
        *key_arrays(batch_ids),
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
        *key_arrays(episode_keys),
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
            *key_arrays(waiting),
        ):
            held.setdefault((row["source"], row["episode_id"]), []).append(_held_event(row))
        unknown = {h.key for v in held.values() for h in v} - set(known)
        if unknown:
            known.update(await _known(conn, unknown))
    return known, episodes, held, awaiting


async def _known(conn: asyncpg.Connection, ids: set[EventKey]) -> dict[EventKey, KnownEvent]:
    rows = await conn.fetch(
        "SELECT source, event_id, type, episode_id, status, retracted_by, followup_month "
        "FROM ingest.received_events WHERE (source, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        *key_arrays(ids),
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


_UPSERT_RECEIVED = BulkInsert(
    "ingest.received_events",
    (
        ("source", "text"),
        ("event_id", "text"),
        ("type", "text"),
        ("episode_id", "text"),
        ("status", "text"),
        ("followup_month", "int"),
    ),
    constants=(("channel", "text"), ("received_at", "timestamptz")),
    conflict=("source", "event_id"),
    update=("status", "episode_id"),  # a held event released: the rest of what was received stays
)
_UPSERT_EPISODES = BulkInsert(
    "ingest.episodes",
    (
        ("source", "text"),
        ("episode_id", "text"),
        ("subject_ref", "text"),
        ("starts", "jsonb"),
        ("ends", "jsonb"),
    ),
    conflict=("source", "episode_id"),
    update=EVERY_OTHER_COLUMN,
)
_INSERT_HELD = BulkInsert(
    "ingest.held_events",
    (
        ("source", "text"),
        ("event_id", "text"),
        ("episode_id", "text"),
        ("awaits_event_id", "text"),
        ("type", "text"),
        ("time", "timestamptz"),
        ("fields", "jsonb"),
        ("held_at", "timestamptz"),
    ),
)
_UPSERT_REJECTIONS = BulkInsert(
    "ingest.rejections",
    (("source", "text"), ("event_id", "text"), ("type", "text"), ("reasons", "jsonb")),
    constants=(("channel", "text"), ("rejected_at", "timestamptz")),
    conflict=("source", "event_id"),
    update=EVERY_OTHER_COLUMN,
)


async def save_decision(conn: asyncpg.Connection, decision: Decision, *, channel: str, now: datetime) -> None:
    if decision.forgotten or decision.late_rejections:
        gone = decision.forgotten | {(r.source or "", r.event_id or "") for r in decision.late_rejections}
        await conn.execute(
            "DELETE FROM ingest.received_events WHERE (source, event_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))",
            *key_arrays(gone),
        )
    records = [*decision.new_events.values(), *decision.changed_events.values()]
    if records:
        # New rows are inserted; rows already known (a held event released) change status and episode only.
        await _UPSERT_RECEIVED.write(
            conn,
            (
                {
                    "source": e.source,
                    "event_id": e.event_id,
                    "type": e.type,
                    "episode_id": e.episode_id,
                    "status": e.status,
                    "followup_month": e.followup_month,
                }
                for e in records
            ),
            channel,
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
            *key_arrays(decision.unhold),
        )
    if decision.episodes:
        eps = list(decision.episodes.values())
        await _UPSERT_EPISODES.write(
            conn,
            (
                {
                    "source": e.source,
                    "episode_id": e.episode_id,
                    "subject_ref": e.subject_ref,
                    "starts": [_candidate_json(c) for c in e.starts],
                    "ends": [_candidate_json(c) for c in e.ends],
                }
                for e in eps
            ),
        )
    if decision.hold:
        held = list(decision.hold.values())
        await _INSERT_HELD.write(
            conn,
            (
                {
                    "source": h.event.source,
                    "event_id": h.event.event_id,
                    "episode_id": h.episode_id,
                    "awaits_event_id": h.awaits_event_id,
                    "type": h.event.type,
                    "time": h.event.time,
                    "fields": h.event.fields,
                    "held_at": h.held_at or now,  # held before: keeps its time
                }
                for h in held
            ),
        )


async def save_rejections(
    conn: asyncpg.Connection, rejections: list[Rejection], *, channel: str, now: datetime
) -> None:
    keyed = [r for r in rejections if r.event_id and r.source]
    if not keyed:
        return
    latest = {(r.source, r.event_id): r for r in keyed}  # one row per id even if a batch repeats it
    await _UPSERT_REJECTIONS.write(
        conn,
        (
            {
                "source": source,
                "event_id": event_id,
                "type": r.type,
                "reasons": [reason.as_dict() for reason in r.reasons],
            }
            for (source, event_id), r in latest.items()
        ),
        channel,
        now,
    )


async def receipt(
    conn: asyncpg.Connection | asyncpg.Pool, source: str, event_id: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM ingest_read.event_receipts WHERE source = $1 AND event_id = $2", source, event_id
    )
    return row


async def expire_held(
    conn: asyncpg.Connection, before: datetime
) -> list[tuple[str, str, str, str | None, str]]:
    """Held events held since before `before`, and their receipts, gone: (source, event id, type, the event id
    it awaited, the channel it came by) of each."""
    rows = await conn.fetch(
        "DELETE FROM ingest.held_events WHERE held_at < $1 RETURNING source, event_id, type, awaits_event_id",
        before,
    )
    if not rows:
        return []
    received = await conn.fetch(
        "DELETE FROM ingest.received_events WHERE (source, event_id) IN "
        "(SELECT * FROM unnest($1::text[], $2::text[])) RETURNING source, event_id, channel",
        [r["source"] for r in rows],
        [r["event_id"] for r in rows],
    )
    channels = {(r["source"], r["event_id"]): r["channel"] for r in received}
    return [
        (
            r["source"],
            r["event_id"],
            r["type"],
            r["awaits_event_id"],
            channels.get((r["source"], r["event_id"]), "http"),
        )
        for r in rows
    ]
