# Shared helpers for scripts/run, scripts/test and .ci/run. Source it; do not run it.
#
# Each ensure_* function installs what is missing (Debian packages through apt-get, Python
# packages into a virtualenv) and does nothing when it is already there.

EDDY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$EDDY_ROOT/target}

log() { printf 'eddy-scripts: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

_apt_updated=0
# ensure_apt PACKAGE…: installs the Debian packages that are not installed yet.
ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$_apt_updated" -eq 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq >&2
    _apt_updated=1
  fi
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

# ensure_rust: Rust 1.95 (the workspace sets rust-version = "1.95") must be installed.
ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    log "cargo is not installed. Install rustup (https://rustup.rs), then run this again:"
    log "  rustup toolchain install 1.95 && rustup default 1.95"
    exit 1
  fi
  # The built-in destination plugins are Wasm components built with the hub.
  if command -v rustup >/dev/null 2>&1 \
    && ! rustup target list --installed | grep -qx wasm32-wasip2; then
    log "adding the wasm32-wasip2 target (built-in destination plugins)"
    rustup target add wasm32-wasip2 >&2
  fi
}

# ensure_build_tools: a C compiler and friends for crates that build C (SQLite, ring,
# librdkafka) and protoc for the Pulsar client's protocol definitions.
ensure_build_tools() {
  ensure_apt build-essential pkg-config ca-certificates protobuf-compiler libssl-dev
  ensure_rust
}

# ensure_python_env: a virtualenv with the Python test dependencies; prints its python.
ensure_python_env() {
  ensure_apt python3 python3-venv >/dev/null
  local venv=$CARGO_TARGET_DIR/py-venv
  local stamp=$venv/.requirements
  local req=$EDDY_ROOT/tests/python/requirements.txt
  if [ ! -x "$venv/bin/python" ]; then
    log "creating the Python test virtualenv in $venv"
    python3 -m venv "$venv" >&2
  fi
  if ! cmp -s "$req" "$stamp"; then
    log "installing Python test dependencies"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
    cp "$req" "$stamp"
  fi
  echo "$venv/bin/python"
}

# json_product_id: the ProductId in the JSON on stdin (`eddy product create --json`).
json_product_id() {
  python3 -c '
import json, sys
def find(v):
    if isinstance(v, dict):
        if "ProductId" in v: return v["ProductId"]
        for x in v.values():
            r = find(x)
            if r: return r
print(find(json.load(sys.stdin)))'
}
