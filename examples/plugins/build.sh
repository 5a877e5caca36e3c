#!/usr/bin/env bash
# Builds the three example destination plugins into OUT_DIR:
#   OUT_DIR/rust_enrich.wasm    (cargo, wasm32-wasip2)
#   OUT_DIR/python_enrich.wasm  (componentize-py, from python-enrich/requirements.txt)
#   OUT_DIR/js_enrich.wasm      (jco + ComponentizeJS, from js-enrich/package.json)
#
# Usage: examples/plugins/build.sh OUT_DIR
#
# Tools it needs: cargo with the wasm32-wasip2 target, python3 (with venv), node and npm.
# componentize-py is installed into a venv and the npm packages into js-enrich/node_modules
# when missing. Environment:
#   EDDY_EXAMPLES_WORK  where the venv and Cargo's target dir live
#                       (default: OUT_DIR/.work)
#   PYTHON              the Python used to create the venv (default: python3)
#   CARGO               the cargo to use (default: cargo)
set -euo pipefail

die() {
    echo "examples/plugins/build.sh: error: $*" >&2
    exit 1
}

[ $# -eq 1 ] || die "usage: examples/plugins/build.sh OUT_DIR"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
wit="$root/sdk-wit/wit"
mkdir -p "$1" || die "cannot create $1"
out="$(cd "$1" && pwd)"
work="${EDDY_EXAMPLES_WORK:-$out/.work}"
mkdir -p "$work"

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH ($2)"
}

# --- Rust ------------------------------------------------------------------------------
build_rust() {
    local cargo="${CARGO:-cargo}"
    need "$cargo" "install Rust: https://rustup.rs"
    if command -v rustup >/dev/null 2>&1 &&
        ! rustup target list --installed | grep -qx wasm32-wasip2; then
        die "the wasm32-wasip2 target is not installed: rustup target add wasm32-wasip2"
    fi
    echo "==> rust-enrich (cargo)"
    # The host build's flags and wrappers are not for the guest.
    env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u RUSTC_WRAPPER -u RUSTC_WORKSPACE_WRAPPER \
        -u CARGO_BUILD_TARGET \
        CARGO_TARGET_DIR="$work/rust-target" \
        "$cargo" build --release --locked --target wasm32-wasip2 \
        --manifest-path "$here/rust-enrich/Cargo.toml" ||
        die "building rust-enrich failed"
    cp "$work/rust-target/wasm32-wasip2/release/rust_enrich.wasm" "$out/rust_enrich.wasm"
}

# --- Python ----------------------------------------------------------------------------
build_python() {
    local py="${PYTHON:-python3}" venv="$work/py" req="$here/python-enrich/requirements.txt"
    need "$py" "install Python 3.10+ with venv"
    # A venv moved with its directory keeps dead interpreter paths: rebuild it then too.
    if ! "$venv/bin/componentize-py" --version >/dev/null 2>&1 ||
        ! cmp -s "$req" "$venv/.eddy-requirements.txt"; then
        echo "==> installing componentize-py into $venv"
        rm -rf "$venv"
        "$py" -m venv "$venv" || die "creating the venv $venv failed (is python3-venv installed?)"
        "$venv/bin/pip" install --quiet -r "$req" ||
            die "pip install -r python-enrich/requirements.txt failed"
        cp "$req" "$venv/.eddy-requirements.txt"
    fi
    echo "==> python-enrich (componentize-py)"
    (
        cd "$here/python-enrich" &&
            PYTHONDONTWRITEBYTECODE=1 "$venv/bin/componentize-py" -d "$wit" -w destination \
                componentize app -o "$out/python_enrich.wasm"
    ) || die "building python-enrich failed"
}

# --- JavaScript ------------------------------------------------------------------------
build_javascript() {
    need node "install Node.js 20+"
    need npm "install Node.js 20+ with npm"
    local js="$here/js-enrich"
    if [ ! -x "$js/node_modules/.bin/jco" ] ||
        [ ! -d "$js/node_modules/@bytecodealliance/componentize-js" ] ||
        [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; then
        echo "==> npm ci in $js"
        (cd "$js" && npm ci --no-audit --no-fund) || die "npm ci in js-enrich failed"
    fi
    echo "==> js-enrich (jco componentize)"
    (
        cd "$js" &&
            ./node_modules/.bin/jco componentize enrich.js --wit "$wit" --world-name destination \
                --disable http --disable fetch-event -o "$out/js_enrich.wasm"
    ) || die "building js-enrich failed"
}

build_rust
build_python
build_javascript
echo "==> built into $out:"
ls -l "$out"/rust_enrich.wasm "$out"/python_enrich.wasm "$out"/js_enrich.wasm
