from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr

from utfall_platform.settings import PeopleSettings


class GatewaySettings(PeopleSettings):
    SERVICE: ClassVar[str] = "gateway"  # its Kafka principal and ACLs (utfall_platform.kafka_acl)
    port: int = 8080
    # The gateway reads the *_read views only, through a read-only role.
    gateway_database_url: SecretStr = SecretStr("postgresql://utfall_gateway@127.0.0.1:5433/utfall")
    min_cell: int = 10
    # Every suppressed small cell must stay uncertain within an interval at least this wide to any reader of
    # every release (0: the same as min_cell). See docs/architecture.md, Privacy.
    protection_margin: int = 0
    results_cache_seconds: float = 1.0
    cors_origins: str = ""  # closed by default; comma-separated origins to open
    # Where the providers' pages send an uploaded sheet (ingest's POST /v1/aggregates, as the provider).
    ingest_url: str = "http://127.0.0.1:8081"
    # a preview of the next release is built (audit included: seconds of CPU) at most this often
    release_preview_seconds: float = 900.0
    # A command on a ledger (a dispute, a resolution, closing a period) is answered with its outcome when the
    # contracts service decides it within this long, else 202 with where to look.
    command_wait_seconds: float = 10.0
    # Webhook URLs that resolve to private, loopback or link-local addresses are refused unless this allows them
    # (the contracts service, which delivers, has the same setting).
    webhook_allow_private_addresses: bool = False
    # After a secret's rotation the previous one still signs deliveries for this long.
    webhook_rotation_overlap_hours: float = 24.0
    session_hours: float = 8.0
    # Where the IdP sends the browser back to (its origin); empty: the address the request came to.
    public_url: str = ""
    # The audit trail of every authenticated answer and act. Off only for `make bench`'s comparison of what it
    # costs; the gateway logs a warning at start when it is off.
    audit_trail_enabled: bool = True
    # The audit trail: entries older than this many whole months are removed (`utfall-admin audit prune`).
    audit_retention_months: int = 36
