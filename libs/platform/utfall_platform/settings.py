"""Settings shared by every service, read from `UTFALL_*` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr
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
