"""Contracts' service layer for commands on a ledger (disputes, resolutions, closing a period).

Each command is decided under the contract's lock, in the transaction that stores the consumer's position: its
ledger entries, their `payments.v1` messages (outbox) and its recorded outcome commit together or not at all,
so a process killed mid-flow neither loses nor doubles a step. A command id seen before is skipped.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from utfall_events.contracts import ContractDefinitionV1
from utfall_events.ledger_commands import ClosePeriodV1, DisputePaymentV1, LedgerCommandV1, ResolveDisputeV1
from utfall_events.periods import parse_period

from .contract_store import current_contracts
from .domain.disputes import Refusal, decide_close, decide_dispute, decide_resolution
from .ledger_store import LedgerStore
from .reconcile import reconcile
from .repository import PostgresRepository, append_ledger


async def apply_ledger_command(conn: asyncpg.Connection, message: LedgerCommandV1, *, now: datetime) -> str:
    """Decide one command and record its outcome; returns the outcome's detail (for logs and tests)."""
    command = message.root
    store = LedgerStore(conn)
    if await store.command_seen(command.command_id):
        return "seen before"
    repository = PostgresRepository(conn)
    await repository.lock_contracts([command.contract_id])
    contracts = await current_contracts(conn)
    entries = 0
    if command.contract_id not in contracts:
        outcome: Refusal | str = Refusal(f"no contract {command.contract_id}")
    elif isinstance(command, DisputePaymentV1):
        outcome, entries = await _dispute(store, command, now)
    elif isinstance(command, ResolveDisputeV1):
        outcome, entries = await _resolve(store, repository, contracts, command, now)
    else:
        outcome = await _close(store, contracts[command.contract_id][1].statement_period, command, now)
    refused = isinstance(outcome, Refusal)
    detail = outcome.detail if isinstance(outcome, Refusal) else outcome
    await store.record_command(
        command.command_id,
        command.contract_id,
        command.command,
        "refused" if refused else "applied",
        detail,
        entries,
        now,
    )
    return detail


async def _dispute(store: LedgerStore, command: DisputePaymentV1, now: datetime) -> tuple[Refusal | str, int]:
    decision = decide_dispute(await store.standing(command.contract_id, command.payment_id), command, now)
    if isinstance(decision, Refusal):
        return decision, 0
    await store.open_dispute(decision)
    await append_ledger(store.conn, [decision])
    return f"payment {command.payment_id} disputed: on hold until the commissioner resolves it", 1


async def _resolve(
    store: LedgerStore,
    repository: PostgresRepository,
    contracts: dict[str, tuple[int, ContractDefinitionV1]],
    command: ResolveDisputeV1,
    now: datetime,
) -> tuple[Refusal | str, int]:
    decision = decide_resolution(await store.standing(command.contract_id, command.payment_id), command, now)
    if isinstance(decision, Refusal):
        return decision, 0
    await store.resolve_dispute(decision)
    written = await append_ledger(store.conn, [decision])
    if command.resolution == "dismissed":
        return f"dispute of payment {command.payment_id} dismissed: the payment stands", written
    await store.disallow(decision, now)
    written += await reconcile(
        repository,
        {command.contract_id: contracts[command.contract_id]},
        [(decision.provider_id, decision.episode_id)],
        now=now,
        reason=f"dispute of payment {command.payment_id} upheld: {command.reason}",
    )
    return (
        f"dispute of payment {command.payment_id} upheld: reversed, the milestone is not paid again",
        written,
    )


async def _close(store: LedgerStore, kind: str, command: ClosePeriodV1, now: datetime) -> Refusal | str:
    period = parse_period(command.period)
    if period is None or period.kind != kind:
        return Refusal(f"{command.period} is not a period of this contract (its statements are per {kind})")
    refusal = decide_close(period, already_closed=await store.is_closed(command.contract_id, period), now=now)
    if refusal is not None:
        return refusal
    totals = await store.period_totals(command.contract_id, period)
    await store.close_period(command.contract_id, period, totals, command.key_id, now, command.person)
    return (
        f"period {period.label} closed: {totals.entries} entries, net {totals.net_ore} öre, "
        f"closing balance {totals.opening_balance_ore + totals.net_ore} öre"
    )
