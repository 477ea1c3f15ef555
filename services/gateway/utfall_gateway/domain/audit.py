"""The audit trail's rules, pure: what an entry says, how entries chain, and how a chain is checked.

Each gateway instance writes one chain. An entry's hash is SHA-256 over the previous entry's hash and the entry's
canonical JSON, so changing, removing or reordering any entry breaks every link after it; `verify` finds the
first broken link. Retention removes a chain's oldest entries in whole segments (calendar months) and keeps an
anchor (the last removed entry's seq and hash), so what remains still verifies and a gap does not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

GENESIS = bytes(32)


@dataclass(frozen=True, slots=True)
class AuditFacts:
    """What one answer or act was: who, what, from where, and the outcome (before it is placed in a chain)."""

    at: datetime
    actor: str
    actor_name: str | None
    role: str
    scope: Mapping[str, Any]
    method: str
    route: str
    path: str
    contract_id: str | None
    provider_id: str | None
    period: str | None
    rows: int | None
    client: str | None
    outcome: int


FACT_FIELDS = tuple(f.name for f in fields(AuditFacts))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    chain: str
    seq: int
    facts: AuditFacts
    prev_hash: bytes
    hash: bytes

    def row(self) -> tuple[Any, ...]:
        f = self.facts
        return (
            self.chain,
            self.seq,
            f.at,
            f.actor,
            f.actor_name,
            f.role,
            dict(f.scope),
            f.method,
            f.route,
            f.path,
            f.contract_id,
            f.provider_id,
            f.period,
            f.rows,
            f.client,
            f.outcome,
            self.prev_hash,
            self.hash,
        )


COLUMNS = (
    "chain",
    "seq",
    "at",
    "actor",
    "actor_name",
    "role",
    "scope",
    "method",
    "route",
    "path",
    "contract_id",
    "provider_id",
    "period",
    "rows",
    "client",
    "outcome",
    "prev_hash",
    "hash",
)


def canonical(chain: str, seq: int, facts: AuditFacts) -> bytes:
    """The bytes an entry's hash covers: every field, in one fixed JSON form."""
    body: dict[str, Any] = {name: getattr(facts, name) for name in FACT_FIELDS}  # not asdict: no deep copy
    body["at"] = facts.at.astimezone(UTC).isoformat(timespec="microseconds")
    body["scope"] = dict(facts.scope)
    return json.dumps({"chain": chain, "seq": seq, **body}, sort_keys=True, separators=(",", ":")).encode()


def link(chain: str, seq: int, facts: AuditFacts, prev_hash: bytes) -> AuditEntry:
    digest = hashlib.sha256(prev_hash + canonical(chain, seq, facts)).digest()
    return AuditEntry(chain, seq, facts, prev_hash, digest)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a chain ends: the next entry gets `seq` + 1 and `hash` as its previous hash."""

    seq: int
    hash: bytes


def append(head: ChainHead, chain: str, batch: Iterable[AuditFacts]) -> tuple[list[AuditEntry], ChainHead]:
    """A batch of facts as chained entries after `head`, and the new head."""
    entries = []
    seq, prev = head.seq, head.hash
    for facts in batch:
        seq += 1
        entry = link(chain, seq, facts, prev)
        entries.append(entry)
        prev = entry.hash
    return entries, ChainHead(seq, prev)


@dataclass(frozen=True, slots=True)
class Break:
    """The first entry of a chain that does not verify, and why."""

    chain: str
    seq: int
    reason: str


def verify(chain: str, entries: Iterable[AuditEntry], anchor: ChainHead | None = None) -> Break | None:
    """Check one chain's entries in seq order from its start (or from the anchor retention left)."""
    expected = anchor or ChainHead(0, GENESIS)
    for entry in entries:
        if entry.seq != expected.seq + 1:
            return Break(
                chain, expected.seq + 1, f"entry {expected.seq + 1} is missing (next is {entry.seq})"
            )
        if entry.prev_hash != expected.hash:
            return Break(chain, entry.seq, "its previous hash is not the hash of the entry before it")
        recomputed = link(chain, entry.seq, entry.facts, entry.prev_hash).hash
        if recomputed != entry.hash:
            return Break(chain, entry.seq, "its content does not match its hash (the entry was changed)")
        expected = ChainHead(entry.seq, entry.hash)
    return None


def month_start(at: datetime) -> datetime:
    """The segment an entry belongs to begins at the start of its calendar month (UTC)."""
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def retention_cutoff(now: datetime, months: int) -> datetime:
    """Entries before this instant are past retention: whole months, `months` back from the current one."""
    start = month_start(now)
    total = start.year * 12 + (start.month - 1) - months
    return datetime(total // 12, total % 12 + 1, 1, tzinfo=UTC)
