"""Contracts' Postgres adapter for commands on a ledger: payments as they stand, disputes, closed periods and
the recorded outcome of every command."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from utfall_events.auth import PersonV1
from utfall_events.payments import DisputeInfoV1, PaymentV1
from utfall_events.periods import Period

from .domain.disputes import PaymentStanding

_LEDGER_COLUMNS = (
    "entry_id, payment_id, kind, occurrence, contract_id, contract_version, milestone_id, measure_id, "
    "measure_version, subject_ref, provider_id, episode_id, amount_ore, capped, evidence, determined_at, reason"
)


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    opening_balance_ore: int
    net_ore: int
    entries: int
    last_seq: int | None


class LedgerStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def command_seen(self, command_id: str) -> bool:
        return bool(
            await self.conn.fetchval(
                "SELECT 1 FROM contracts.command_results WHERE command_id = $1", command_id
            )
        )

    async def record_command(
        self,
        command_id: str,
        contract_id: str,
        command: str,
        outcome: str,
        detail: str,
        entries: int,
        now: datetime,
    ) -> None:
        await self.conn.execute(
            "INSERT INTO contracts.command_results (command_id, contract_id, command, outcome, detail, entries, "
            "decided_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            command_id,
            contract_id,
            command,
            outcome,
            detail,
            entries,
            now,
        )

    async def standing(self, contract_id: str, payment_id: str) -> PaymentStanding | None:
        trigger = await self.conn.fetchrow(
            f"SELECT {_LEDGER_COLUMNS} FROM contracts.ledger WHERE contract_id = $1 AND payment_id = $2 "
            "AND kind = 'payment.triggered'",
            contract_id,
            payment_id,
        )
        if trigger is None:
            return None
        reversed_ = await self.conn.fetchval(
            "SELECT 1 FROM contracts.ledger WHERE payment_id = $1 AND kind = 'payment.reversed'", payment_id
        )
        dispute = await self.conn.fetchrow(
            "SELECT * FROM contracts.disputes WHERE payment_id = $1", payment_id
        )
        payment = PaymentV1.model_validate({**dict(trigger), "evidence": trigger["evidence"]})
        return PaymentStanding(payment, bool(reversed_), _dispute(dispute) if dispute is not None else None)

    async def open_dispute(self, entry: PaymentV1) -> None:
        assert entry.dispute is not None
        d = entry.dispute
        await self.conn.execute(
            "INSERT INTO contracts.disputes (contract_id, payment_id, provider_id, episode_id, milestone_id, "
            "amount_ore, status, raised_by_role, raised_by_key_id, reason, raised_at, raised_by_person) "
            "VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $10, $11)",
            entry.contract_id,
            entry.payment_id,
            entry.provider_id,
            entry.episode_id,
            entry.milestone_id,
            entry.amount_ore,
            d.raised_by_role,
            d.raised_by_key_id,
            d.reason,
            d.raised_at,
            _person(d.raised_by_person),
        )

    async def resolve_dispute(self, entry: PaymentV1) -> None:
        assert entry.dispute is not None
        await self.conn.execute(
            "UPDATE contracts.disputes SET status = $2, resolved_by_key_id = $3, resolution_reason = $4, "
            "resolved_at = $5, resolved_by_person = $6 WHERE payment_id = $1",
            entry.payment_id,
            entry.dispute.resolution,
            entry.dispute.resolved_by_key_id,
            entry.dispute.resolution_reason,
            entry.determined_at,
            _person(entry.dispute.resolved_by_person),
        )

    async def disallow(self, entry: PaymentV1, now: datetime) -> None:
        await self.conn.execute(
            "UPDATE contracts.milestone_state SET disallowed = true, updated_at = $5 WHERE contract_id = $1 "
            "AND provider_id = $2 AND episode_id = $3 AND milestone_id = $4",
            entry.contract_id,
            entry.provider_id,
            entry.episode_id,
            entry.milestone_id,
            now,
        )

    async def is_closed(self, contract_id: str, period: Period) -> bool:
        return bool(
            await self.conn.fetchval(
                "SELECT 1 FROM contracts.closed_periods WHERE contract_id = $1 AND period = $2",
                contract_id,
                period.label,
            )
        )

    async def period_totals(self, contract_id: str, period: Period) -> PeriodTotals:
        row = await self.conn.fetchrow(
            "SELECT coalesce(sum(signed_amount_ore) FILTER (WHERE determined_at < $2), 0) AS opening, "
            "coalesce(sum(signed_amount_ore) FILTER (WHERE determined_at >= $2), 0) AS net, "
            "count(*) FILTER (WHERE determined_at >= $2) AS entries, "
            "max(seq) FILTER (WHERE determined_at >= $2) AS last_seq "
            "FROM contracts.ledger WHERE contract_id = $1 AND determined_at < $3",
            contract_id,
            period.start,
            period.end,
        )
        return PeriodTotals(int(row["opening"]), int(row["net"]), int(row["entries"]), row["last_seq"])

    async def close_period(
        self,
        contract_id: str,
        period: Period,
        totals: PeriodTotals,
        key_id: str,
        now: datetime,
        person: PersonV1 | None = None,
    ) -> None:
        await self.conn.execute(
            "INSERT INTO contracts.closed_periods (contract_id, period, period_start, period_end, "
            "opening_balance_ore, net_ore, closing_balance_ore, entries, last_seq, closed_by_key_id, closed_at, "
            "closed_by_person) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            contract_id,
            period.label,
            period.start,
            period.end,
            totals.opening_balance_ore,
            totals.net_ore,
            totals.opening_balance_ore + totals.net_ore,
            totals.entries,
            totals.last_seq,
            key_id,
            now,
            _person(person),
        )


def _person(person: PersonV1 | None) -> dict[str, str] | None:
    return None if person is None else person.model_dump()


def _dispute(row: asyncpg.Record) -> DisputeInfoV1:
    return DisputeInfoV1(
        raised_by_role=row["raised_by_role"],
        raised_by_key_id=row["raised_by_key_id"],
        raised_at=row["raised_at"],
        reason=row["reason"],
        resolution=None if row["status"] == "open" else row["status"],
        resolved_by_key_id=row["resolved_by_key_id"],
        resolution_reason=row["resolution_reason"],
        raised_by_person=row["raised_by_person"],
        resolved_by_person=row["resolved_by_person"],
    )
