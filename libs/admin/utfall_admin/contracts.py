"""Contracts: a file validated as the services validate it, sent as a command on `contracts.commands.v1`, and
the version the contracts service stored it as (read from its published view)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import yaml
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from utfall_events.codec import describe
from utfall_events.contracts import ContractDefinitionV1
from utfall_events.topics import CONTRACT_COMMANDS
from utfall_platform.kafka_access import KafkaAccess

from .errors import AdminError


def read_contract(path: Path) -> ContractDefinitionV1:
    """A contract file, validated exactly as the gateway and the contracts service validate it."""
    try:
        document = yaml.safe_load(path.read_text("utf-8"))
    except OSError as exc:
        raise AdminError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise AdminError(f"{path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        raise AdminError(f"{path} is not valid YAML{at}") from None
    try:
        return ContractDefinitionV1.model_validate(document)
    except ValidationError as exc:
        raise AdminError(f"{path} is not a valid contract: {describe(exc, limit=20)}") from None


async def load_contract(kafka: KafkaAccess, definition: ContractDefinitionV1) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(
            CONTRACT_COMMANDS, definition.model_dump_json().encode(), key=definition.contract_id.encode()
        )
    finally:
        await producer.stop()


async def stored_version(database_url: str, definition: ContractDefinitionV1, timeout: float) -> int | None:
    """The version the contracts service stored this very definition as (its published view
    `contracts_read.contract_versions`), waiting up to `timeout` seconds."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            version = await conn.fetchval(
                "SELECT max(version) FROM contracts_read.contract_versions WHERE contract_id = $1 "
                "AND definition = $2::jsonb",
                definition.contract_id,
                definition.model_dump_json(),
            )
            if version is not None or asyncio.get_running_loop().time() > deadline:
                return int(version) if version is not None else None
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
