from __future__ import annotations

from typing import ClassVar

from utfall_platform.settings import PlatformSettings


class MeasuresSettings(PlatformSettings):
    SERVICE: ClassVar[str] = "measures"  # its Kafka principal and ACLs (utfall_platform.kafka_acl)
    port: int = 8082
    tick_seconds: float = 60.0  # how often pending facts whose window closed are re-evaluated
    clock_offset_days: float = 0.0
