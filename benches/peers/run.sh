#!/usr/bin/env bash
# Side by side on loopback: Eddy (open-broker mode, anonymous), Mosquitto (Debian) and,
# with --rumqttd, rumqttd (`cargo install rumqttd`), each driven by the same eddy-bench
# scenarios, runs alternating between brokers; prints medians and Eddy/peer ratios.
#
#   benches/peers/run.sh                  Eddy and Mosquitto, 3 runs of 10 s per scenario
#   benches/peers/run.sh --rumqttd        rumqttd too (installed into the target dir)
#   RUNS=5 DURATION=20s benches/peers/run.sh
#
# No broker persists anything in these scenarios (QoS 0/1 to clean sessions): Mosquitto
# runs with persistence off, rumqttd has none, Eddy's durable log is untouched by them.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
ensure_build_tools
ensure_apt mosquitto
with_rumqttd=0
[ "${1:-}" = "--rumqttd" ] && with_rumqttd=1
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
cargo build --release --locked -p eddy -p eddy-benches --bins --manifest-path "$EDDY_ROOT/Cargo.toml" >&2
bin=$CARGO_TARGET_DIR/release
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Mosquitto: anonymous, no persistence, no queue limits that would drop before Eddy does.
cat > "$work/mosquitto.conf" <<CONF
listener 18830 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
max_inflight_messages 100
CONF
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!); mosquitto_pid=$!

# Eddy: anonymous generic clients on every topic; Tencent devices are not involved.
cat > "$work/eddy.toml" <<CONF
data-dir = "$work/eddy-data"
[api]
listen = "127.0.0.1:0"
[mqtt]
listen = "127.0.0.1:18831"
[mqtt.clients]
enabled = true
anonymous = true
[[mqtt.clients.acl]]
permission = "allow"
action = "all"
topics = ["#"]
[log]
level = "warn"
CONF
"$bin/eddy" serve --config "$work/eddy.toml" >"$work/eddy.out" 2>"$work/eddy.log" &
pids+=($!); eddy_pid=$!

brokers=("eddy:18831:$eddy_pid" "mosquitto:18830:$mosquitto_pid")
if [ "$with_rumqttd" -eq 1 ]; then
  peers=$CARGO_TARGET_DIR/peers
  if [ ! -x "$peers/bin/rumqttd" ]; then
    log "installing rumqttd (cargo install, a few minutes)"
    cargo install rumqttd --locked --root "$peers" >&2
  fi
  cat > "$work/rumqttd.toml" <<CONF
id = 0
[router]
id = 0
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:18832"
next_connection_delay_ms = 0
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 100
dynamic_filters = true
CONF
  "$peers/bin/rumqttd" --config "$work/rumqttd.toml" >"$work/rumqttd.log" 2>&1 &
  pids+=($!); brokers+=("rumqttd:18832:$!")
fi

# Every broker answers before the first run.
for b in "${brokers[@]}"; do
  port=${b#*:}; port=${port%%:*}
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
    sleep 0.1
  done
done

scenarios=(
  "--scenario fan-in --clients 8 --qos 0"
  "--scenario p2p --clients 8 --qos 0"
  "--scenario p2p --clients 8 --qos 1"
  "--scenario fan-out --clients 8 --qos 0"
)
results=$work/results.jsonl
for s in "${scenarios[@]}"; do
  for run in $(seq "$RUNS"); do
    for b in "${brokers[@]}"; do
      name=${b%%:*}; rest=${b#*:}; port=${rest%%:*}; pid=${rest#*:}
      log "$name: $s (run $run)"
      # shellcheck disable=SC2086
      "$bin/eddy-bench" --port "$port" $s --duration "$DURATION" --drain 10s \
        --broker-pid "$pid" --json | sed "s/^{/{\"broker\":\"$name\",\"args\":\"$s\",/" >>"$results"
    done
  done
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = {}
for r in rows:
    groups.setdefault(r["args"], {}).setdefault(r["broker"], []).append(r)
med = lambda xs: statistics.median(xs)
print("| scenario | broker | out msg/s | lost | p50 ms | p99 ms | CPU % | RSS MiB | ratio out/s |")
print("|---|---|---|---|---|---|---|---|---|")
for args, by in groups.items():
    eddy = med([r["out_per_s"] for r in by.get("eddy", [])]) if "eddy" in by else None
    for broker, rs in by.items():
        out = med([r["out_per_s"] for r in rs])
        lost = med([r["lost"] for r in rs])
        p50 = med([r["latency_ms"]["p50"] for r in rs])
        p99 = med([r["latency_ms"]["p99"] for r in rs])
        cpu = med([r["broker_cpu_percent"] or 0 for r in rs])
        rss = med([(r["broker_rss_kb"] or 0) / 1024 for r in rs])
        ratio = "—" if broker == "eddy" or not out else f"Eddy {eddy / out:.2f}×"
        print(f"| {args} | {broker} | {out:,.0f} | {lost:,.0f} | {p50:.2f} | {p99:.2f} | {cpu:.0f} | {rss:.0f} | {ratio} |")
PY
