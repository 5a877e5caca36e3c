#!/usr/bin/env bash
# Authenticated handshakes per second on Eddy's listeners: plain TCP (the baseline), TLS
# with the server certificate + HMAC password, TLS 1.2 PSK (PSK-AES128-CBC-SHA, Tencent's C
# SDK) and DTLS 1.2 PSK + CoAP authentication. One hub on loopback, eddy-handshakes as the
# client; every connection is a full handshake that ends in an accepted CONNACK or a CoAP
# token.
#
#   benches/handshakes.sh                       release build, 4 workers, 10 s per mode
#   CONCURRENCY=8 DURATION=5s PROFILE=dev benches/handshakes.sh
#   STRICT=1 …   exit non-zero unless every mode completed handshakes without a failure
#                (scripts/test runs it so, as a smoke test of the harness)
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$EDDY_ROOT"
ensure_build_tools

profile=${PROFILE:-release}
concurrency=${CONCURRENCY:-4}
duration=${DURATION:-10s}
log "building eddy and eddy-handshakes ($profile)"
# For the dev profile, the same targets as scripts/test builds (the same features, so
# nothing is rebuilt when it runs this as a smoke test).
targets=--bins
[ "$profile" = dev ] && targets=--all-targets
cargo build --workspace "$targets" --profile "$profile" >&2
bin_dir=$CARGO_TARGET_DIR/$([ "$profile" = dev ] && echo debug || echo "$profile")

work=$(mktemp -d)
trap 'kill "$hub" 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/eddy.toml" <<TOML
data-dir = "$work/data"
[api]
listen = "127.0.0.1:0"
[mqtt]
listen = "127.0.0.1:0"
tls-listen = "127.0.0.1:0"
ws-listen = ""
wss-listen = ""
device-connect-interval = "0s"
auth-failure-limit = 0
[coap]
dtls-listen = "127.0.0.1:0"
[log]
level = "warn"
TOML
"$bin_dir/eddy" serve --config "$work/eddy.toml" > "$work/out" 2> "$work/log" &
hub=$!
for _ in $(seq 600); do
  grep -q '^eddy: api listening' "$work/out" && break
  kill -0 "$hub" || { cat "$work/log" >&2; exit 1; }
  sleep 0.2
done
port_of() { sed -n "s/^eddy: $1 listening on .*:\([0-9]*\)$/\1/p" "$work/out"; }
endpoint=$(sed -n 's/^eddy: api listening on //p' "$work/out")
eddy() { "$bin_dir/eddy" --config "$work/eddy.toml" "$@" --endpoint "$endpoint"; }

psk=$(printf 'handshake-bench!' | base64)
pid=$(eddy product create handshakes --json | json_product_id)
for i in $(seq 0 $((concurrency - 1))); do
  eddy device create "$pid" "hs$i" --psk "$psk" --json > /dev/null
done

printf '\n| mode | handshakes/s | p50 ms | p99 ms | failed |\n|---|---|---|---|---|\n'
bad=0
for mode in tcp tls tls-psk dtls; do
  case $mode in
    tcp) port=$(port_of mqtt) ;;
    tls | tls-psk) port=$(port_of mqtt-tls) ;;
    dtls) port=$(port_of coap-dtls) ;;
  esac
  "$bin_dir/eddy-handshakes" --mode "$mode" --port "$port" --product-id "$pid" --psk "$psk" \
    --ca "$work/data/tls/ca.pem" --concurrency "$concurrency" --duration "$duration" --json |
    python3 -c '
import json, sys
r = json.load(sys.stdin)
print("| %s | %s | %.2f | %.2f | %d |" % (sys.argv[1], format(round(r["per_sec"]), ","), r["p50_ms"], r["p99_ms"], r["failed"]))
if r["failed"]:
    print("  last error:", r["last_error"], file=sys.stderr)
sys.exit(1 if r["failed"] or not r["ok"] else 0)' "$mode" || bad=1
done
if [ "${STRICT:-0}" = 1 ] && [ "$bad" -ne 0 ]; then
  log "a handshake mode failed"
  exit 1
fi
