#!/usr/bin/env bash
# Builds the RSA verification benchmark for wasm32-wasip1 (without and with SIMD) and for the
# host, and runs each once: µs per RSA-2048 RS256 verify for the `rsa` crate, `ring` and
# src/rsa_verify.rs, in one run each (compare the ratios: the machine may be busy).
#
#   perf/rsa-wasm/run.sh [iterations-per-round] [rounds]
#
# Needs: the wasm32-wasip1 target, clang (ring's C code for wasm) and Node.js >= 20 (node:wasi).
set -euo pipefail
cd "$(dirname "$0")"
iters="${1:-100}"
rounds="${2:-7}"

RUSTFLAGS="-C target-feature=-simd128" \
    cargo build --quiet --release --target wasm32-wasip1 --target-dir target/scalar
RUSTFLAGS="-C target-feature=+simd128" \
    cargo build --quiet --release --target wasm32-wasip1 --target-dir target/simd
cargo build --quiet --release

echo "== wasm32-wasip1 in Node $(node --version) (V8), scalar =="
node --no-warnings ../../scripts/wasi_test.mjs target/scalar/wasm32-wasip1/release/rsa-wasm-bench.wasm "$iters" "$rounds"
echo
echo "== wasm32-wasip1 in Node (V8), +simd128 =="
node --no-warnings ../../scripts/wasi_test.mjs target/simd/wasm32-wasip1/release/rsa-wasm-bench.wasm "$iters" "$rounds"
echo
echo "== native ($(uname -m)) =="
target/release/rsa-wasm-bench "$iters" "$rounds"
