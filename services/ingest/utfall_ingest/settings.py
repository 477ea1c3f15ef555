from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr

from utfall_platform.settings import PeopleSettings

DEV_PSEUDONYM_KEY = "utfall-local-development-key-not-for-production"


class IngestSettings(PeopleSettings):  # providers' staff may upload as themselves
    SERVICE: ClassVar[str] = "ingest"  # its Kafka principal and ACLs (utfall_platform.kafka_acl)
    port: int = 8081
    pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)
    pseudonym_key_version: str = "v1"
    # A private JWK Set (JSON) that opens person_id values providers sealed to ingest (utfall_events.sealed);
    # its public half is served at GET /v1/keys/person-id. Unset: sealed values are refused.
    person_id_keys: SecretStr | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_register_body_bytes: int = 64 * 1024 * 1024  # a national extract: 100,000 rows as JSON is ~20 MB
    max_batch: int = 1000
    hold_days: int = 7
    clock_offset_days: float = 0.0
