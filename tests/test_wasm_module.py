"""The built module's interface: what it imports (portability) and what it exports (cost).

`make wasm` drops the exports of the proxy-wasm callbacks the filter does not implement
(scripts/wasm_exports.py): Envoy would otherwise enter the VM for each of them on every request.
"""
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import wasm_exports  # noqa: E402

# The SDK trait method behind each proxy-wasm callback export.
CALLBACK_OF_METHOD = {
    "on_vm_start": "proxy_on_vm_start",
    "on_configure": "proxy_on_configure",
    "create_http_context": "proxy_on_context_create",
    "on_tick": "proxy_on_tick",
    "on_queue_ready": "proxy_on_queue_ready",
    "on_http_call_response": "proxy_on_http_call_response",
    "on_grpc_call_response": "proxy_on_grpc_receive",
    "on_done": "proxy_on_done",
    "on_log": "proxy_on_log",
    "on_http_request_headers": "proxy_on_request_headers",
    "on_http_request_body": "proxy_on_request_body",
    "on_http_request_trailers": "proxy_on_request_trailers",
    "on_http_response_headers": "proxy_on_response_headers",
    "on_http_response_body": "proxy_on_response_body",
    "on_http_response_trailers": "proxy_on_response_trailers",
}


def test_exports_are_the_kept_callbacks(wasm_path):
    assert sorted(wasm_exports.exports(wasm_path.read_bytes())) == sorted(wasm_exports.FILTER_EXPORTS)


def test_every_implemented_callback_is_exported():
    source = (REPO / "src" / "filter.rs").read_text()
    implemented = set(re.findall(r"^\s*fn (\w+)\(", source, re.M)) & set(CALLBACK_OF_METHOD)
    assert {"on_http_request_headers", "on_configure", "on_tick"} <= implemented
    missing = {m: CALLBACK_OF_METHOD[m] for m in implemented
               if CALLBACK_OF_METHOD[m] not in wasm_exports.FILTER_EXPORTS}
    assert not missing, f"implemented but not exported (add to FILTER_EXPORTS): {missing}"


def test_imports_only_the_proxy_wasm_abi_and_wasi(wasm_path):
    imports = wasm_exports.imports(wasm_path.read_bytes())
    assert imports, "no imports parsed"
    odd = [(m, n) for m, n in imports
           if not (m == "env" and n.startswith("proxy_")) and m != "wasi_snapshot_preview1"]
    assert not odd, odd


def test_trim_is_idempotent_and_keeps_other_sections(wasm_path):
    module = wasm_path.read_bytes()
    assert wasm_exports.trim(module) == module  # `make wasm` trimmed it already
    untouched = [s for s in wasm_exports.sections(module) if s[0] != wasm_exports.EXPORT_SECTION]
    narrower = wasm_exports.trim(module, keep=("memory", "proxy_on_request_headers"))
    assert wasm_exports.exports(narrower) == ["memory", "proxy_on_request_headers"]
    assert [s for s in wasm_exports.sections(narrower) if s[0] != wasm_exports.EXPORT_SECTION] == untouched


def test_trim_refuses_a_module_without_a_kept_export(wasm_path):
    module = wasm_exports.trim(wasm_path.read_bytes(), keep=("memory",))
    with pytest.raises(wasm_exports.WasmError, match="proxy_on_request_headers"):
        wasm_exports.trim(module)


@pytest.mark.parametrize("data", [b"", b"not wasm at all", b"\0asm\x01\0\0\0\x07\x05\x01"])
def test_trim_refuses_what_is_not_a_module(data):
    with pytest.raises(wasm_exports.WasmError):
        wasm_exports.trim(data)
