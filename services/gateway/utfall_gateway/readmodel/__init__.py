"""The gateway's read models: every query it makes of the `*_read` views the services publish, one module
per concern. Routes decide who may see what and shape answers; `domain/` computes over what is fetched; the
SQL lives here only."""

from typing import Any

Pool = Any  # an asyncpg pool (the gateway's read-only role)
Row = Any  # an asyncpg record: read by column name
