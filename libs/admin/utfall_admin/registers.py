"""Register holders' own Kafka principals (a register is known by its key)."""

from __future__ import annotations

from utfall_platform.kafka_access import KafkaAccess
from utfall_platform.kafka_acl import KafkaProvisioner, new_password

from .errors import AdminError
from .keys import key_store


async def register_kafka_access(kafka: KafkaAccess, register_id: str) -> KafkaAccess:
    """Create (or rotate) a register's Kafka principal: it may write its own raw topic and read its own
    receipts, nothing else."""
    keys = (await key_store(kafka)).keys.values()
    if not any(k.role == "register" and k.register_id == register_id and k.revoked_at is None for k in keys):
        raise AdminError(
            f"register {register_id} has no active key (utfall-admin keys create --role register)"
        )
    return await KafkaProvisioner(kafka).provision_register(register_id, new_password())
