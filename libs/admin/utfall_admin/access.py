"""Whose Kafka credentials the tool uses."""

from __future__ import annotations

from utfall_platform.kafka_access import KafkaAccess
from utfall_platform.settings import PlatformSettings


def operator_access(bootstrap: str | None) -> KafkaAccess:
    """The operator's Kafka access: UTFALL_KAFKA_* or, on a developer's machine, the local stack's administrator."""
    settings = PlatformSettings()
    access = settings.kafka
    if not access.username:
        from utfall_platform.local.kafka import local_admin

        access = local_admin(access.bootstrap) or access
    return KafkaAccess(bootstrap, access.username, access.password) if bootstrap else access


def client_settings(access: KafkaAccess, topic: str, **more: str) -> dict[str, str | None]:
    """What a provider's or register's own client needs, printed once with its new password."""
    return {
        "bootstrap": access.bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "username": access.username,
        "password": access.password,
        "topic": topic,
        **more,
    }
