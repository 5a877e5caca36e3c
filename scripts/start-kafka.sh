#!/usr/bin/env bash
# Starts a throwaway Kafka-compatible broker (tansu, in-memory storage) for the Kafka
# destination's tests and benchmarks.
#
#   scripts/start-kafka.sh [DIR] [PORT]      (defaults: /var/tmp/eddy-kafka 59092)
#
# Idempotent: installs tansu (`cargo install tansu --features dynostore`, ~20 min on two
# cores, once per machine: into $EDDY_TOOLS, default /var/tmp/eddy-tools) when it is not
# on PATH, starts the broker on 127.0.0.1:PORT when nothing answers there, and waits until
# it accepts connections. Its storage is memory: a restart starts empty.
#
# Prints exactly one line on stdout, ready for `export` or `env`:
#   EDDY_TEST_KAFKA=127.0.0.1:PORT
# Everything else goes to stderr. Stop it with scripts/stop-kafka.sh DIR.
set -euo pipefail
exec 3>&1 1>&2

DIR=${1:-/var/tmp/eddy-kafka}
PORT=${2:-59092}
TOOLS=${EDDY_TOOLS:-/var/tmp/eddy-tools}
TANSU_VERSION=0.6.0
log() { printf 'start-kafka: %s\n' "$*"; }
die() {
    log "error: $*"
    exit 1
}
[[ $PORT =~ ^[0-9]+$ ]] && ((PORT >= 1 && PORT <= 65535)) || die "port must be 1-65535, got '$PORT'"

tansu=$(command -v tansu || true)
[[ -n $tansu ]] || tansu=$TOOLS/bin/tansu
if [[ ! -x $tansu ]]; then
    log "installing tansu $TANSU_VERSION into $TOOLS (cargo install, ~20 min on two cores)"
    # Its own temporary build directory, not the caller's CARGO_TARGET_DIR.
    env -u CARGO_TARGET_DIR cargo install tansu --version "$TANSU_VERSION" \
        --features dynostore --locked --root "$TOOLS" ||
        die "cargo install tansu failed"
fi

answers() { (exec 9<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
mkdir -p "$DIR"
if ! answers; then
    log "starting tansu on 127.0.0.1:$PORT"
    # The broker must not keep fd 3 (our caller's stdout, e.g. a $(…) pipe) open.
    "$tansu" broker --listener-url "tcp://127.0.0.1:$PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$PORT" \
        --storage-engine memory://tansu/ >"$DIR/tansu.log" 2>&1 3>&- &
    echo $! >"$DIR/tansu.pid"
    for _ in $(seq 1 300); do
        answers && break
        kill -0 "$(cat "$DIR/tansu.pid")" 2>/dev/null || die "tansu exited: see $DIR/tansu.log"
        sleep 0.2
    done
    answers || die "tansu did not start: see $DIR/tansu.log"
fi
echo "EDDY_TEST_KAFKA=127.0.0.1:$PORT" >&3
