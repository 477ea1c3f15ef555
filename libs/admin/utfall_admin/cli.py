"""`utfall-admin`: register providers, create and revoke API keys (a new key is printed once), give providers and
registers their own Kafka principals, load contracts, set up the cluster's topics and ACLs, rebuild the
measures projection, verify and prune the gateway's audit trail. One function per command; `main` parses and dispatches."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from utfall_events.auth import ROLES
from utfall_events.codec import describe
from utfall_events.registry import ProviderRegistrationV1
from utfall_events.topics import CONTRACT_COMMANDS, raw_topic, register_raw_topic, register_receipts_topic
from utfall_platform.kafka_access import KafkaAccess
from utfall_platform.kafka_acl import KafkaProvisioner
from utfall_platform.settings import PlatformSettings

from .access import client_settings, operator_access
from .cluster import service_passwords
from .contracts import load_contract, read_contract, stored_version
from .errors import AdminError
from .keys import create_key, list_keys, revoke_key
from .providers import list_providers, provider_kafka_access, register_provider, retire_provider
from .registers import register_kafka_access

SHOWN_ONCE = "(this is the only time the password is shown; store it now)"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="utfall-admin", description=__doc__)
    root.add_argument("--bootstrap", default=None, help="Kafka bootstrap (default UTFALL_KAFKA_BOOTSTRAP)")
    sub = root.add_subparsers(dest="command", required=True)

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
    keys.add_parser("revoke", help="revoke a key").add_argument("key_id")

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
    providers.add_parser(
        "retire", help="retire a provider: its keys, its Kafka principal and its events are refused"
    ).add_argument("provider_id")
    providers.add_parser(
        "kafka-access",
        help="create or rotate the provider's Kafka principal (writes care.events.raw.v1.<id> only); "
        "the password is shown once",
    ).add_argument("provider_id")

    registers = sub.add_parser("registers", help="register holders").add_subparsers(
        dest="action", required=True
    )
    registers.add_parser(
        "kafka-access",
        help="create or rotate the register's Kafka principal (writes registers.extracts.raw.v1.<id>, reads "
        "registers.receipts.v1.<id>); the password is shown once",
    ).add_argument("register_id")

    sub.add_parser(
        "rebuild", help="drop the measures projection and replay care.events.v1 (stop measures first)"
    )
    audit = sub.add_parser("audit", help="the gateway's audit trail").add_subparsers(
        dest="action", required=True
    )
    audit.add_parser("verify", help="check every hash chain; exit 1 naming the first broken entry of each")
    prune = audit.add_parser(
        "prune", help="remove whole months past retention (UTFALL_AUDIT_RETENTION_MONTHS)"
    )
    prune.add_argument("--keep-months", type=int, default=None)
    kafka = sub.add_parser("kafka", help="the cluster's topics, principals and ACLs").add_subparsers(
        dest="action", required=True
    )
    kafka.add_parser(
        "setup",
        help="create the topics, one SCRAM principal per service (passwords from "
        "UTFALL_KAFKA_PASSWORD_<SERVICE>) and their ACLs; idempotent",
    )
    return root


# --- one function per command ----------------------------------------------------------------------------
def providers_add(args: argparse.Namespace, kafka: KafkaAccess) -> None:
    try:
        registration = ProviderRegistrationV1(
            provider_id=args.provider_id,
            display_name=args.name,
            organisation_number=args.organisation_number,
            care_types=args.care_types,
            units=args.units,
        )
    except ValidationError as exc:
        raise AdminError(f"not a valid provider: {describe(exc, limit=20)}") from None
    print(asyncio.run(register_provider(kafka, registration)).model_dump_json())


def providers_list(args: argparse.Namespace, kafka: KafkaAccess) -> None:
    for provider in asyncio.run(list_providers(kafka)):
        print(provider.model_dump_json())


def providers_retire(args: argparse.Namespace, kafka: KafkaAccess) -> None:
    print(f"retired {asyncio.run(retire_provider(kafka, args.provider_id)).provider_id}")


def providers_kafka_access(args: argparse.Namespace, kafka: KafkaAccess) -> None:
    access = asyncio.run(provider_kafka_access(kafka, args.provider_id))
    print(json.dumps(client_settings(access, raw_topic(args.provider_id).name)))
    print(SHOWN_ONCE, file=sys.stderr)


def registers_kafka_access(args: argparse.Namespace, kafka: KafkaAccess) -> None:
    access = asyncio.run(register_kafka_access(kafka, args.register_id))
    settings = client_settings(
        access,
        register_raw_topic(args.register_id).name,
        receipts_topic=register_receipts_topic(args.register_id).name,
        consumer_group_prefix=f"register-{args.register_id}-",
    )
    print(json.dumps(settings))
    print(SHOWN_ONCE, file=sys.stderr)


def keys_create(args: argparse.Namespace, kafka: KafkaAccess) -> None:
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
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"key id: {out['key_id']}\nrole:   {out['role']}\nkey:    {out['key']}\n"
            "(this is the only time the key is shown; store it now)"
        )


def keys_list(args: argparse.Namespace, kafka: KafkaAccess) -> None:
    for k in asyncio.run(list_keys(kafka)):
        print(json.dumps(k))


def keys_revoke(args: argparse.Namespace, kafka: KafkaAccess) -> None:
    if not asyncio.run(revoke_key(kafka, args.key_id)):
        raise AdminError(f"no key {args.key_id}")
    print(f"revoked {args.key_id}")


def contracts_load(args: argparse.Namespace, kafka: KafkaAccess) -> None:
    definition = read_contract(args.path)
    asyncio.run(load_contract(kafka, definition))
    print(f"sent contract {definition.contract_id} to {CONTRACT_COMMANDS}", flush=True)
    if args.wait > 0:
        database_url = PlatformSettings().database_url.get_secret_value()
        version = asyncio.run(stored_version(database_url, definition, args.wait))
        if version is None:
            raise AdminError(
                f"contract {definition.contract_id} was not stored within {args.wait:g} s; is the contracts "
                "service running? Its reasons for a refusal are on contracts.deadletter.v1"
            )
        print(f"stored contract {definition.contract_id} as version {version}")


def kafka_setup(args: argparse.Namespace, kafka: KafkaAccess) -> None:
    passwords = service_passwords(os.environ)
    asyncio.run(KafkaProvisioner(kafka).provision_services(passwords))
    print(f"topics, principals and ACLs in place for {', '.join(sorted(passwords))}")


def rebuild(args: argparse.Namespace, kafka: KafkaAccess) -> None:
    env = {**os.environ, **kafka.env()}
    raise SystemExit(subprocess.call([sys.executable, "-m", "utfall_measures.rebuild"], env=env))


def audit(args: argparse.Namespace, kafka: KafkaAccess) -> None:
    """Run as the gateway's entrypoint, which owns the trail's rules (as `rebuild` runs measures')."""
    more = ["--keep-months", str(args.keep_months)] if getattr(args, "keep_months", None) is not None else []
    raise SystemExit(
        subprocess.call([sys.executable, "-m", "utfall_gateway.audit_admin", args.action, *more])
    )


COMMANDS: dict[tuple[str, str | None], Callable[[argparse.Namespace, KafkaAccess], None]] = {
    ("providers", "add"): providers_add,
    ("providers", "list"): providers_list,
    ("providers", "retire"): providers_retire,
    ("providers", "kafka-access"): providers_kafka_access,
    ("registers", "kafka-access"): registers_kafka_access,
    ("keys", "create"): keys_create,
    ("keys", "list"): keys_list,
    ("keys", "revoke"): keys_revoke,
    ("contracts", "load"): contracts_load,
    ("kafka", "setup"): kafka_setup,
    ("rebuild", None): rebuild,
    ("audit", "verify"): audit,
    ("audit", "prune"): audit,
}


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    command = COMMANDS[(args.command, getattr(args, "action", None))]
    try:
        command(args, operator_access(args.bootstrap))
    except AdminError as exc:
        raise SystemExit(f"utfall-admin: {exc}") from None


if __name__ == "__main__":
    main()
