"""How a client reaches Kafka: the bootstrap servers and the principal it authenticates as (SASL/SCRAM).

Every Kafka client in Utfall is built from one `KafkaAccess`, so no client can forget its credentials: aiokafka
clients take `client_options()`, FastStream brokers `security`, librdkafka tools (confluent-kafka's admin
client, kcat) `librdkafka_config()`. A broker without authentication is reached with no username.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLScram512

MECHANISM = "SCRAM-SHA-512"


def bootstrap_servers(bootstrap: str) -> list[str]:
    """`host:port[,host:port…]` as the list aiokafka takes (it splits a string, but not an element of a list, and
    FastStream hands it a list)."""
    return [server.strip() for server in bootstrap.split(",") if server.strip()]


@dataclasses.dataclass(frozen=True, slots=True)
class KafkaAccess:
    bootstrap: str
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)

    @property
    def principal(self) -> str:
        return f"User:{self.username}" if self.username else "User:ANONYMOUS"

    @property
    def security(self) -> BaseSecurity | None:
        if not self.username:
            return None
        return SASLScram512(username=self.username, password=self.password or "", use_ssl=False)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        return {"bootstrap_servers": bootstrap_servers(self.bootstrap), **parse_security(self.security)}

    def librdkafka_config(self) -> dict[str, str]:
        config = {"bootstrap.servers": self.bootstrap}
        if self.username:
            config.update(
                {
                    "security.protocol": "SASL_PLAINTEXT",
                    "sasl.mechanisms": MECHANISM,
                    "sasl.username": self.username,
                    "sasl.password": self.password or "",
                }
            )
        return config

    def as_user(self, username: str, password: str) -> KafkaAccess:
        return KafkaAccess(self.bootstrap, username, password)

    def env(self) -> dict[str, str]:
        """The `UTFALL_KAFKA_*` variables a service process reads this access from."""
        out = {"UTFALL_KAFKA_BOOTSTRAP": self.bootstrap}
        if self.username:
            out["UTFALL_KAFKA_USERNAME"] = self.username
            out["UTFALL_KAFKA_PASSWORD"] = self.password or ""
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterAccess:
    """An administrator's access to a cluster and the passwords of the service principals it provisioned."""

    admin: KafkaAccess
    passwords: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def bootstrap(self) -> str:
        return self.admin.bootstrap

    def principal(self, name: str) -> KafkaAccess:
        """The access of service `name` (the administrator's own on a broker without authentication)."""
        if not self.admin.username:
            return self.admin
        return self.admin.as_user(name, self.passwords[name])
