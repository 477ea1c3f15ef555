"""Contract versions: every version kept; a definition identical to the current one adds nothing."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import asyncpg
import orjson
import yaml

from utfall_events.contracts import ContractDefinitionV1
from utfall_platform import locks


def definition_hash(definition: ContractDefinitionV1) -> str:
    document = definition.model_dump(mode="json")
    for milestone in document["milestones"]:
        if milestone.get("validation") == "reported":  # the default: a definition stored before it had none
            del milestone["validation"]
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def current_contracts(
    conn: asyncpg.Connection | asyncpg.Pool,
) -> dict[str, tuple[int, ContractDefinitionV1]]:
    rows = await conn.fetch(
        "SELECT DISTINCT ON (contract_id) contract_id, version, definition FROM contracts.contract_versions "
        "ORDER BY contract_id, version DESC"
    )
    return {
        r["contract_id"]: (r["version"], ContractDefinitionV1.model_validate(r["definition"])) for r in rows
    }


async def contracts_in_force(conn: asyncpg.Connection) -> dict[str, tuple[int, ContractDefinitionV1]]:
    """The current contracts, read under the definitions lock shared until the transaction ends.

    A placement (or a fact) and a new contract version arrive on two consumers, each in its own transaction.
    Unordered, each could miss the other's uncommitted rows: the placement's reconciliation would not know the
    contract, and the version's would not see the placement, so nobody enrols it. The lock orders them: a
    version waits for the reconciliations under way and reads their rows; a reconciliation that waited for a
    version reads it (each statement of a READ COMMITTED transaction sees what committed before it began).
    """
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", locks.CONTRACT_DEFINITIONS)
    return await current_contracts(conn)


async def lock_definitions(conn: asyncpg.Connection) -> None:
    """The definitions lock, exclusively until the transaction ends: taken before any contract's row lock, so
    that it cannot close a cycle with a reconciliation (which holds it shared and then waits for row locks)."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", locks.CONTRACT_DEFINITIONS)


async def save_version(
    conn: asyncpg.Connection, definition: ContractDefinitionV1, *, origin: str, now: datetime
) -> int | None:
    """Store a new version if the definition changed; returns the new version number or None. Holds the
    definitions lock exclusively until the transaction ends (see `contracts_in_force`)."""
    await lock_definitions(conn)
    digest = definition_hash(definition)
    row = await conn.fetchrow(
        "SELECT version, definition_sha256 FROM contracts.contract_versions WHERE contract_id = $1 "
        "ORDER BY version DESC LIMIT 1",
        definition.contract_id,
    )
    if row is not None and row["definition_sha256"] == digest:
        return None
    version = 1 if row is None else row["version"] + 1
    await conn.execute(
        "INSERT INTO contracts.contract_versions (contract_id, version, definition, definition_sha256, origin, "
        "created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        definition.contract_id,
        version,
        definition.model_dump(mode="json"),
        digest,
        origin,
        now,
    )
    await conn.execute(
        "INSERT INTO contracts.contract_totals (contract_id) VALUES ($1) ON CONFLICT DO NOTHING",
        definition.contract_id,
    )
    return version


async def cap_use(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Each contract's total cap and what is paid against it (for the gauges)."""
    return list(
        await pool.fetch("SELECT contract_id, total_cap_ore, paid_net_ore FROM contracts_read.contracts")
    )


def load_yaml_contracts(directory: Path) -> list[tuple[Path, ContractDefinitionV1]]:
    out = []
    for path in sorted(directory.glob("*.y*ml")):
        data = yaml.safe_load(path.read_text("utf-8"))
        out.append((path, ContractDefinitionV1.model_validate(data)))
    return out
