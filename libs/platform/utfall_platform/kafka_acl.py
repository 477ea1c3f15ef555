"""Who may do what on Kafka: one SCRAM principal per service and per provider, and the ACLs that bind them.

The table `SERVICE_GRANTS` is the trust model of the topics (docs/architecture.md, "Trust model"): each service
reads and writes only the topics named here, under consumer groups and transactional ids that start with its
own name; a provider writes only its own raw topic. `provision` applies it with an administrator's credentials
(the local stack, the compose init job and the Kubernetes job run it); it is idempotent.

aiokafka has no API for SCRAM credentials or ACLs, so this module uses confluent-kafka's admin client (librdkafka),
in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from utfall_events import topics as t

from .kafka import ensure_topics, raw_topic_providers
from .kafka_access import KafkaAccess

SERVICES = ("ingest", "measures", "contracts", "gateway")
SCRAM_ITERATIONS = 8192


@dataclasses.dataclass(frozen=True, slots=True)
class Grants:
    """Topics a principal reads, topics it writes (a writer also reads its own topics back: the outbox relay
    recovers from them), topic prefixes it reads, and the prefix of its consumer groups and transactional ids."""

    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    read_prefixes: tuple[str, ...] = ()
    write_prefixes: tuple[str, ...] = ()
    id_prefix: str | None = None

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.reads, *self.writes)))


SERVICE_GRANTS: Mapping[str, Grants] = {
    "ingest": Grants(
        reads=(t.API_KEYS, t.PROVIDER_REGISTRY),
        read_prefixes=(t.RAW_TOPIC_PREFIX, t.REGISTER_RAW_PREFIX),
        writes=(t.CARE_EVENTS, t.CARE_EVENTS_REJECTED, t.AGGREGATES, t.REGISTERS),
        write_prefixes=(t.REGISTER_RECEIPTS_PREFIX,),
        id_prefix="utfall-ingest-",
    ),
    "measures": Grants(
        reads=(t.CARE_EVENTS, t.AGGREGATES, t.REGISTERS),
        writes=(t.OUTCOMES_V2, t.OUTCOMES, t.MEASURES_DEADLETTER),
        id_prefix="utfall-measures-",
    ),
    "contracts": Grants(
        reads=(t.CONTRACT_COMMANDS, t.CARE_EVENTS, t.OUTCOMES_V2, t.OUTCOMES),
        writes=(t.PAYMENTS, t.CONTRACTS_DEADLETTER),
        id_prefix="utfall-contracts-",
    ),
    "gateway": Grants(
        writes=(t.API_KEYS, t.PROVIDER_REGISTRY, t.CONTRACT_COMMANDS, t.RELEASES),
        id_prefix="utfall-gateway-",
    ),
    # A finance system following the payments (`python -m utfall_contracts.finance_consumer`).
    "finance": Grants(reads=(t.PAYMENTS,), id_prefix="finance-"),
}


def provider_principal(provider_id: str) -> str:
    return f"provider-{provider_id}"


def provider_grants(provider_id: str) -> Grants:
    return Grants(writes=(t.raw_topic(provider_id).name,))


def register_principal(register_id: str) -> str:
    return f"register-{register_id}"


def register_grants(register_id: str) -> Grants:
    """A register holder writes its own raw topic and reads its own receipts (from its own consumer groups)."""
    return Grants(
        reads=(t.register_receipts_topic(register_id).name,),
        writes=(t.register_raw_topic(register_id).name,),
        id_prefix=f"{register_principal(register_id)}-",
    )


def _binding(
    principal: str, kind: ResourceType, name: str, pattern: ResourcePatternType, operation: AclOperation
) -> AclBinding:
    return AclBinding(kind, name, pattern, f"User:{principal}", "*", operation, AclPermissionType.ALLOW)


def acl_bindings(principal: str, grants: Grants, *, readable_writes: bool = True) -> list[AclBinding]:
    literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    topic, group, txn = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
    out: list[AclBinding] = []
    for name in grants.reads:
        out += [
            _binding(principal, topic, name, literal, op) for op in (AclOperation.READ, AclOperation.DESCRIBE)
        ]
    for name in grants.writes:
        ops = (AclOperation.WRITE, AclOperation.DESCRIBE) + ((AclOperation.READ,) if readable_writes else ())
        out += [_binding(principal, topic, name, literal, op) for op in ops]
    for prefix in grants.read_prefixes:
        out += [
            _binding(principal, topic, prefix, prefixed, op)
            for op in (AclOperation.READ, AclOperation.DESCRIBE)
        ]
    for prefix in grants.write_prefixes:
        ops = (AclOperation.WRITE, AclOperation.DESCRIBE) + ((AclOperation.READ,) if readable_writes else ())
        out += [_binding(principal, topic, prefix, prefixed, op) for op in ops]
    if grants.id_prefix:
        out += [
            _binding(principal, group, grants.id_prefix, prefixed, op)
            for op in (AclOperation.READ, AclOperation.DESCRIBE)
        ]
        out += [
            _binding(principal, txn, grants.id_prefix, prefixed, op)
            for op in (AclOperation.WRITE, AclOperation.DESCRIBE)
        ]
    return out


def new_password() -> str:
    return secrets.token_urlsafe(24)


def _wait(futures: Mapping[Any, Future[Any]] | Iterable[Future[Any]]) -> None:
    for future in futures.values() if isinstance(futures, Mapping) else futures:
        future.result(timeout=30)


def _everything_of(principal: str) -> AclBindingFilter:
    """A filter for every ACL of `principal` (None matches any resource name and host)."""
    return AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        f"User:{principal}",
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )


async def usable(access: KafkaAccess, timeout: float = 30.0) -> KafkaAccess:
    """Return once `access` authenticates: a new credential is committed by the controller a moment before the
    broker that checks it has applied it, and whoever receives it may connect at once."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        client = AIOKafkaAdminClient(**access.client_options(), request_timeout_ms=5000)
        try:
            await client.start()
            return access
        except KafkaError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
        finally:
            await client.close()


class KafkaProvisioner:
    """Principals, ACLs and topics, with an administrator's access (a super user of the cluster)."""

    def __init__(self, admin: KafkaAccess) -> None:
        self.admin = admin

    def _client(self) -> AdminClient:
        config: dict[str, str | int | float | bool] = dict(self.admin.librdkafka_config())
        return AdminClient(config)

    async def upsert_users(self, passwords: Mapping[str, str]) -> None:
        def run() -> None:
            info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
            changes: list[UserScramCredentialAlteration] = [
                UserScramCredentialUpsertion(user, info, pw.encode()) for user, pw in passwords.items()
            ]
            if changes:
                client = self._client()  # kept alive until its futures are done
                _wait(client.alter_user_scram_credentials(changes))

        await asyncio.to_thread(run)

    async def delete_user(self, user: str) -> None:
        def run() -> None:
            change: list[UserScramCredentialAlteration] = [
                UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)
            ]
            try:
                client = self._client()
                _wait(client.alter_user_scram_credentials(change))
            except KafkaException as exc:
                if "RESOURCE_NOT_FOUND" not in str(exc) and "not found" not in str(exc).lower():
                    raise

        await asyncio.to_thread(run)

    async def create_acls(self, bindings: list[AclBinding]) -> None:
        def run() -> None:
            if bindings:
                client = self._client()
                _wait(client.create_acls(bindings))

        await asyncio.to_thread(run)

    async def delete_acls(self, principal: str) -> None:
        def run() -> None:
            client = self._client()
            _wait(client.delete_acls([_everything_of(principal)]))

        await asyncio.to_thread(run)

    async def describe_acls(self, principal: str) -> list[AclBinding]:
        def run() -> list[AclBinding]:
            client = self._client()
            return list(client.describe_acls(_everything_of(principal)).result(timeout=30))

        return await asyncio.to_thread(run)

    async def provision_services(self, passwords: Mapping[str, str]) -> None:
        """Topics, one principal per service (`passwords`: principal -> password) and their ACLs. Providers' raw
        topics that exist already get the raw retention stated in `utfall_events.topics`."""
        await ensure_topics(self.admin)
        await ensure_topics(self.admin, [t.raw_topic(p) for p in await raw_topic_providers(self.admin)])
        await self.upsert_users(passwords)
        for principal in passwords:
            grants = SERVICE_GRANTS[principal]
            await self.create_acls(acl_bindings(principal, grants))
        for principal, password in passwords.items():
            await usable(self.admin.as_user(principal, password))

    async def provision_provider(self, provider_id: str, password: str) -> KafkaAccess:
        """A provider's raw topic, its principal, and the one ACL that lets it write there (nothing else)."""
        principal = provider_principal(provider_id)
        await ensure_topics(self.admin, [t.raw_topic(provider_id)])
        await self.upsert_users({principal: password})
        await self.create_acls(acl_bindings(principal, provider_grants(provider_id), readable_writes=False))
        return await usable(self.admin.as_user(principal, password))

    async def provision_register(self, register_id: str, password: str) -> KafkaAccess:
        """A register's raw topic and receipts topic, its principal, and the ACLs that let it write the one and
        read the other (nothing else)."""
        principal = register_principal(register_id)
        await ensure_topics(
            self.admin, [t.register_raw_topic(register_id), t.register_receipts_topic(register_id)]
        )
        await self.upsert_users({principal: password})
        await self.create_acls(acl_bindings(principal, register_grants(register_id), readable_writes=False))
        return await usable(self.admin.as_user(principal, password))

    async def revoke_register(self, register_id: str) -> None:
        principal = register_principal(register_id)
        await self.delete_acls(principal)
        await self.delete_user(principal)

    async def revoke_provider(self, provider_id: str) -> None:
        """A retired provider can no longer authenticate nor write; its raw topic ages out (RAW_RETENTION_MS)."""
        principal = provider_principal(provider_id)
        await self.delete_acls(principal)
        await self.delete_user(principal)
