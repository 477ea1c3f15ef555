"""`utfall-admin`: register providers, create and revoke API keys (a new key is printed once), load contracts,
rebuild projections."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import asyncpg
import yaml
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from utfall_events.auth import ROLES
from utfall_events.codec import describe
from utfall_events.contracts import ContractDefinitionV1
from utfall_events.registry import ProviderRegistrationV1, ProviderV1
from utfall_events.topics import CONTRACT_COMMANDS, raw_topic, register_raw_topic, register_receipts_topic
from utfall_platform.apikeys import KeyStore, generate_key, publish_keys
from utfall_platform.clock import SystemClock
from utfall_platform.kafka import ensure_topics
from utfall_platform.kafka_access import KafkaAccess
from utfall_platform.kafka_acl import SERVICE_GRANTS, KafkaProvisioner, new_password
from utfall_platform.registry import ProviderRegistry, publish_providers
from utfall_platform.settings import PlatformSettings


class AdminError(Exception):
    """A mistake the operator can fix; printed as one line, never as a traceback."""


async def register_provider(kafka: KafkaAccess, registration: ProviderRegistrationV1) -> ProviderV1:
    await ensure_topics(kafka)
    registry = ProviderRegistry(kafka)
    await registry.load()
    previous = registry.rows.get(registration.provider_id)
    record = ProviderV1(
        **registration.model_dump(),
        registered_at=previous.registered_at if previous is not None else SystemClock().now(),
    )
    await publish_providers(kafka, [record])
    return record


async def list_providers(kafka: KafkaAccess) -> list[ProviderV1]:
    registry = ProviderRegistry(kafka)
    await registry.load()
    return sorted(registry.rows.values(), key=lambda p: p.provider_id)


async def retire_provider(kafka: KafkaAccess, provider_id: str) -> ProviderV1:
    registry = ProviderRegistry(kafka)
    await registry.load()
    current = registry.rows.get(provider_id)
    if current is None:
        raise AdminError(f"no provider {provider_id}")
    retired = current.model_copy(update={"retired_at": current.retired_at or SystemClock().now()})
    await publish_providers(kafka, [retired])
    await KafkaProvisioner(kafka).revoke_provider(provider_id)
    return retired


async def provider_kafka_access(kafka: KafkaAccess, provider_id: str) -> KafkaAccess:
    """Create (or rotate) a registered provider's Kafka principal: it may write its own raw topic, nothing else."""
    registry = ProviderRegistry(kafka)
    await registry.load()
    if registry.active(provider_id) is None:
        raise AdminError(
            f"provider {provider_id} is not registered (utfall-admin providers add) or is retired"
        )
    return await KafkaProvisioner(kafka).provision_provider(provider_id, new_password())


async def register_kafka_access(kafka: KafkaAccess, register_id: str) -> KafkaAccess:
    """Create (or rotate) a register's Kafka principal: it may write its own raw topic and read its own
    receipts, nothing else. A register is known by its key (utfall-admin keys create --role register)."""
    keys = KeyStore(kafka)
    await keys.load()
    if not any(
        k.role == "register" and k.register_id == register_id and k.revoked_at is None
        for k in keys.keys.values()
    ):
        raise AdminError(
            f"register {register_id} has no active key (utfall-admin keys create --role register)"
        )
    return await KafkaProvisioner(kafka).provision_register(register_id, new_password())


def service_passwords(env: Mapping[str, str]) -> dict[str, str]:
    """Each service principal's password from UTFALL_KAFKA_PASSWORD_<SERVICE>; every one must be set."""
    passwords = {name: env.get(f"UTFALL_KAFKA_PASSWORD_{name.upper()}", "") for name in SERVICE_GRANTS}
    missing = sorted(f"UTFALL_KAFKA_PASSWORD_{n.upper()}" for n, pw in passwords.items() if not pw)
    if missing:
        raise AdminError(f"set {', '.join(missing)}")
    return passwords


def operator_access(bootstrap: str | None) -> KafkaAccess:
    """The operator's Kafka access: UTFALL_KAFKA_* or, on a developer's machine, the local stack's administrator."""
    settings = PlatformSettings()
    access = settings.kafka
    if not access.username:
        from utfall_platform.local.kafka import local_admin

        access = local_admin(access.bootstrap) or access
    return KafkaAccess(bootstrap, access.username, access.password) if bootstrap else access


async def create_key(
    kafka: KafkaAccess,
    role: str,
    provider_id: str | None,
    municipality_code: str | None,
    funder: str | None,
    label: str,
    contract_ids: Sequence[str] = (),
    register_id: str | None = None,
) -> dict[str, object]:
    await ensure_topics(kafka)
    if provider_id is not None:
        registry = ProviderRegistry(kafka)
        await registry.load()
        if registry.active(provider_id) is None:
            raise AdminError(
                f"provider {provider_id} is not registered (utfall-admin providers add) or is retired"
            )
    new = generate_key(
        role,  # type: ignore[arg-type]
        now=SystemClock().now(),
        provider_id=provider_id,
        municipality_code=municipality_code,
        funder=funder,
        label=label,
        contract_ids=contract_ids,
        register_id=register_id,
    )
    await publish_keys(kafka, [new.record])
    return {
        "key_id": new.record.key_id,
        "role": role,
        "provider_id": provider_id,
        "municipality_code": municipality_code,
        "funder": funder,
        "contract_ids": new.record.contract_ids,
        "register_id": register_id,
        "key": new.secret,
    }


async def _store(kafka: KafkaAccess) -> KeyStore:
    store = KeyStore(kafka)
    await store.load()
    return store


async def list_keys(kafka: KafkaAccess) -> list[dict[str, object]]:
    store = await _store(kafka)
    return [
        {
            "key_id": k.key_id,
            "role": k.role,
            "provider_id": k.provider_id,
            "municipality_code": k.municipality_code,
            "funder": k.funder,
            "contract_ids": k.contract_ids,
            "label": k.label,
            "revoked": k.revoked_at is not None,
        }
        for k in store.keys.values()
    ]


async def revoke_key(kafka: KafkaAccess, key_id: str) -> bool:
    store = await _store(kafka)
    key = store.keys.get(key_id)
    if key is None:
        return False
    await publish_keys(kafka, [key.model_copy(update={"revoked_at": SystemClock().now()})])
    return True


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


async def stored_version(database_url: str, definition: ContractDefinitionV1, timeout: float) -> int | None:
    """The version the contracts service stored this very definition as, waiting up to `timeout` seconds."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            version = await conn.fetchval(
                "SELECT max(version) FROM contracts.contract_versions WHERE contract_id = $1 "
                "AND definition = $2::jsonb",
                definition.contract_id,
                definition.model_dump_json(),
            )
            if version is not None or asyncio.get_running_loop().time() > deadline:
                return int(version) if version is not None else None
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def load_contract(kafka: KafkaAccess, definition: ContractDefinitionV1) -> None:
    producer = AIOKafkaProducer(**kafka.client_options(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(
            CONTRACT_COMMANDS, definition.model_dump_json().encode(), key=definition.contract_id.encode()
        )
    finally:
        await producer.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="utfall-admin", description=__doc__)
    parser.add_argument("--bootstrap", default=None, help="Kafka bootstrap (default UTFALL_KAFKA_BOOTSTRAP)")
    sub = parser.add_subparsers(dest="command", required=True)
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, choices=list(ROLES))
    create.add_argument("--provider-id")
    create.add_argument("--municipality-code")
    create.add_argument("--funder")
    create.add_argument(
        "--contract-id", action="append", default=[], dest="contract_ids", help="an assessor's contract"
    )
    create.add_argument("--register-id", help="a register holder's register (register keys)")
    create.add_argument("--label", default="")
    create.add_argument("--json", action="store_true")
    keys.add_parser("list", help="list keys (never secrets)")
    revoke = keys.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    contracts = sub.add_parser("contracts", help="contracts").add_subparsers(dest="action", required=True)
    load = contracts.add_parser("load", help="create or amend a contract from a YAML file")
    load.add_argument("path", type=Path)
    load.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="seconds to wait for the contracts service to store it (0: do not)",
    )
    providers = sub.add_parser("providers", help="the provider registry").add_subparsers(
        dest="action", required=True
    )
    add = providers.add_parser("add", help="register a provider, or change its registration")
    add.add_argument("provider_id")
    add.add_argument("--name", required=True, help="display name shown on the public page")
    add.add_argument("--organisation-number", required=True, help="NNNNNN-NNNN")
    add.add_argument("--care-type", action="append", required=True, dest="care_types")
    add.add_argument("--unit", action="append", required=True, dest="units")
    providers.add_parser("list", help="every registered provider")
    retire = providers.add_parser(
        "retire", help="retire a provider: its keys, its Kafka principal and its events are refused"
    )
    retire.add_argument("provider_id")
    kafka_access = providers.add_parser(
        "kafka-access",
        help="create or rotate the provider's Kafka principal (writes care.events.raw.v1.<id> only); "
        "the password is shown once",
    )
    kafka_access.add_argument("provider_id")
    sub.add_parser(
        "rebuild", help="drop the measures projection and replay care.events.v1 (stop measures first)"
    )
    registers = sub.add_parser("registers", help="register holders").add_subparsers(
        dest="action", required=True
    )
    register_access = registers.add_parser(
        "kafka-access",
        help="create or rotate the register's Kafka principal (writes registers.extracts.raw.v1.<id>, reads "
        "registers.receipts.v1.<id>); the password is shown once",
    )
    register_access.add_argument("register_id")
    kafka_cmd = sub.add_parser("kafka", help="the cluster's topics, principals and ACLs").add_subparsers(
        dest="action", required=True
    )
    kafka_cmd.add_parser(
        "setup",
        help="create the topics, one SCRAM principal per service (passwords from "
        "UTFALL_KAFKA_PASSWORD_<SERVICE>) and their ACLs; idempotent",
    )
    args = parser.parse_args(argv)
    kafka = operator_access(args.bootstrap)

    if args.command == "providers":
        try:
            if args.action == "add":
                registration = ProviderRegistrationV1(
                    provider_id=args.provider_id,
                    display_name=args.name,
                    organisation_number=args.organisation_number,
                    care_types=args.care_types,
                    units=args.units,
                )
                print(asyncio.run(register_provider(kafka, registration)).model_dump_json())
            elif args.action == "list":
                for provider in asyncio.run(list_providers(kafka)):
                    print(provider.model_dump_json())
            elif args.action == "kafka-access":
                access = asyncio.run(provider_kafka_access(kafka, args.provider_id))
                print(
                    json.dumps(
                        {
                            "bootstrap": access.bootstrap,
                            "security_protocol": "SASL_PLAINTEXT",
                            "sasl_mechanism": "SCRAM-SHA-512",
                            "username": access.username,
                            "password": access.password,
                            "topic": raw_topic(args.provider_id).name,
                        }
                    )
                )
                print("(this is the only time the password is shown; store it now)", file=sys.stderr)
            else:
                retired = asyncio.run(retire_provider(kafka, args.provider_id))
                print(f"retired {retired.provider_id}")
        except ValidationError as exc:
            raise SystemExit(f"utfall-admin: not a valid provider: {describe(exc, limit=20)}") from None
        except AdminError as exc:
            raise SystemExit(f"utfall-admin: {exc}") from None
    elif args.command == "registers":
        try:
            access = asyncio.run(register_kafka_access(kafka, args.register_id))
        except AdminError as exc:
            raise SystemExit(f"utfall-admin: {exc}") from None
        print(
            json.dumps(
                {
                    "bootstrap": access.bootstrap,
                    "security_protocol": "SASL_PLAINTEXT",
                    "sasl_mechanism": "SCRAM-SHA-512",
                    "username": access.username,
                    "password": access.password,
                    "topic": register_raw_topic(args.register_id).name,
                    "receipts_topic": register_receipts_topic(args.register_id).name,
                    "consumer_group_prefix": f"register-{args.register_id}-",
                }
            )
        )
        print("(this is the only time the password is shown; store it now)", file=sys.stderr)
    elif args.command == "keys" and args.action == "create":
        try:
            out = asyncio.run(
                create_key(
                    kafka,
                    args.role,
                    args.provider_id,
                    args.municipality_code,
                    args.funder,
                    args.label,
                    args.contract_ids,
                    args.register_id,
                )
            )
        except (ValueError, AdminError) as exc:
            raise SystemExit(f"utfall-admin: {exc}") from None
        if args.json:
            print(json.dumps(out))
        else:
            print(
                f"key id: {out['key_id']}\nrole:   {out['role']}\nkey:    {out['key']}\n"
                "(this is the only time the key is shown; store it now)"
            )
    elif args.command == "keys" and args.action == "list":
        for k in asyncio.run(list_keys(kafka)):
            print(json.dumps(k))
    elif args.command == "keys" and args.action == "revoke":
        if not asyncio.run(revoke_key(kafka, args.key_id)):
            raise SystemExit(f"utfall-admin: no key {args.key_id}")
        print(f"revoked {args.key_id}")
    elif args.command == "contracts":
        try:
            definition = read_contract(args.path)
        except AdminError as exc:
            raise SystemExit(f"utfall-admin: {exc}") from None
        asyncio.run(load_contract(kafka, definition))
        print(f"sent contract {definition.contract_id} to {CONTRACT_COMMANDS}", flush=True)
        if args.wait > 0:
            database_url = PlatformSettings().database_url.get_secret_value()
            version = asyncio.run(stored_version(database_url, definition, args.wait))
            if version is None:
                raise SystemExit(
                    f"utfall-admin: contract {definition.contract_id} was not stored within {args.wait:g} s; "
                    f"is the contracts service running? Its reasons for a refusal are on contracts.deadletter.v1"
                )
            print(f"stored contract {definition.contract_id} as version {version}")
    elif args.command == "kafka":
        try:
            passwords = service_passwords(os.environ)
        except AdminError as exc:
            raise SystemExit(f"utfall-admin: {exc}") from None
        asyncio.run(KafkaProvisioner(kafka).provision_services(passwords))
        print(f"topics, principals and ACLs in place for {', '.join(sorted(passwords))}")
    elif args.command == "rebuild":
        env = {**os.environ, **kafka.env()}
        raise SystemExit(subprocess.call([sys.executable, "-m", "utfall_measures.rebuild"], env=env))
