"""Sending a command to the contracts service and answering with its outcome: what disputes, resolutions,
period closings and webhook endpoints share.

The gateway publishes the command on `contracts.commands.v1` and waits a little for the contracts service's
recorded outcome: 201 applied, 409 refused with the reason, 202 while still undecided (poll the `Location`). An
`Idempotency-Key` header makes a retried request the same command, applied once.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse

from utfall_events.auth import PersonV1
from utfall_events.ledger_commands import LedgerCommandV1
from utfall_events.topics import CONTRACT_COMMANDS
from utfall_events.webhooks import WebhookCommandV1
from utfall_platform.problems import Problem

from ..auth import Principal
from ..readmodel import contracts as contracts_read
from ..state import gateway_state

COMMAND_NAMESPACE = uuid.UUID("0d6f3d1c-5e1a-4c7e-9a55-3b1c2f7e9a01")
IdempotencyKey = Annotated[str | None, Header(max_length=200, pattern=r"^[\x21-\x7e]+$")]
Row = Any


def command_envelope(
    request: Request, who: Principal, contract_id: str, idempotency_key: str | None
) -> dict[str, Any]:
    """What every command carries: its id, the contract, the key or person that sent it and when. With an Idempotency-Key
    the id is the same for a retry of the same request (key, method and path), and another for the same
    Idempotency-Key on another target: a key reused for another payment or endpoint is a new command, not the
    earlier one's outcome."""
    command_id = (
        str(uuid.uuid4())
        if idempotency_key is None
        else str(
            uuid.uuid5(
                COMMAND_NAMESPACE,
                f"{who.key_id or who.actor}|{request.method} {request.url.path}|{idempotency_key}",
            )
        )
    )
    return {
        "command_id": command_id,
        "contract_id": contract_id,
        "key_id": who.key_id or who.actor,
        "person": person_of(who),
        "requested_at": gateway_state(request).clock.now(),
    }


def person_of(who: Principal) -> PersonV1 | None:
    """The person a command or comment records, when a person signed in sent it."""
    if who.person is None:
        return None
    return PersonV1(subject=who.person, name=who.person_name or who.person)


def result_out(row: Row) -> dict[str, Any]:
    return {
        "command_id": row["command_id"],
        "contract_id": row["contract_id"],
        "command": row["command"],
        "outcome": row["outcome"],
        "detail": row["detail"],
        "ledger_entries": row["entries"],
        "decided_at": row["decided_at"].isoformat(),
    }


def command_location(contract_id: str, command_id: str) -> str:
    return f"/v1/contracts/{contract_id}/commands/{command_id}"


def outcome_answer(contract_id: str, command_id: str, row: Row) -> JSONResponse:
    location = command_location(contract_id, command_id)
    if row is None:
        return JSONResponse(
            {"command_id": command_id, "outcome": "pending", "detail": "sent; not decided yet"},
            status_code=202,
            headers={"Location": location},
        )
    if row["outcome"] == "refused":
        raise Problem(409, "command-refused", row["detail"], command_id=command_id)
    return JSONResponse(result_out(row), status_code=201, headers={"Location": location})


async def decide(request: Request, message: LedgerCommandV1 | WebhookCommandV1) -> Row | None:
    """Publishes the command (unless a retry finds it decided) and returns its recorded outcome, or None when
    it is not decided within the gateway's wait."""
    gw = gateway_state(request)
    command = message.root
    seen = await contracts_read.command_result(gw.pool, command.contract_id, command.command_id)
    if seen is not None:  # a retried request: the first one's outcome, not a second command
        return seen
    await gw.publish(CONTRACT_COMMANDS, message.model_dump_json().encode(), key=command.contract_id.encode())
    deadline = asyncio.get_running_loop().time() + gw.settings.command_wait_seconds
    row = None
    while row is None and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        row = await contracts_read.command_result(gw.pool, command.contract_id, command.command_id)
    return row


async def send_command(request: Request, message: LedgerCommandV1 | WebhookCommandV1) -> JSONResponse:
    command = message.root
    return outcome_answer(command.contract_id, command.command_id, await decide(request, message))
