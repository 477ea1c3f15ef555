"""People's sessions and sign-ins under way, in the gateway's own schema (the one place it writes, with the trail).

The gateway's database role is read-only by default, so each write opens its transaction READ WRITE."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True, slots=True)
class PendingSignIn:
    code_verifier: str
    nonce: str
    next_path: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    subject: str
    display_name: str
    claims: dict[str, Any]
    csrf_token: str
    id_token: str
    access_token: str
    refresh_token: str
    created_at: datetime
    revalidated_at: datetime
    expires_at: datetime


class SessionStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction that may write (the gateway's role reads only unless a transaction says otherwise)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION READ WRITE")
            yield conn

    async def begin_sign_in(self, state: str, pending: PendingSignIn) -> None:
        async with self._writing() as conn:
            await conn.execute(
                "DELETE FROM gateway.sign_ins WHERE created_at < $1::timestamptz - interval '1 hour'",
                pending.created_at,
            )
            await conn.execute(
                "INSERT INTO gateway.sign_ins (state_hash, code_verifier, nonce, next_path, created_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                digest(state),
                pending.code_verifier,
                pending.nonce,
                pending.next_path,
                pending.created_at,
            )

    async def take_sign_in(self, state: str) -> PendingSignIn | None:
        """The sign-in `state` began, once: it is removed as it is read."""
        async with self._writing() as conn:
            row = await conn.fetchrow(
                "DELETE FROM gateway.sign_ins WHERE state_hash = $1"
                " RETURNING code_verifier, nonce, next_path, created_at",
                digest(state),
            )
        return PendingSignIn(**dict(row)) if row else None

    async def create(self, session_id: str, session: Session) -> None:
        async with self._writing() as conn:
            await conn.execute("DELETE FROM gateway.sessions WHERE expires_at < $1", session.created_at)
            await conn.execute(
                "INSERT INTO gateway.sessions (id_hash, subject, display_name, claims, csrf_token, id_token,"
                " access_token, refresh_token, created_at, revalidated_at, expires_at)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
                digest(session_id),
                session.subject,
                session.display_name,
                session.claims,
                session.csrf_token,
                session.id_token,
                session.access_token,
                session.refresh_token,
                session.created_at,
                session.revalidated_at,
                session.expires_at,
            )

    async def get(self, session_id: str) -> Session | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT subject, display_name, claims, csrf_token, id_token, access_token, refresh_token, created_at,"
                " revalidated_at, expires_at FROM gateway.sessions WHERE id_hash = $1",
                digest(session_id),
            )
        return Session(**dict(row)) if row else None

    async def revalidated(
        self, session_id: str, claims: dict[str, Any], access_token: str, refresh_token: str, at: datetime
    ) -> None:
        async with self._writing() as conn:
            await conn.execute(
                "UPDATE gateway.sessions SET claims = $2, access_token = $3, refresh_token = $4, revalidated_at = $5"
                " WHERE id_hash = $1",
                digest(session_id),
                claims,
                access_token,
                refresh_token,
                at,
            )

    async def end(self, session_id: str) -> None:
        async with self._writing() as conn:
            await conn.execute("DELETE FROM gateway.sessions WHERE id_hash = $1", digest(session_id))
