"""Contracts, participants, the ledger and what a forecast reads, from `contracts_read` (and `measures_read`
for the outcome rates a forecast projects with)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import Pool, Row


async def contract(pool: Pool, contract_id: str) -> Row | None:
    return await pool.fetchrow("SELECT * FROM contracts_read.contracts WHERE contract_id = $1", contract_id)


async def contracts(pool: Pool) -> list[Row]:
    return list(await pool.fetch("SELECT * FROM contracts_read.contracts ORDER BY contract_id"))


async def contract_versions(pool: Pool, contract_id: str) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT version, definition, origin, created_at FROM contracts_read.contract_versions "
            "WHERE contract_id = $1 ORDER BY version",
            contract_id,
        )
    )


async def participants(
    pool: Pool, contract_id: str, after: tuple[str, str], limit: int, provider_id: str | None
) -> list[Row]:
    """Up to `limit` participants after the (provider, episode) cursor; only one provider's when given."""
    args: list[Any] = [contract_id, after[0], after[1], limit]
    provider_clause = ""
    if provider_id is not None:
        args.append(provider_id)
        provider_clause = f" AND provider_id = ${len(args)}"
    return list(
        await pool.fetch(
            "SELECT * FROM contracts_read.participants WHERE contract_id = $1 AND (provider_id, episode_id) > "
            f"($2, $3){provider_clause} ORDER BY provider_id, episode_id LIMIT $4",
            *args,
        )
    )


async def participant_milestones(pool: Pool, contract_id: str, keys: Sequence[tuple[str, str]]) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT * FROM contracts_read.participant_milestones WHERE contract_id = $1 AND "
            "(provider_id, episode_id) IN (SELECT * FROM unnest($2::text[], $3::text[])) ORDER BY milestone_id",
            contract_id,
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
    )


async def ledger(
    pool: Pool, contract_ids: Sequence[str], after_seq: int, limit: int, provider_id: str | None
) -> list[Row]:
    args: list[Any] = [list(contract_ids), after_seq, limit]
    provider_clause = ""
    if provider_id is not None:
        args.append(provider_id)
        provider_clause = f" AND provider_id = ${len(args)}"
    return list(
        await pool.fetch(
            f"SELECT * FROM contracts_read.ledger WHERE contract_id = ANY($1::text[]) AND seq > $2{provider_clause} "
            "ORDER BY seq LIMIT $3",
            *args,
        )
    )


async def ledger_between(pool: Pool, contract_id: str, start: Any, end: Any) -> list[Row]:
    """A contract's ledger entries determined in [start, end), oldest first (a statement's lines)."""
    return list(
        await pool.fetch(
            "SELECT * FROM contracts_read.ledger WHERE contract_id = $1 AND determined_at >= $2 "
            "AND determined_at < $3 ORDER BY seq",
            contract_id,
            start,
            end,
        )
    )


async def ledger_net_before(pool: Pool, contract_id: str, start: Any) -> dict[str, int]:
    """Net paid per provider before a moment (a statement's opening balances)."""
    rows = await pool.fetch(
        "SELECT provider_id, coalesce(sum(signed_amount_ore), 0) AS net FROM contracts_read.ledger "
        "WHERE contract_id = $1 AND determined_at < $2 GROUP BY provider_id",
        contract_id,
        start,
    )
    return {r["provider_id"]: int(r["net"]) for r in rows}


async def ledger_span(pool: Pool, contract_id: str) -> tuple[Any, Any] | None:
    """When a contract's first and last ledger entries were determined; None without entries."""
    row = await pool.fetchrow(
        "SELECT min(determined_at) AS first, max(determined_at) AS last FROM contracts_read.ledger "
        "WHERE contract_id = $1",
        contract_id,
    )
    return None if row is None or row["first"] is None else (row["first"], row["last"])


async def triggered_payment(pool: Pool, contract_id: str, payment_id: str) -> Row | None:
    return await pool.fetchrow(
        "SELECT * FROM contracts_read.ledger WHERE contract_id = $1 AND payment_id = $2 AND kind = 'payment.triggered'",
        contract_id,
        payment_id,
    )


async def command_result(pool: Pool, contract_id: str, command_id: str) -> Row | None:
    return await pool.fetchrow(
        "SELECT * FROM contracts_read.command_results WHERE contract_id = $1 AND command_id = $2",
        contract_id,
        command_id,
    )


async def disputes(pool: Pool, contract_id: str, provider_id: str | None) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT * FROM contracts_read.disputes WHERE contract_id = $1 AND ($2::text IS NULL OR provider_id = $2) "
            "ORDER BY raised_at, payment_id",
            contract_id,
            provider_id,
        )
    )


async def closed_periods(pool: Pool, contract_id: str) -> dict[str, Row]:
    rows = await pool.fetch(
        "SELECT * FROM contracts_read.closed_periods WHERE contract_id = $1 ORDER BY period_start",
        contract_id,
    )
    return {r["period"]: r for r in rows}


async def standing_payments(pool: Pool, contract_id: str, as_of_seq: int) -> list[Row]:
    """Triggered payments of a contract that stood after ledger entry `as_of_seq` (not reversed by then), with
    their evidence: what an assessor samples from."""
    return list(
        await pool.fetch(
            "SELECT t.* FROM contracts_read.ledger t WHERE t.contract_id = $1 AND t.kind = 'payment.triggered' "
            "AND t.seq <= $2 AND NOT EXISTS (SELECT 1 FROM contracts_read.ledger r WHERE r.payment_id = t.payment_id "
            "AND r.kind = 'payment.reversed' AND r.seq <= $2) ORDER BY t.payment_id",
            contract_id,
            as_of_seq,
        )
    )


async def last_seq(pool: Pool, contract_id: str) -> int:
    value = await pool.fetchval(
        "SELECT coalesce(max(seq), 0) FROM contracts_read.ledger WHERE contract_id = $1", contract_id
    )
    return int(value)


async def open_milestones(pool: Pool, contract_id: str) -> list[Row]:
    """Enrolled participants' milestones whose outcome is not determined yet, with what a forecast needs: the
    participant's care type, target group, start and (when discharged) end date."""
    return list(
        await pool.fetch(
            "SELECT pm.provider_id, pm.episode_id, pm.milestone_id, pm.measure_id, pm.price_ore, p.care_type, "
            "p.target_group, p.start_date, e.end_date FROM contracts_read.participant_milestones pm "
            "JOIN contracts_read.participants p ON p.contract_id = pm.contract_id AND p.provider_id = pm.provider_id "
            "AND p.episode_id = pm.episode_id "
            "LEFT JOIN measures_read.episodes e ON e.provider_id = pm.provider_id AND e.episode_id = pm.episode_id "
            "WHERE pm.contract_id = $1 AND pm.participant_status = 'enrolled' "
            "AND pm.outcome_status IN ('pending', 'no_outcome_yet') ORDER BY 1, 2, 3",
            contract_id,
        )
    )


async def participant_paid(pool: Pool, contract_id: str) -> dict[tuple[str, str], int]:
    rows = await pool.fetch(
        "SELECT provider_id, episode_id, paid_net_ore FROM contracts_read.participants "
        "WHERE contract_id = $1 AND paid_net_ore <> 0",
        contract_id,
    )
    return {(r["provider_id"], r["episode_id"]): int(r["paid_net_ore"]) for r in rows}


async def outcome_rates(pool: Pool, measure_ids: Sequence[str]) -> list[Row]:
    """Per measure, care type and target group: episodes achieved, and determined (achieved, not achieved or
    missing), over every provider."""
    return list(
        await pool.fetch(
            "SELECT measure_id, care_type, target_group, count(*) FILTER (WHERE status = 'achieved') AS achieved, "
            "count(*) FILTER (WHERE status IN ('achieved', 'not_achieved', 'missing')) AS determined "
            "FROM measures_read.outcome_facts WHERE measure_id = ANY($1::text[]) GROUP BY 1, 2, 3",
            list(measure_ids),
        )
    )


async def median_stays(pool: Pool) -> dict[tuple[str, str], int]:
    rows = await pool.fetch(
        "SELECT care_type, target_group, percentile_disc(0.5) WITHIN GROUP (ORDER BY length_of_stay_days) AS days "
        "FROM measures_read.episodes WHERE length_of_stay_days IS NOT NULL GROUP BY 1, 2"
    )
    return {(r["care_type"], r["target_group"]): int(r["days"]) for r in rows}


async def ledger_net_by_month(pool: Pool, contract_id: str) -> list[Row]:
    """Net paid per calendar month in Swedish time, milestone and provider (the actual side of planned against
    actual), with the payments among them under an open dispute."""
    return list(
        await pool.fetch(
            "SELECT date_trunc('month', l.determined_at AT TIME ZONE 'Europe/Stockholm')::date AS month, "
            "l.milestone_id, l.provider_id, sum(l.signed_amount_ore) AS net, "
            "count(d.payment_id) FILTER (WHERE l.kind = 'payment.triggered') AS open_disputes "
            "FROM contracts_read.ledger l LEFT JOIN contracts_read.disputes d ON d.payment_id = l.payment_id "
            "AND d.status = 'open' WHERE l.contract_id = $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            contract_id,
        )
    )


async def milestone_results(pool: Pool, contract_id: str) -> list[Row]:
    """Per milestone: participants enrolled, and those whose outcome is achieved."""
    return list(
        await pool.fetch(
            "SELECT milestone_id, count(*) AS engaged, count(*) FILTER (WHERE outcome_status = 'achieved') AS achieved "
            "FROM contracts_read.participant_milestones WHERE contract_id = $1 AND participant_status = 'enrolled' "
            "GROUP BY 1 ORDER BY 1",
            contract_id,
        )
    )


async def payments_citing(
    pool: Pool, provider_id: str, episode_id: str, ref: list[dict[str, str]]
) -> list[Row]:
    return list(
        await pool.fetch(
            "SELECT contract_id, payment_id, kind, milestone_id, amount_ore, determined_at FROM contracts_read.ledger "
            "WHERE provider_id = $1 AND episode_id = $2 AND evidence @> $3::jsonb ORDER BY seq",
            provider_id,
            episode_id,
            ref,
        )
    )
