#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for eddy-store's conformance tests.
#
#   scripts/start-postgres.sh [DIR] [PORT]      (defaults: /var/tmp/eddy-pg 55432)
#
# Idempotent: installs Debian's `postgresql` package when no server binaries are present,
# creates a cluster under DIR on first use (data in DIR/data, log in DIR/postgres.log),
# starts it when it is not running, and waits until it accepts connections. The server
# listens on 127.0.0.1 only and trusts every local connection, so it must never hold
# anything of value; fsync is off because the data is disposable.
#
# Prints exactly one line on stdout, ready for `export` or `env`:
#   EDDY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:PORT/postgres
# Everything else goes to stderr. Stop it with scripts/stop-postgres.sh DIR.
set -euo pipefail

# Keep stdout for the one result line: everything else, ours and the tools', goes to stderr.
exec 3>&1 1>&2

DIR=${1:-/var/tmp/eddy-pg}
PORT=${2:-55432}
# pg_ctl and the socket setting need an absolute path.
[[ $DIR == /* ]] || DIR="$PWD/$DIR"
PGDATA_DIR="$DIR/data"
LOG_FILE="$DIR/postgres.log"

log() { printf 'start-postgres: %s\n' "$*"; }
die() {
    log "error: $*"
    exit 1
}

[[ $PORT =~ ^[0-9]+$ ]] && ((PORT >= 1 && PORT <= 65535)) || die "port must be 1-65535, got '$PORT'"
[[ $(id -u) -eq 0 ]] || die "run as root (the server itself runs as the 'postgres' user)"

# The newest installed server, or the one matching an existing cluster's major version.
find_bin() {
    local want=${1:-}
    if [[ -n $want ]]; then
        [[ -x /usr/lib/postgresql/$want/bin/postgres ]] && echo "/usr/lib/postgresql/$want/bin"
        return 0
    fi
    local found
    found=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null |
        sort -V | tail -n 1)
    [[ -n $found ]] && dirname "$found"
    return 0
}

BIN=$(find_bin)
if [[ -z $BIN ]] || ! id postgres >/dev/null 2>&1; then
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is unavailable"
    log "installing the postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y postgresql
    BIN=$(find_bin)
    [[ -n $BIN ]] || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb found"
fi
id postgres >/dev/null 2>&1 || die "the 'postgres' OS user does not exist"

as_postgres() { runuser -u postgres -- "$@"; }

if [[ -f $PGDATA_DIR/PG_VERSION ]]; then
    major=$(<"$PGDATA_DIR/PG_VERSION")
    BIN=$(find_bin "$major")
    [[ -n $BIN ]] || die "$PGDATA_DIR is a PostgreSQL $major cluster but that server is not installed"
else
    if [[ -e $PGDATA_DIR ]] && [[ -n $(ls -A "$PGDATA_DIR") ]]; then
        die "$PGDATA_DIR exists, is not empty and is not a PostgreSQL cluster; refusing to touch it"
    fi
    log "creating a throwaway cluster in $PGDATA_DIR with $BIN"
    mkdir -p "$PGDATA_DIR"
    chown postgres:postgres "$DIR" "$PGDATA_DIR"
    chmod 700 "$DIR" "$PGDATA_DIR"
    as_postgres test -w "$DIR" ||
        die "the postgres user cannot reach $DIR (a parent directory is closed to it)"
    as_postgres "$BIN/initdb" --pgdata="$PGDATA_DIR" --username=postgres --encoding=UTF8 \
        --locale=C.UTF-8 --auth=trust
    # Only loopback and the socket inside DIR are trusted; nothing else may connect at all.
    cat >"$PGDATA_DIR/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  trust
EOF
    socket_dir=${DIR//\'/\'\'}
    cat >>"$PGDATA_DIR/postgresql.conf" <<EOF

# Added by eddy scripts/start-postgres.sh: a disposable test server.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$socket_dir'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    chown postgres:postgres "$PGDATA_DIR/pg_hba.conf" "$PGDATA_DIR/postgresql.conf"
fi

if as_postgres "$BIN/pg_ctl" status --pgdata="$PGDATA_DIR" >/dev/null 2>&1; then
    # Line 4 of postmaster.pid is the port the running server really listens on.
    running_port=$(sed -n 4p "$PGDATA_DIR/postmaster.pid")
    if [[ $running_port != "$PORT" ]]; then
        log "note: server in $DIR is already running on port $running_port (not $PORT)"
        PORT=$running_port
    else
        log "server in $DIR is already running"
    fi
else
    log "starting the server on 127.0.0.1:$PORT (log: $LOG_FILE)"
    touch "$LOG_FILE"
    chown postgres:postgres "$LOG_FILE"
    # 3>&-: the server must not inherit the result pipe, or `$(start-postgres.sh)` would
    # wait for the server to exit before it returned.
    if ! as_postgres "$BIN/pg_ctl" start --pgdata="$PGDATA_DIR" --log="$LOG_FILE" --wait \
        --timeout=60 --options="-p $PORT" 3>&-; then
        tail -n 20 "$LOG_FILE" || true
        die "the server did not start (see $LOG_FILE)"
    fi
fi

ready=0
for _ in $(seq 1 120); do
    if "$BIN/pg_isready" --quiet --host=127.0.0.1 --port="$PORT" --username=postgres; then
        ready=1
        break
    fi
    sleep 0.5
done
((ready)) || die "server did not become ready on 127.0.0.1:$PORT within 60 s (see $LOG_FILE)"

log "ready"
echo "EDDY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$PORT/postgres" >&3
