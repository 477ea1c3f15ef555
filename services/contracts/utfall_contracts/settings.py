from __future__ import annotations

from pathlib import Path

from utfall_platform.local.paths import repo_root
from utfall_platform.settings import PlatformSettings


class ContractsSettings(PlatformSettings):
    port: int = 8083
    contracts_dir: Path = repo_root() / "deploy" / "contracts"
    clock_offset_days: float = 0.0
    metrics_sample_seconds: float = 10.0
