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
