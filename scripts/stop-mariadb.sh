#!/usr/bin/env bash
# Stops the MariaDB server scripts/start-mariadb.sh started in DIR.
set -euo pipefail
DIR=${1:-/var/tmp/eddy-mariadb}
[[ -f $DIR/mysqld.pid ]] || exit 0
kill "$(cat "$DIR/mysqld.pid")" 2>/dev/null || true
