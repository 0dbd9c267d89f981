#!/usr/bin/env bash
# Builds the decide() micro-benchmark for wasm32-wasip1 and runs it under Node's WASI.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --quiet --release --target wasm32-wasip1 --target-dir ../../target/perf-decide
root=../..
token=$("$root/.venv/bin/python" "$root/perf/decide-wasm/mint.py")
now=$(date +%s)
node --no-warnings "$root/scripts/wasi_test.mjs" ../../target/perf-decide/wasm32-wasip1/release/decide-wasm.wasm "$token" "$now"
