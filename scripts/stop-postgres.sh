#!/usr/bin/env bash
# Stops the throwaway PostgreSQL server started by scripts/start-postgres.sh.
#
#   scripts/stop-postgres.sh [DIR]      (default: /var/tmp/eddy-pg)
#
# Idempotent: a cluster that is not running (or does not exist) is left as it is. The data
# stays in DIR; delete the directory to throw the cluster away.
set -euo pipefail

DIR=${1:-/var/tmp/eddy-pg}
[[ $DIR == /* ]] || DIR="$PWD/$DIR"
PGDATA_DIR="$DIR/data"

log() { printf 'stop-postgres: %s\n' "$*" >&2; }

if [[ ! -f $PGDATA_DIR/PG_VERSION ]]; then
    log "no cluster in $DIR; nothing to stop"
    exit 0
fi
major=$(<"$PGDATA_DIR/PG_VERSION")
PG_CTL="/usr/lib/postgresql/$major/bin/pg_ctl"
[[ -x $PG_CTL ]] || { log "error: $PG_CTL not found"; exit 1; }

if ! runuser -u postgres -- "$PG_CTL" status --pgdata="$PGDATA_DIR" >/dev/null 2>&1; then
    log "server in $DIR is not running"
    exit 0
fi
runuser -u postgres -- "$PG_CTL" stop --pgdata="$PGDATA_DIR" --mode=fast --wait >&2
log "stopped"
