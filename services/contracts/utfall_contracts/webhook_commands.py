"""Contracts' service layer for commands on webhook endpoints: decided in the consumer's transaction and recorded
under the command id, as a ledger command is (the gateway answers from that record)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from utfall_events.webhooks import (
    RegisterWebhookV1,
    RemoveWebhookV1,
    ReplayWebhookV1,
    RotateWebhookSecretV1,
    WebhookCommandV1,
)

from .contract_store import current_contracts
from .ledger_store import LedgerStore
from .webhook_store import WebhookStore


async def apply_webhook_command(conn: asyncpg.Connection, message: WebhookCommandV1, *, now: datetime) -> str:
    command = message.root
    ledger = LedgerStore(conn)
    if await ledger.command_seen(command.command_id):
        return "seen before"
    store = WebhookStore(conn)
    refusal, detail = None, ""
    if command.contract_id not in await current_contracts(conn):
        refusal = f"no contract {command.contract_id}"
    elif isinstance(command, RegisterWebhookV1):
        if await store.endpoint_contract(command.endpoint_id) is not None:
            refusal = f"endpoint {command.endpoint_id} exists"
        else:
            await store.register(command)
            detail = f"endpoint {command.endpoint_id} registered: it receives every payment message of the contract"
    else:
        found = await store.endpoint_contract(command.endpoint_id)
        if found is None or found[0] != command.contract_id:
            refusal = f"no endpoint {command.endpoint_id} on this contract"
        elif found[1]:
            refusal = f"endpoint {command.endpoint_id} is removed"
        elif isinstance(command, RotateWebhookSecretV1):
            await store.rotate(command)
            detail = (
                f"secret rotated: the previous one signs too until {command.previous_valid_until.isoformat()}"
            )
        elif isinstance(command, ReplayWebhookV1):
            due = await store.replay(command)
            detail = f"replay from {command.since.isoformat()}: {due} messages due"
        else:
            assert isinstance(command, RemoveWebhookV1)
            await store.remove(command.endpoint_id, now)
            detail = f"endpoint {command.endpoint_id} removed"
    await ledger.record_command(
        command.command_id,
        command.contract_id,
        command.command,
        "refused" if refusal else "applied",
        refusal or detail,
        0,
        now,
    )
    return refusal or detail
