"""Every Postgres advisory lock Utfall takes, in one place, so that no two uses can collide.

Transaction locks on a text key use `pg_advisory_xact_lock(hashtextextended(<key>, <namespace>))`; the
namespaces below keep keys of different kinds apart. A lock on one name (a session lock, or the contract
definitions' transaction lock) uses a 32-bit number derived from that name.
"""

from __future__ import annotations

import zlib

# Transaction-lock namespaces (the seed of hashtextextended)
INGEST_SOURCE = 7  # a provider source's events are admitted one batch at a time
MEASURES_SUBJECT = 11  # a subject's episodes are re-folded one transaction at a time
AGGREGATE_PROVIDER = 17  # a provider's aggregated submissions are versioned one at a time
INGEST_REGISTER = 19  # a register's extracts are taken one at a time (which version of a row counts)
MEASURES_REGISTER_COVERAGE = 23  # a register's coverage re-folds one at a time
# Session-lock namespace (the seed of hashtextextended)
WEBHOOK_ENDPOINT = 29  # one deliverer per webhook endpoint across contracts' replicas


def session_lock(name: str) -> int:
    """A session lock's number: migrations of a schema, an outbox relay, the measures projection."""
    return zlib.crc32(name.encode())


def migration_lock(schema: str) -> int:
    return session_lock(f"utfall-migrate-{schema}")


MEASURES_PROJECTION = session_lock("utfall-measures-projection")  # shared while running, exclusive to rebuild
# A transaction lock: shared by every reconciliation that reads which contracts exist, exclusive to a new
# contract version (which also numbers versions one at a time)
CONTRACT_DEFINITIONS = session_lock("utfall-contract-definitions")
GATEWAY_RELEASE = session_lock(
    "utfall-gateway-release"
)  # releases are numbered one at a time, across replicas
