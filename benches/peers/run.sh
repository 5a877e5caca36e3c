#!/usr/bin/env bash
# The whole side-by-side table, in one command: Eddy, Mosquitto (Debian) and rumqttd
# (`cargo install rumqttd`) on loopback, driven by the same eddy-bench scenarios, runs
# alternating between brokers; then Eddy's own rows (connect storm and idle connections as
# Tencent key devices, rule pipeline on vs off, a Kafka destination, TLS/TLS-PSK/DTLS
# handshakes). Installs what is missing (Mosquitto, rumqttd, tansu), builds the release
# binaries, prints Markdown tables with medians and Eddy/peer ratios, and keeps every raw
# JSON report.
#
#   benches/peers/run.sh                       3 runs of 10 s per scenario (≈25 min)
#   RUNS=5 DURATION=20s benches/peers/run.sh
#   PERF=1 …                                   also `perf record` Eddy in a fan-in run
#   BROKERS="eddy mosquitto" …                 a subset of the brokers
#   SKIP="messages connect idle" …             leave out parts: the message scenarios, the
#                                              connect storm, the idle soak, and the Eddy-only
#                                              tencent, rules, kafka, handshakes
#   OUT=DIR …                                  where reports go (default: a temp dir, printed)
#   QUICK=1 PROFILE=dev STRICT=1 …             the CI smoke: 1 run of 1 s each, small numbers,
#                                              the debug build scripts/test made; exit non-zero
#                                              on a count that does not add up or a failed run
#
# Scenarios (8 clients, 64-byte payloads unless said): fan-in QoS 0 with 20 publishers →
# 1 subscriber at full speed (the drop test), p2p QoS 0, p2p QoS 1, fan-out ×8 QoS 0, p2p
# QoS 1 at a fixed rate of 50 % of the slowest broker's p2p QoS 1 median (latency at half
# load), a connect storm (8 workers), and idle connections (as many as the file-descriptor
# limit allows, up to 100k) for memory per connection; for Eddy also the connect storm and
# DEVICES (2,000) idle connections as Tencent key devices.
#
# Persistence: none of these scenarios needs any (QoS 0/1 to clean sessions), so none is
# configured — Mosquitto `persistence false`, rumqttd has none, Eddy's durable log is not
# touched by clean sessions (it is by the rule pipeline's action queues). Otherwise each
# broker keeps its defaults; Mosquitto gets `set_tcp_nodelay true` (Eddy and rumqttd set
# TCP_NODELAY) and rumqttd no connection-rate delay and room for 100k connections.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../../scripts/lib.sh"
cd "$EDDY_ROOT"
ensure_build_tools
ensure_apt mosquitto python3

quick=${QUICK:-0}
profile=${PROFILE:-release}
RUNS=${RUNS:-$([ "$quick" = 1 ] && echo 1 || echo 3)}
DURATION=${DURATION:-$([ "$quick" = 1 ] && echo 1s || echo 10s)}
BROKERS=${BROKERS:-eddy mosquitto rumqttd}
SKIP=${SKIP:-}
skipped() { [[ " $SKIP " == *" $1 "* ]]; }
# Every connection needs a descriptor in the generator and in the broker.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
max_idle=$(($(ulimit -n) - 1000))
IDLE=${IDLE:-$([ "$quick" = 1 ] && echo 200 || echo $((max_idle < 100000 ? max_idle : 100000)))}
# Idle Tencent devices: each is created through the API first (one CLI call each).
DEVICES=${DEVICES:-$([ "$quick" = 1 ] && echo 100 || echo 2000)}

peers=$CARGO_TARGET_DIR/peers
if [[ " $BROKERS " == *" rumqttd "* ]] && [ ! -x "$peers/bin/rumqttd" ]; then
  log "installing rumqttd into $peers (cargo install, a few minutes)"
  # Not --locked: its lockfile pins a `metrics` release that no longer builds on rustc 1.95.
  CARGO_TARGET_DIR=$peers/build cargo install rumqttd --root "$peers" >&2
fi
log "building eddy and eddy-bench ($profile)"
# The same commands as benches/handshakes.sh (and, for dev, scripts/test), so one build
# serves all of them.
targets=--bins
[ "$profile" = dev ] && targets=--all-targets
cargo build --workspace "$targets" --profile "$profile" >&2
bin=$CARGO_TARGET_DIR/$([ "$profile" = dev ] && echo debug || echo "$profile")

out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/kafka/tansu.pid" ] && kill "$(cat "$work/kafka/tansu.pid")" 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
log "reports in $out"

start_eddy() {
  cat > "$work/eddy.toml" <<CONF
data-dir = "$work/eddy-data"
[api]
listen = "127.0.0.1:18880"
[mqtt]
listen = "127.0.0.1:18831"
# The Tencent-device rows reconnect the same devices in a loop: no per-device interval.
device-connect-interval = "0s"
tls-listen = ""
ws-listen = ""
wss-listen = ""
[mqtt.clients]
enabled = true
anonymous = true
[[mqtt.clients.acl]]
permission = "allow"
action = "all"
topics = ["#"]
[coap]
dtls-listen = ""
[log]
level = "warn"
${EDDY_EXTRA_CONFIG:-}
CONF
  "$bin/eddy" serve --config "$work/eddy.toml" > "$work/eddy.out" 2> "$work/eddy.log" &
  pids+=($!)
  eddy_pid=$!
}
start_mosquitto() {
  cat > "$work/mosquitto.conf" <<CONF
listener 18830 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
CONF
  mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 &
  pids+=($!)
  mosquitto_pid=$!
}
start_rumqttd() {
  cat > "$work/rumqttd.toml" <<CONF
id = 0
[router]
id = 0
max_connections = 100010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:18832"
next_connection_delay_ms = 0
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 20480
max_inflight_count = 100
dynamic_filters = true
CONF
  "$peers/bin/rumqttd" --quiet --config "$work/rumqttd.toml" > "$work/rumqttd.log" 2>&1 &
  pids+=($!)
  rumqttd_pid=$!
}
wait_port() {
  for _ in $(seq 300); do
    (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0
    sleep 0.1
  done
  log "nothing answers on port $1"
  exit 1
}

# Eddy's Kafka destination goes to a throwaway tansu (memory storage) of its own.
kafka=
if [[ " $BROKERS " == *" eddy "* ]] && ! skipped kafka; then
  kafka=$("$EDDY_ROOT/scripts/start-kafka.sh" "$work/kafka" 59192)
  kafka=${kafka#EDDY_TEST_KAFKA=}
  tansu=$(command -v tansu || echo "${EDDY_TOOLS:-/var/tmp/eddy-tools}/bin/tansu")
  "$tansu" topic create bench-kafka --broker "tcp://$kafka" --partitions 1 > /dev/null
  EDDY_EXTRA_CONFIG="[[destinations]]
name = \"bench-kafka\"
plugin = \"builtin:kafka\"
[destinations.grants]
kafka-brokers = \"$kafka\""
fi

# The fixed ports below must be free: a stray broker answering there would be measured.
for port in 18830 18831 18832 18880; do
  if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
    log "port $port is in use; stop whatever listens there first"
    exit 1
  fi
done

port_of() {
  case $1 in eddy) echo 18831 ;; mosquitto) echo 18830 ;; rumqttd) echo 18832 ;; esac
}
# restart NAME: stops the broker and starts a fresh one, so that its memory is measured
# from a clean heap (allocators keep what earlier runs freed). Eddy keeps its data dir.
restart() {
  local pid_var=${1}_pid
  kill "${!pid_var}" 2> /dev/null || true
  wait "${!pid_var}" 2> /dev/null || true
  "start_$1"
  wait_port "$(port_of "$1")"
  [ "$1" = eddy ] && wait_port 18880
  return 0
}

brokers=()
for b in $BROKERS; do
  case $b in
    eddy) start_eddy; wait_port 18831; wait_port 18880; brokers+=("eddy:18831:$eddy_pid") ;;
    mosquitto) start_mosquitto; wait_port 18830; brokers+=("mosquitto:18830:$mosquitto_pid") ;;
    rumqttd) start_rumqttd; wait_port 18832; brokers+=("rumqttd:18832:$rumqttd_pid") ;;
    *) log "unknown broker $b"; exit 1 ;;
  esac
done

results=$out/results.jsonl
: > "$results"
# bench NAME LABEL PORT PID ARGS…: one eddy-bench run, its JSON report tagged and kept.
bench() {
  local name=$1 label=$2 port=$3 pid=$4
  shift 4
  log "$name: $label"
  "$bin/eddy-bench" --port "$port" --broker-pid "$pid" --json "$@" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); r.update(broker=sys.argv[1], label=sys.argv[2]); print(json.dumps(r))' "$name" "$label" >> "$results"
}
# scenario LABEL ARGS…: RUNS runs on every broker, alternating.
scenario() {
  local label=$1
  shift
  for run in $(seq "$RUNS"); do
    for b in "${brokers[@]}"; do
      local name=${b%%:*} rest=${b#*:}
      bench "$name" "$label" "${rest%%:*}" "${rest#*:}" --duration "$DURATION" --drain 10s "$@"
    done
  done
}

pubs=$([ "$quick" = 1 ] && echo 4 || echo 20)
clients=$([ "$quick" = 1 ] && echo 2 || echo 8)
if [ "${PERF:-0}" = 1 ] && [[ " $BROKERS " == *" eddy "* ]]; then
  ensure_apt linux-perf
  perf record -F 499 -g -p "$eddy_pid" -o "$out/eddy-fan-in.perf" 2> /dev/null &
  perf_pid=$!
  bench eddy "perf: fan-in QoS 0" 18831 "$eddy_pid" --scenario fan-in --clients "$pubs" --qos 0 --duration "$DURATION" --drain 10s
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  perf report -i "$out/eddy-fan-in.perf" --no-children -g none --percent-limit 0.8 --stdio 2> /dev/null |
    grep -v '^#' | grep -v '^$' > "$out/eddy-fan-in.profile.txt" || true
fi
if ! skipped messages; then
  scenario "fan-in QoS 0, $pubs pubs → 1 sub" --scenario fan-in --clients "$pubs" --qos 0
  scenario "p2p QoS 0, $clients pairs" --scenario p2p --clients "$clients" --qos 0
  scenario "p2p QoS 1, $clients pairs" --scenario p2p --clients "$clients" --qos 1
  scenario "fan-out QoS 0, 1 pub → $clients subs" --scenario fan-out --clients "$clients" --qos 0
  # Half load: 50 % of the slowest broker's median p2p QoS 1 rate, the same for every broker.
  half=$(python3 - "$results" "p2p QoS 1, $clients pairs" "$clients" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    if r["label"] == sys.argv[2]:
        by.setdefault(r["broker"], []).append(r["out_per_s"])
slowest = min(statistics.median(v) for v in by.values())
print(f"{max(slowest * 0.5 / int(sys.argv[3]), 1.0):.0f}")
PY
  )
  scenario "p2p QoS 1 at 50 % load, $clients × $half/s" --scenario p2p --clients "$clients" --qos 1 --rate "$half"
fi
skipped connect || scenario "connect storm, $clients workers" --scenario connect --clients "$clients"
if ! skipped idle; then
  for b in "${brokers[@]}"; do
    name=${b%%:*}
    restart "$name"
    pid_var=${name}_pid
    bench "$name" "idle connections" "$(port_of "$name")" "${!pid_var}" --scenario idle --clients "$IDLE" \
      --spread-sources --duration 5s
  done
fi

# Eddy only: the rule pipeline, on vs off (the same JSON traffic; "on" subscribes to what a
# `SELECT * … WHERE` rule republishes), and a Kafka destination.
if [[ " $BROKERS " == *" eddy "* ]] && ! skipped rules; then
  eddy_cli() { "$bin/eddy" --config "$work/eddy.toml" "$@" --endpoint http://127.0.0.1:18880; }
  eddy_cli rule create bench_republish --sql "SELECT * FROM 'bench/in/+' WHERE temp > 30" \
    --action '{"republish":{"topic":"bench/ruled"}}' --disabled > /dev/null
  for run in $(seq "$RUNS"); do
    bench eddy "rules off: fan-in QoS 0, JSON" 18831 "$eddy_pid" --scenario fan-in --clients "$clients" \
      --qos 0 --json-payload --payload 128 --duration "$DURATION" --drain 10s
    eddy_cli rule enable bench_republish > /dev/null
    bench eddy "rules on: + SELECT … WHERE → republish" 18831 "$eddy_pid" --scenario fan-in \
      --clients "$clients" --qos 0 --json-payload --payload 128 --subscribe-to bench/ruled \
      --duration "$DURATION" --drain 30s
    eddy_cli rule disable bench_republish > /dev/null
  done
fi

# Eddy only: the same connection scenarios as Tencent key devices (HMAC password checked
# against the registry, online state recorded before the CONNACK).
if [[ " $BROKERS " == *" eddy "* ]] && ! skipped tencent; then
  eddy_cli() { "$bin/eddy" --config "$work/eddy.toml" "$@" --endpoint http://127.0.0.1:18880; }
  product=$(eddy_cli product create benchdevices --json | json_product_id)
  psk=$(printf 'eddy-bench-key!!' | base64)
  log "eddy: creating $DEVICES key devices"
  seq 0 $((DEVICES - 1)) | xargs -P 4 -I{} "$bin/eddy" --config "$work/eddy.toml" device create "$product" "bench{}" \
    --psk "$psk" --endpoint http://127.0.0.1:18880 > /dev/null
  for run in $(seq "$RUNS"); do
    bench eddy "connect storm, $clients workers, Tencent key devices" 18831 "$eddy_pid" --scenario connect \
      --clients "$clients" --duration "$DURATION" --product-id "$product" --psk "$psk"
  done
  restart eddy
  bench eddy "idle connections, Tencent key devices" 18831 "$eddy_pid" --scenario idle --clients "$DEVICES" \
    --spread-sources --duration 5s --product-id "$product" --psk "$psk"
fi

# Eddy only: MQTT → rule → Kafka through the whole hub. The generator publishes; the hub's
# own metric of rows delivered to the destination says when the last one reached Kafka.
if [ -n "$kafka" ]; then
  eddy_cli() { "$bin/eddy" --config "$work/eddy.toml" "$@" --endpoint http://127.0.0.1:18880; }
  eddy_cli rule create bench_kafka --sql "SELECT * FROM 'benchk/in/+' WHERE temp > 30" \
    --actions '[{"ckafka":{"instance":{"id":"ckafka-0001","name":"bench-kafka"},"topic":{"id":"topic-0001","name":"bench-kafka"},"region":"ap-guangzhou"}}]' > /dev/null
  for run in $(seq "$RUNS"); do
    log "eddy: MQTT → rule → Kafka (run $run)"
    python3 "$here/kafka_run.py" "$bin/eddy-bench" "$eddy_pid" "$DURATION" "$clients" >> "$results"
  done
fi

strict=()
[ "${STRICT:-0}" = 1 ] && strict=(--strict)
if ! python3 "$here/table.py" "${strict[@]}" "$results" | tee "$out/table.md"; then
  log "a run failed or its count did not add up (above)"
  exit 1
fi
if [ -f "$out/eddy-fan-in.profile.txt" ]; then log "Eddy's profile: $out/eddy-fan-in.profile.txt"; fi

if [[ " $BROKERS " == *" eddy "* ]] && ! skipped handshakes; then
  printf '\n### Eddy: Tencent-authenticated handshakes (benches/handshakes.sh)\n'
  PROFILE=$profile CONCURRENCY=$clients DURATION=$DURATION "$EDDY_ROOT/benches/handshakes.sh" |
    tee "$out/handshakes.md"
fi
