"""Contracts' Postgres adapter for webhook endpoints: their registration, cursor and delivery log, and the
ledger entries each has still to receive."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from utfall_events.payments import PaymentV1
from utfall_events.webhooks import RegisterWebhookV1, ReplayWebhookV1, RotateWebhookSecretV1
from utfall_platform.locks import WEBHOOK_ENDPOINT

from .domain.webhooks import EndpointSecrets

_LEDGER_COLUMNS = (
    "seq, entry_id, payment_id, kind, occurrence, contract_id, contract_version, milestone_id, measure_id, "
    "measure_version, subject_ref, provider_id, episode_id, amount_ore, capped, evidence, determined_at, reason, "
    "dispute"
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    endpoint_id: str
    contract_id: str
    url: str
    secrets: EndpointSecrets
    delivered_seq: int
    failed_attempts: int
    failing_since: datetime | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class PendingMessage:
    seq: int
    entry: PaymentV1


@dataclass(frozen=True, slots=True)
class Attempt:
    message_id: str
    seq: int
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    delivered: bool


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    endpoint_id: str
    contract_id: str
    pending_messages: int
    failing_since: datetime | None


def _endpoint(row: asyncpg.Record) -> Endpoint:
    return Endpoint(
        row["endpoint_id"],
        row["contract_id"],
        row["url"],
        EndpointSecrets(row["secret"], row["previous_secret"], row["previous_valid_until"]),
        row["delivered_seq"],
        row["failed_attempts"],
        row["failing_since"],
        row["next_attempt_at"],
    )


class WebhookStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # --- commands (in the consumer's transaction) ------------------------------------------------------------
    async def endpoint_contract(self, endpoint_id: str) -> tuple[str, bool] | None:
        """The endpoint's contract and whether it is removed; None: no such endpoint."""
        row = await self.conn.fetchrow(
            "SELECT contract_id, removed_at IS NOT NULL AS removed FROM contracts.webhook_endpoints "
            "WHERE endpoint_id = $1",
            endpoint_id,
        )
        return None if row is None else (row["contract_id"], row["removed"])

    async def register(self, command: RegisterWebhookV1) -> None:
        await self.conn.execute(
            "INSERT INTO contracts.webhook_endpoints (endpoint_id, contract_id, url, description, secret, "
            "registered_by_key_id, registered_at, registered_by_person) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            command.endpoint_id,
            command.contract_id,
            command.url,
            command.description,
            command.secret,
            command.key_id,
            command.requested_at,
            None if command.person is None else command.person.model_dump(),
        )

    async def rotate(self, command: RotateWebhookSecretV1) -> None:
        await self.conn.execute(
            "UPDATE contracts.webhook_endpoints SET previous_secret = secret, previous_valid_until = $2, "
            "secret = $3 WHERE endpoint_id = $1",
            command.endpoint_id,
            command.previous_valid_until,
            command.secret,
        )

    async def replay(self, command: ReplayWebhookV1) -> int:
        """Moves the cursor back to just before the first entry determined at or after `since` (never forward:
        what is not delivered yet stays due); returns the entries due again."""
        cursor = await self.conn.fetchval(
            "SELECT min(seq) - 1 FROM contracts.ledger WHERE contract_id = $1 AND determined_at >= $2",
            command.contract_id,
            command.since,
        )
        row = await self.conn.fetchrow(
            "UPDATE contracts.webhook_endpoints SET delivered_seq = least(delivered_seq, $2), failed_attempts = 0, "
            "next_attempt_at = NULL WHERE endpoint_id = $1 RETURNING delivered_seq",
            command.endpoint_id,
            cursor if cursor is not None else 2**62,
        )
        return int(
            await self.conn.fetchval(
                "SELECT count(*) FROM contracts.ledger WHERE contract_id = $1 AND seq > $2",
                command.contract_id,
                row["delivered_seq"],
            )
        )

    async def remove(self, endpoint_id: str, now: datetime) -> None:
        await self.conn.execute(
            "UPDATE contracts.webhook_endpoints SET removed_at = $2 WHERE endpoint_id = $1", endpoint_id, now
        )

    # --- deliveries -----------------------------------------------------------------------------------------
    async def due_endpoints(self, now: datetime, limit: int) -> list[str]:
        """Endpoints with a message to deliver whose next attempt is due, the longest waiting first."""
        rows = await self.conn.fetch(
            "SELECT e.endpoint_id FROM contracts.webhook_endpoints e WHERE e.removed_at IS NULL "
            "AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= $1) "
            "AND EXISTS (SELECT 1 FROM contracts.ledger l WHERE l.contract_id = e.contract_id "
            "AND l.seq > e.delivered_seq) ORDER BY e.next_attempt_at NULLS FIRST LIMIT $2",
            now,
            limit,
        )
        return [r["endpoint_id"] for r in rows]

    async def try_lock(self, endpoint_id: str) -> bool:
        """One deliverer per endpoint across replicas: a session lock, released by `unlock` or when the
        connection ends (a killed process's lock goes with it)."""
        return bool(
            await self.conn.fetchval(
                "SELECT pg_try_advisory_lock(hashtextextended($1, $2))", endpoint_id, WEBHOOK_ENDPOINT
            )
        )

    async def unlock(self, endpoint_id: str) -> None:
        await self.conn.fetchval(
            "SELECT pg_advisory_unlock(hashtextextended($1, $2))", endpoint_id, WEBHOOK_ENDPOINT
        )

    async def endpoint(self, endpoint_id: str) -> Endpoint | None:
        """Read after taking the lock: the cursor as the last deliverer left it."""
        row = await self.conn.fetchrow(
            "SELECT * FROM contracts.webhook_endpoints WHERE endpoint_id = $1 AND removed_at IS NULL",
            endpoint_id,
        )
        return None if row is None else _endpoint(row)

    async def pending(self, endpoint: Endpoint, limit: int) -> list[PendingMessage]:
        rows = await self.conn.fetch(
            f"SELECT {_LEDGER_COLUMNS} FROM contracts.ledger WHERE contract_id = $1 AND seq > $2 "
            "ORDER BY seq LIMIT $3",
            endpoint.contract_id,
            endpoint.delivered_seq,
            limit,
        )
        return [
            PendingMessage(
                r["seq"], PaymentV1.model_validate({k: v for k, v in dict(r).items() if k != "seq"})
            )
            for r in rows
        ]

    async def delivered(self, endpoint_id: str, attempts: Sequence[Attempt]) -> None:
        """The receiver acknowledged these messages (in order): the cursor moves past the last, in the transaction
        that logs them. A replay that moved the cursor back meanwhile is not undone."""
        async with self.conn.transaction():
            await self._log(endpoint_id, attempts)
            await self.conn.execute(
                "UPDATE contracts.webhook_endpoints SET delivered_seq = $2, delivered_messages = "
                "delivered_messages + $3, failed_attempts = 0, next_attempt_at = NULL, failing_since = NULL, "
                "last_error = NULL WHERE endpoint_id = $1 AND delivered_seq < $2",
                endpoint_id,
                attempts[-1].seq,
                len(attempts),
            )

    async def failed(
        self, endpoint_id: str, attempt: Attempt, next_attempt_at: datetime, failing_since: datetime
    ) -> None:
        async with self.conn.transaction():
            await self._log(endpoint_id, [attempt])
            await self.conn.execute(
                "UPDATE contracts.webhook_endpoints SET failed_attempts = $2, next_attempt_at = $3, "
                "failing_since = $4, last_error = $5 WHERE endpoint_id = $1",
                endpoint_id,
                attempt.attempt,
                next_attempt_at,
                failing_since,
                attempt.error
                or (f"HTTP {attempt.status_code}" if attempt.status_code is not None else "failed"),
            )

    async def _log(self, endpoint_id: str, attempts: Sequence[Attempt]) -> None:
        await self.conn.executemany(
            "INSERT INTO contracts.webhook_attempts (endpoint_id, message_id, seq, attempt, attempted_at, "
            "status_code, error, duration_ms, delivered) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                (
                    endpoint_id,
                    a.message_id,
                    a.seq,
                    a.attempt,
                    a.attempted_at,
                    a.status_code,
                    a.error,
                    a.duration_ms,
                    a.delivered,
                )
                for a in attempts
            ],
        )

    async def prune_log(self, before: datetime) -> int:
        deleted = await self.conn.execute(
            "DELETE FROM contracts.webhook_attempts WHERE attempted_at < $1", before
        )
        return int(deleted.split()[-1])

    async def health(self) -> list[EndpointHealth]:
        rows = await self.conn.fetch(
            "SELECT e.endpoint_id, e.contract_id, e.failing_since, (SELECT count(*) FROM contracts.ledger l "
            "WHERE l.contract_id = e.contract_id AND l.seq > e.delivered_seq) AS pending "
            "FROM contracts.webhook_endpoints e WHERE e.removed_at IS NULL"
        )
        return [
            EndpointHealth(r["endpoint_id"], r["contract_id"], r["pending"], r["failing_since"]) for r in rows
        ]
