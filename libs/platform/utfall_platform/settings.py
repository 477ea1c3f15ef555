"""Settings shared by every service, read from `UTFALL_*` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .kafka_access import KafkaAccess


class PlatformSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UTFALL_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    # The service's own Kafka principal (SASL/SCRAM-SHA-512); empty only for a broker without authentication.
    kafka_username: str = ""
    kafka_password: SecretStr = SecretStr("")
    # How often clients refresh topic metadata: a new provider's raw topic is consumed within this time.
    kafka_metadata_max_age_ms: int = 10_000
    # Names this deployment's consumer groups and outbox producers, so two stacks can share one Kafka
    # (tests do); empty in a normal deployment.
    instance: str = ""
    database_url: SecretStr = SecretStr("postgresql://utfall@127.0.0.1:5433/utfall")
    host: str = "127.0.0.1"
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    db_pool_min: int = 1
    db_pool_max: int = 8
    # Consumers: how many records one transaction takes at most, and how long a batch may wait to fill.
    consumer_max_records: int = 2000
    consumer_batch_timeout_ms: int = 50
    outbox_batch_size: int = 2000
    lag_sample_seconds: float = 5.0
    # How often an idle consumer checks that the database still holds the positions it committed (a failover
    # to a standby that was behind loses them; see TransactionalBatchConsumer.check_positions).
    position_check_seconds: float = 5.0
    # The cyclic collector's thresholds once started (Python's default: 700, 10, 10). A batch of 2,000 events
    # keeps tens of thousands of objects alive until it commits: at 700 allocations a collection, they were
    # promoted to the oldest generation and full collections ran every few batches (24-29 % of the time of
    # measures' domain code in a replay of a cohort, 8 % at 50,000). `UTFALL_GC_THRESHOLDS=[700,10,10]`
    # restores the default.
    gc_thresholds: tuple[int, int, int] = (50_000, 20, 10)

    @property
    def kafka(self) -> KafkaAccess:
        return KafkaAccess(
            self.kafka_bootstrap, self.kafka_username or None, self.kafka_password.get_secret_value() or None
        )

    def group_id(self, name: str) -> str:
        return f"utfall-{name}-{self.instance}" if self.instance else f"utfall-{name}"


class PeopleSettings(PlatformSettings):
    """People sign in through an OpenID Connect provider (off while no issuer is set). Any OIDC provider works:
    its discovery document gives the endpoints. See docs/architecture.md, "People and machines"."""

    oidc_issuer: str = ""
    oidc_client_id: str = "utfall-gateway"
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_audience: str = "utfall-gateway"  # the `aud` an access token for Utfall's APIs carries
    # Token claims that carry the role and the scope, if the IdP names them otherwise (JSON: {"role": "groups"}).
    oidc_claim_names: dict[str, str] = Field(default_factory=dict)
    # A session is refreshed, and a bearer token asked about, at the IdP this often: a disabled person or a
    # revoked token stops working within this time.
    oidc_revalidate_seconds: float = 20.0
    # clock skew allowed between the IdP and us when checking a token's times
    oidc_leeway_seconds: int = 30
