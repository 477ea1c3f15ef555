"""The gateway's reads of webhook endpoints and their delivery log (`contracts_read`; never a secret)."""

from __future__ import annotations

from typing import Any

Pool = Any
Row = Any


async def endpoints(pool: Pool, contract_id: str) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT * FROM contracts_read.webhook_endpoints WHERE contract_id = $1 ORDER BY registered_at, endpoint_id",
            contract_id,
        )
    )


async def endpoint(pool: Pool, contract_id: str, endpoint_id: str) -> Row | None:
    return await pool.fetchrow(
        "SELECT * FROM contracts_read.webhook_endpoints WHERE contract_id = $1 AND endpoint_id = $2",
        contract_id,
        endpoint_id,
    )


async def attempts(pool: Pool, endpoint_id: str, limit: int, before: int | None) -> list[Row]:
    """The newest attempts first; `before` pages on by attempt id."""
    return list(
        await pool.fetch(
            "SELECT * FROM contracts_read.webhook_attempts WHERE endpoint_id = $1 "
            "AND ($2::bigint IS NULL OR attempt_id < $2) ORDER BY attempt_id DESC LIMIT $3",
            endpoint_id,
            before,
            limit,
        )
    )
