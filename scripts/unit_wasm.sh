#!/usr/bin/env bash
# The filter crate's unit tests compiled for wasm32-wasip1, the target that ships, and run
# under Node's WASI (V8, the engine family of Envoy's wasm VM): the RSA arithmetic, the
# Wycheproof vectors and every other unit test, with debug assertions on.
#
#   bash scripts/unit_wasm.sh [libtest args...]     e.g. `rsa_verify` for only that module
#
# Needs the wasm32-wasip1 target and clang (`make wasm-target`) and Node (`scripts/node.sh`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/node.sh
source scripts/node.sh

# The test binary's path, from cargo's build messages.
binary="$(cargo test --target wasm32-wasip1 --lib --no-run --message-format=json-render-diagnostics |
  python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == "mcp_auth_filter":
        print(msg["executable"])
')"
if [ -z "$binary" ]; then
  echo "unit_wasm.sh: no test binary built" >&2
  exit 1
fi
echo "unit_wasm.sh: running $binary under Node $(node --version) WASI" >&2
exec node --no-warnings scripts/wasi_test.mjs "$binary" "$@"
