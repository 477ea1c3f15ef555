#!/bin/bash
# The standby's start: on the first one, a base backup of the primary set to stream from it as `standby`; then,
# unless UTFALL_POSTGRES_SYNC=off, the primary is told to confirm a commit only once this standby has it.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pg_basebackup -h postgres -U replicator -D "$PGDATA" --wal-method=stream --checkpoint=fast \
    --write-recovery-conf -d "host=postgres user=replicator application_name=standby"
  chmod 0700 "$PGDATA"
fi
if [ "${UTFALL_POSTGRES_SYNC}" != "off" ] && [ -f "$PGDATA/standby.signal" ]; then
  # in the background, once this standby streams: a primary waiting on a standby that is not there would hang
  (until pg_isready -q; do sleep 1; done
   PGPASSWORD="$POSTGRES_PASSWORD" psql -h postgres -U postgres -c \
     "ALTER SYSTEM SET synchronous_standby_names = 'standby'" -c "SELECT pg_reload_conf()") &
fi
exec postgres -c max_locks_per_transaction=1024  # at least the primary's
