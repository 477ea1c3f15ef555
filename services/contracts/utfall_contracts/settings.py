from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from utfall_platform.local.paths import repo_root
from utfall_platform.settings import PlatformSettings


class ContractsSettings(PlatformSettings):
    SERVICE: ClassVar[str] = "contracts"  # its Kafka principal and ACLs (utfall_platform.kafka_acl)
    port: int = 8083
    contracts_dir: Path = repo_root() / "deploy" / "contracts"
    clock_offset_days: float = 0.0
    metrics_sample_seconds: float = 10.0
    # Webhooks: how often deliverers look for due endpoints, how long a receiver may take to answer, the retry
    # schedule (doubling from the first delay up to the longest; a message is retried until it is delivered),
    # how many messages one endpoint gets in a round, how many endpoints are served at once, how long the
    # delivery log is kept.
    webhook_poll_seconds: float = 0.5
    webhook_timeout_seconds: float = 10.0
    webhook_first_retry_seconds: float = 10.0
    webhook_longest_retry_seconds: float = 3600.0
    webhook_batch: int = 500
    # An endpoint's acknowledged deliveries are committed (the cursor moved, the log written) at least this often.
    webhook_commit_seconds: float = 0.25
    webhook_concurrency: int = 4
    webhook_log_days: int = 90
    # Private, loopback and link-local receivers are refused unless this allows them (a test receiver on
    # 127.0.0.1; a finance system inside the installation's own network).
    webhook_allow_private_addresses: bool = False
    # A CA bundle to trust for receivers beside the system's (a test CA; a municipality's own PKI).
    webhook_ca_file: Path | None = None
