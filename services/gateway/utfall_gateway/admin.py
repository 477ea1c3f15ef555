"""`utfall-admin`: create and revoke API keys (a new key is printed once), load contracts, rebuild projections."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from aiokafka import AIOKafkaProducer

from utfall_events.contracts import ContractDefinitionV1
from utfall_events.topics import CONTRACT_COMMANDS
from utfall_platform.apikeys import KeyStore, generate_key, publish_keys
from utfall_platform.clock import SystemClock
from utfall_platform.kafka import ensure_topics
from utfall_platform.settings import PlatformSettings


async def create_key(
    bootstrap: str,
    role: str,
    provider_id: str | None,
    municipality_code: str | None,
    funder: str | None,
    label: str,
) -> dict[str, str | None]:
    await ensure_topics(bootstrap)
    new = generate_key(
        role,  # type: ignore[arg-type]
        now=SystemClock().now(),
        provider_id=provider_id,
        municipality_code=municipality_code,
        funder=funder,
        label=label,
    )
    await publish_keys(bootstrap, [new.record])
    return {
        "key_id": new.record.key_id,
        "role": role,
        "provider_id": provider_id,
        "municipality_code": municipality_code,
        "funder": funder,
        "key": new.secret,
    }


async def _store(bootstrap: str) -> KeyStore:
    store = KeyStore(bootstrap)
    task = asyncio.create_task(store.run())
    await asyncio.wait_for(store.caught_up.wait(), 30)
    task.cancel()
    return store


async def list_keys(bootstrap: str) -> list[dict[str, object]]:
    store = await _store(bootstrap)
    return [
        {
            "key_id": k.key_id,
            "role": k.role,
            "provider_id": k.provider_id,
            "municipality_code": k.municipality_code,
            "funder": k.funder,
            "label": k.label,
            "revoked": k.revoked_at is not None,
        }
        for k in store.keys.values()
    ]


async def revoke_key(bootstrap: str, key_id: str) -> bool:
    store = await _store(bootstrap)
    key = store.keys.get(key_id)
    if key is None:
        return False
    await publish_keys(bootstrap, [key.model_copy(update={"revoked_at": SystemClock().now()})])
    return True


async def load_contract(bootstrap: str, path: Path) -> str:
    definition = ContractDefinitionV1.model_validate(yaml.safe_load(path.read_text("utf-8")))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(
            CONTRACT_COMMANDS, definition.model_dump_json().encode(), key=definition.contract_id.encode()
        )
    finally:
        await producer.stop()
    return definition.contract_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="utfall-admin", description=__doc__)
    parser.add_argument("--bootstrap", default=None, help="Kafka bootstrap (default UTFALL_KAFKA_BOOTSTRAP)")
    sub = parser.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, choices=["provider", "municipality", "finance", "operator"])
    create.add_argument("--provider-id")
    create.add_argument("--municipality-code")
    create.add_argument("--funder")
    create.add_argument("--label", default="")
    create.add_argument("--json", action="store_true")
    keys.add_parser("list", help="list keys (never secrets)")
    revoke = keys.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    contracts = sub.add_parser("contracts", help="contracts").add_subparsers(dest="action", required=True)
    load = contracts.add_parser("load", help="create or amend a contract from a YAML file")
    load.add_argument("path", type=Path)
    sub.add_parser(
        "rebuild", help="drop the measures projection and replay care.events.v1 (stop measures first)"
    )
    args = parser.parse_args(argv)
    bootstrap = args.bootstrap or PlatformSettings().kafka_bootstrap

    if args.command == "keys" and args.action == "create":
        try:
            out = asyncio.run(
                create_key(
                    bootstrap, args.role, args.provider_id, args.municipality_code, args.funder, args.label
                )
            )
        except ValueError as exc:
            raise SystemExit(f"utfall-admin: {exc}") from None
        if args.json:
            print(json.dumps(out))
        else:
            print(
                f"key id: {out['key_id']}\nrole:   {out['role']}\nkey:    {out['key']}\n"
                "(this is the only time the key is shown; store it now)"
            )
    elif args.command == "keys" and args.action == "list":
        for k in asyncio.run(list_keys(bootstrap)):
            print(json.dumps(k))
    elif args.command == "keys" and args.action == "revoke":
        if not asyncio.run(revoke_key(bootstrap, args.key_id)):
            raise SystemExit(f"utfall-admin: no key {args.key_id}")
        print(f"revoked {args.key_id}")
    elif args.command == "contracts":
        print(f"sent contract {asyncio.run(load_contract(bootstrap, args.path))} to {CONTRACT_COMMANDS}")
    elif args.command == "rebuild":
        env = dict(os.environ)
        env["UTFALL_KAFKA_BOOTSTRAP"] = bootstrap
        raise SystemExit(subprocess.call([sys.executable, "-m", "utfall_measures.rebuild"], env=env))
