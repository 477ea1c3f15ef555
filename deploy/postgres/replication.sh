#!/bin/bash
# Run once by the primary's first start (docker-entrypoint-initdb.d): a replication role for the standby and the
# pg_hba line that lets it stream.
set -euo pipefail
psql -v ON_ERROR_STOP=1 -U postgres -c \
  "CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '${UTFALL_REPLICATION_PASSWORD}'"
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
