#!/usr/bin/env bash
# Starts a throwaway MariaDB server for the SQL destination tests.
#
#   scripts/start-mariadb.sh [DIR] [PORT]      (defaults: /var/tmp/eddy-mariadb 53306)
#
# Idempotent: installs Debian's `mariadb-server` package when missing, creates a data
# directory under DIR on first use, starts the server when it is not running, and waits
# until it accepts connections. It listens on 127.0.0.1 only and skips the grant tables
# (any local user, no password), so it must never hold anything of value.
#
# Prints exactly one line on stdout, ready for `export` or `env`:
#   EDDY_TEST_MYSQL_URL=mysql://root@127.0.0.1:PORT/mysql
# Everything else goes to stderr. Stop it with scripts/stop-mariadb.sh DIR.
set -euo pipefail
exec 3>&1 1>&2

DIR=${1:-/var/tmp/eddy-mariadb}
PORT=${2:-53306}
[[ $DIR == /* ]] || DIR="$PWD/$DIR"
log() { printf 'start-mariadb: %s\n' "$*"; }
die() {
    log "error: $*"
    exit 1
}
[[ $PORT =~ ^[0-9]+$ ]] && ((PORT >= 1 && PORT <= 65535)) || die "port must be 1-65535, got '$PORT'"
[[ $(id -u) -eq 0 ]] || die "run as root (the server itself runs as the 'mysql' user)"

if ! command -v mariadbd >/dev/null 2>&1; then
    log "installing mariadb-server"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server
fi
# Debian's package starts its own service on install; ours is separate and on its own port.

mkdir -p "$DIR"
chown mysql:mysql "$DIR"
if [[ ! -d $DIR/data/mysql ]]; then
    log "creating a data directory in $DIR/data"
    mkdir -p "$DIR/data"
    chown mysql:mysql "$DIR/data"
    mariadb-install-db --user=mysql --datadir="$DIR/data" --auth-root-authentication-method=normal \
        --skip-test-db >"$DIR/install.log" 2>&1 || die "mariadb-install-db failed: see $DIR/install.log"
fi

ping() { mariadb-admin --protocol=tcp -h 127.0.0.1 -P "$PORT" -u root ping >/dev/null 2>&1; }
if ! ping; then
    log "starting on 127.0.0.1:$PORT"
    # The server must not keep fd 3 (our caller's stdout, e.g. a $(…) pipe) open, or the
    # caller waits for it forever.
    mariadbd --user=mysql --datadir="$DIR/data" --socket="$DIR/mysqld.sock" \
        --pid-file="$DIR/mysqld.pid" --port="$PORT" --bind-address=127.0.0.1 \
        --skip-grant-tables --skip-name-resolve --innodb-flush-log-at-trx-commit=0 \
        --log-error="$DIR/mariadb.log" >/dev/null 2>&1 3>&- &
    for _ in $(seq 1 300); do
        ping && break
        sleep 0.2
    done
    ping || die "MariaDB did not start: see $DIR/mariadb.log"
fi
echo "EDDY_TEST_MYSQL_URL=mysql://root@127.0.0.1:$PORT/mysql" >&3
