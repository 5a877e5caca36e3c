#!/usr/bin/env bash
# Stops the broker scripts/start-kafka.sh started in DIR.
set -euo pipefail
DIR=${1:-/var/tmp/eddy-kafka}
[[ -f $DIR/tansu.pid ]] || exit 0
kill "$(cat "$DIR/tansu.pid")" 2>/dev/null || true
rm -f "$DIR/tansu.pid"
