"""The audit trail in PostgreSQL: reading it (operators), checking its chains, and removing what is past
retention in whole segments. The writer is `audit_trail.AuditTrail`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from .domain.audit import COLUMNS, AuditEntry, AuditFacts, Break, ChainHead, verify

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM gateway.audit_entries"


def entry_of(row: asyncpg.Record) -> AuditEntry:
    facts = AuditFacts(
        at=row["at"],
        actor=row["actor"],
        actor_name=row["actor_name"],
        role=row["role"],
        scope=row["scope"],
        method=row["method"],
        route=row["route"],
        path=row["path"],
        contract_id=row["contract_id"],
        provider_id=row["provider_id"],
        period=row["period"],
        rows=row["rows"],
        client=row["client"],
        outcome=row["outcome"],
    )
    return AuditEntry(row["chain"], row["seq"], facts, bytes(row["prev_hash"]), bytes(row["hash"]))


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    provider_id: str | None = None
    contract_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _where(f: AuditFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("actor", f.actor),
        ("provider_id", f.provider_id),
        ("contract_id", f.contract_id),
    ):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if f.since is not None:
        args.append(f.since)
        clauses.append(f"at >= ${len(args)}")
    if f.until is not None:
        args.append(f.until)
        clauses.append(f"at < ${len(args)}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


async def entries(
    pool: asyncpg.Pool, f: AuditFilter, *, limit: int, after: tuple[datetime, str, int] | None
) -> list[AuditEntry]:
    """A page of entries, oldest first, after (at, chain, seq)."""
    where, args = _where(f)
    if after is not None:
        args.extend(after)
        n = len(args)
        where += (" AND " if where else " WHERE ") + f"(at, chain, seq) > (${n - 2}, ${n - 1}, ${n})"
    args.append(limit)
    rows = await pool.fetch(f"{_SELECT}{where} ORDER BY at, chain, seq LIMIT ${len(args)}", *args)
    return [entry_of(r) for r in rows]


async def stream(pool: asyncpg.Pool, f: AuditFilter, batch: int = 2000) -> AsyncIterator[AuditEntry]:
    """Every entry the filter matches, oldest first, read a batch at a time (the export)."""
    after: tuple[datetime, str, int] | None = None
    while True:
        page = await entries(pool, f, limit=batch, after=after)
        for entry in page:
            yield entry
        if len(page) < batch:
            return
        last = page[-1]
        after = (last.facts.at, last.chain, last.seq)


async def verify_all(conn: asyncpg.Connection, batch: int = 5000) -> tuple[int, list[Break]]:
    """Every chain checked from its anchor: (entries checked, the first break of each broken chain)."""
    anchors = {
        r["chain"]: ChainHead(r["through_seq"], bytes(r["through_hash"]))
        for r in await conn.fetch("SELECT chain, through_seq, through_hash FROM gateway.audit_anchors")
    }
    chains = [
        r["chain"] for r in await conn.fetch("SELECT DISTINCT chain FROM gateway.audit_entries ORDER BY 1")
    ]
    checked, breaks = 0, []
    for chain in chains:
        head = anchors.get(chain)
        last_seq = head.seq if head else 0
        broken: Break | None = None
        while broken is None:
            rows = await conn.fetch(
                f"{_SELECT} WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3", chain, last_seq, batch
            )
            if not rows:
                break
            page = [entry_of(r) for r in rows]
            broken = verify(chain, page, head)
            checked += len(page)
            head = ChainHead(page[-1].seq, page[-1].hash)
            last_seq = page[-1].seq
        if broken is not None:
            breaks.append(broken)
    return checked, breaks


async def prune(conn: asyncpg.Connection, before: datetime) -> int:
    """Remove every chain's entries older than `before` (a segment boundary), keeping an anchor per chain so the
    rest still verifies. Needs the schema owner's role (the gateway's may not delete)."""
    removed = 0
    async with conn.transaction():
        for row in await conn.fetch(
            "SELECT chain, max(seq) AS through FROM gateway.audit_entries WHERE at < $1 GROUP BY chain",
            before,
        ):
            # a chain's seq order is its time order (one writer per chain), so this is a prefix of it
            last = await conn.fetchrow(
                "SELECT seq, hash FROM gateway.audit_entries WHERE chain = $1 AND seq = $2",
                row["chain"],
                row["through"],
            )
            await conn.execute(
                "INSERT INTO gateway.audit_anchors (chain, through_seq, through_hash, removed_before)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (chain) DO UPDATE SET through_seq = EXCLUDED.through_seq,"
                " through_hash = EXCLUDED.through_hash, removed_before = EXCLUDED.removed_before",
                row["chain"],
                last["seq"],
                last["hash"],
                before,
            )
            status = await conn.execute(
                "DELETE FROM gateway.audit_entries WHERE chain = $1 AND seq <= $2", row["chain"], last["seq"]
            )
            removed += int(status.split()[-1])
    return removed
