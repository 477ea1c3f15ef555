"""Measures' Postgres adapter for registers: the register rows that count, the coverage claims, and the
verified facts. The rules that decide them live in `domain/verification.py`."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from utfall_events.registers import RegisterCoverageV1, RegisterRecordV1
from utfall_platform.bulk import EVERY_OTHER_COLUMN, BulkInsert, key_arrays

from .domain.episodes import Episode, EpisodeKey
from .domain.verification import CoverageClaim, RegisterRecord, VerifiedFact
from .store import DISCHARGE_TYPES, PLACEMENT_TYPES, discharge_columns, placement_columns

_UPSERT_RECORDS = BulkInsert(
    "measures.register_records",
    (
        ("register_id", "text"),
        ("record_id", "text"),
        ("extract_id", "text"),
        ("as_of", "date"),
        ("subject_ref", "text"),
        ("kind", "text"),
        ("body", "jsonb"),
        ("received_at", "timestamptz"),
    ),
    conflict=("register_id", "record_id"),
    update=EVERY_OTHER_COLUMN,
    # the latest extract's version counts, whichever arrived first
    update_where="(EXCLUDED.as_of, EXCLUDED.extract_id) > (t.as_of, t.extract_id)",
)


async def store_records(conn: asyncpg.Connection, records: Sequence[RegisterRecordV1]) -> set[str]:
    """Keep each row's version that counts; the subjects whose rows changed (a correction that moves a row to
    another person changes both)."""
    if not records:
        return set()
    keys = [(r.register_id, r.record_id) for r in records]
    before = {
        (r["register_id"], r["record_id"]): r["subject_ref"]
        for r in await conn.fetch(
            "SELECT register_id, record_id, subject_ref FROM measures.register_records "
            "WHERE (register_id, record_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
            *key_arrays(keys),
        )
    }
    best: dict[tuple[str, str], RegisterRecordV1] = {}
    for r in records:
        k = (r.register_id, r.record_id)
        if k not in best or r.precedence > best[k].precedence:
            best[k] = r
    await _UPSERT_RECORDS.write(
        conn,
        (
            {
                "register_id": r.register_id,
                "record_id": r.record_id,
                "extract_id": r.extract_id,
                "as_of": r.as_of,
                "subject_ref": r.subject_ref,
                "kind": r.kind,
                "body": getattr(r, r.kind).model_dump(mode="json"),
                "received_at": r.received_at,
            }
            for r in best.values()
        ),
    )
    return {r.subject_ref for r in best.values()} | {before[k] for k in best if k in before}


async def store_coverage(conn: asyncpg.Connection, claims: Sequence[RegisterCoverageV1]) -> None:
    rows = [
        (c.register_id, c.extract_id, m, kind, c.covers_from, c.covers_through)
        for c in claims
        for m in c.municipalities
        for kind in c.kinds
    ]
    if rows:
        await conn.executemany(
            "INSERT INTO measures.register_coverage (register_id, extract_id, municipality_code, kind, covers_from, "
            "covers_through) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            rows,
        )


async def subjects_covered_by(
    conn: asyncpg.Connection, claims: Sequence[RegisterCoverageV1], *, longest_window_months: int
) -> list[str]:
    """Subjects with an episode a claim can verify: placed by a covered municipality, discharged in time for
    a window to reach into the covered span."""
    subjects: set[str] = set()
    for c in claims:
        rows = await conn.fetch(
            "SELECT DISTINCT subject_ref FROM measures.episodes WHERE municipality_code = ANY($1::text[]) "
            "AND end_date BETWEEN $2::date - make_interval(months => $4) AND $3",
            list(c.municipalities),
            c.covers_from,
            c.covers_through,
            longest_window_months,
        )
        subjects |= {r["subject_ref"] for r in rows}
    return sorted(subjects)


async def records_of(conn: asyncpg.Connection, subjects: Collection[str]) -> dict[str, list[RegisterRecord]]:
    rows = await conn.fetch(
        "SELECT register_id, record_id, extract_id, as_of, subject_ref, kind, body FROM measures.register_records "
        "WHERE subject_ref = ANY($1::text[])",
        list(subjects),
    )
    out: dict[str, list[RegisterRecord]] = {}
    for r in rows:
        out.setdefault(r["subject_ref"], []).append(RegisterRecord(*r))
    return out


async def coverage_of(conn: asyncpg.Connection, municipalities: Collection[str]) -> list[CoverageClaim]:
    rows = await conn.fetch(
        "SELECT register_id, extract_id, municipality_code, kind, covers_from, covers_through "
        "FROM measures.register_coverage WHERE municipality_code = ANY($1::text[])",
        list(municipalities),
    )
    return [CoverageClaim(*r) for r in rows]


_UPSERT_VERIFIED = BulkInsert(
    "measures.verified_facts",
    (
        ("provider_id", "text"),
        ("episode_id", "text"),
        ("measure_id", "text"),
        ("subject_ref", "text"),
        ("status", "text"),
        ("reported_status", "text"),
        ("outcome_date", "date"),
        ("evidence", "jsonb"),
        *PLACEMENT_TYPES,
        *DISCHARGE_TYPES,
    ),
    constants=(("determined_at", "timestamptz"),),
    conflict=("provider_id", "episode_id", "measure_id"),
    update=EVERY_OTHER_COLUMN,
)

_VERIFIED_COLUMNS = ", ".join(name for name, _ in _UPSERT_VERIFIED.columns)


async def write_verified(
    conn: asyncpg.Connection,
    keys: Iterable[EpisodeKey],
    facts: Mapping[tuple[EpisodeKey, str], VerifiedFact],
    episodes: Mapping[EpisodeKey, Episode],
    now: datetime,
) -> int:
    """Bring the verified facts of these episodes to `facts`: write what changed, delete what is gone."""
    keys = list(keys)
    if not keys:
        return 0
    stored = {
        ((r["provider_id"], r["episode_id"]), r["measure_id"]): dict(r)
        for r in await conn.fetch(
            f"SELECT {_VERIFIED_COLUMNS} FROM measures.verified_facts WHERE (provider_id, episode_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))",
            *key_arrays(keys),
        )
    }
    gone = [k for k in stored if k not in facts]
    if gone:
        await conn.execute(
            "DELETE FROM measures.verified_facts WHERE (provider_id, episode_id, measure_id) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))",
            [k[0][0] for k in gone],
            [k[0][1] for k in gone],
            [k[1] for k in gone],
        )
    rows = (_verified_row(k, f, episodes[k[0]]) for k, f in facts.items())
    changed = [
        row for row in rows if stored.get(((row["provider_id"], row["episode_id"]), row["measure_id"])) != row
    ]
    if changed:
        await _UPSERT_VERIFIED.write(conn, changed, now)
    return len(changed) + len(gone)


def _verified_row(key: tuple[EpisodeKey, str], fact: VerifiedFact, ep: Episode) -> dict[str, Any]:
    return {
        "provider_id": key[0][0],
        "episode_id": key[0][1],
        "measure_id": key[1],
        "subject_ref": ep.subject_ref,
        "status": fact.status,
        "reported_status": fact.reported_status,
        "outcome_date": fact.outcome_date,
        "evidence": [f"{e.source}#{e.id}" for e in fact.evidence],
        **placement_columns(ep),
        **discharge_columns(ep),
    }
