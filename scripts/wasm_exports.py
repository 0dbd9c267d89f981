#!/usr/bin/env python3
"""Drop the proxy-wasm callbacks the filter does not implement from a built module's exports.

Why: the Rust SDK exports every `proxy_on_*` callback, implemented or not, and Envoy enters the
VM for each export it finds: for every request it calls `proxy_on_response_headers`,
`proxy_on_response_body` (per body chunk: every event of a streamed MCP response),
`proxy_on_log` and `proxy_on_done`, which here would only answer "continue". A callback the
module does not export is skipped by the host (proxy-wasm hosts look each one up and treat a
missing one as "continue"), so dropping them saves those VM entries on every request.

`FILTER_EXPORTS` below is the whole list the filter keeps. Implementing another callback in
`src/filter.rs` (say `on_http_response_headers`) means adding its export here, or the host will
never call it; tests/test_wasm_module.py checks the built module against this list.

    python3 scripts/wasm_exports.py trim target/wasm32-wasip1/release/mcp_auth_filter.wasm
    python3 scripts/wasm_exports.py list target/wasm32-wasip1/release/mcp_auth_filter.wasm

Only the export section changes (the functions stay in the code section, unreferenced); trimming
an already trimmed module changes nothing. Standard library only: `make wasm` runs it.
"""
from __future__ import annotations

import os
import sys
import tempfile

FILTER_EXPORTS = (
    "memory",
    "_initialize",  # WASI reactor start: the host calls it once
    "proxy_abi_version_0_2_1",
    "proxy_on_memory_allocate",  # the host allocates every value it returns to the VM
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_context_create",
    "proxy_on_request_headers",
    "proxy_on_request_body",  # the mcp policy reads JSON-RPC bodies
    "proxy_on_response_headers",  # ... and shortens list responses
    "proxy_on_response_body",
    "proxy_on_http_call_response",  # key-set fetches
    "proxy_on_tick",  # key-set schedule, counters, waiting requests
    "proxy_on_delete",  # frees the SDK's per-request context
)

MAGIC = b"\0asm\x01\0\0\0"
EXPORT_SECTION = 7
IMPORT_SECTION = 2
KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}


class WasmError(ValueError):
    pass


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise WasmError("truncated LEB128 number")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 35:
            raise WasmError("LEB128 number too long")


def _leb_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _name(data: bytes, pos: int) -> tuple[str, int]:
    length, pos = _uleb(data, pos)
    if pos + length > len(data):
        raise WasmError("name runs past its section")
    return data[pos:pos + length].decode("utf-8"), pos + length


def sections(module: bytes) -> list[tuple[int, bytes]]:
    """The module's sections, in order, as (id, payload)."""
    if module[:8] != MAGIC:
        raise WasmError("not a WebAssembly 1.0 binary module")
    out, pos = [], 8
    while pos < len(module):
        section_id = module[pos]
        size, start = _uleb(module, pos + 1)
        if start + size > len(module):
            raise WasmError(f"section {section_id} runs past the end of the module")
        out.append((section_id, module[start:start + size]))
        pos = start + size
    return out


def _exports_of(payload: bytes) -> list[tuple[str, int, int]]:
    count, pos = _uleb(payload, 0)
    entries = []
    for _ in range(count):
        name, pos = _name(payload, pos)
        if pos >= len(payload):
            raise WasmError("export entry cut short")
        kind = payload[pos]
        index, pos = _uleb(payload, pos + 1)
        entries.append((name, kind, index))
    if pos != len(payload):
        raise WasmError("bytes left over after the exports")
    return entries


def exports(module: bytes) -> list[str]:
    return [name for sid, payload in sections(module) if sid == EXPORT_SECTION
            for name, _, _ in _exports_of(payload)]


def imports(module: bytes) -> list[tuple[str, str]]:
    """(module, name) of every import."""
    out = []
    for sid, payload in sections(module):
        if sid != IMPORT_SECTION:
            continue
        count, pos = _uleb(payload, 0)
        for _ in range(count):
            mod, pos = _name(payload, pos)
            name, pos = _name(payload, pos)
            kind = payload[pos]
            pos += 1
            if kind == 0:  # function: type index
                _, pos = _uleb(payload, pos)
            elif kind == 1:  # table: reftype, limits
                pos = _limits(payload, pos + 1)
            elif kind == 2:  # memory: limits
                pos = _limits(payload, pos)
            elif kind == 3:  # global: valtype, mutability
                pos += 2
            else:
                raise WasmError(f"import of unknown kind {kind}")
            out.append((mod, name))
    return out


def _limits(payload: bytes, pos: int) -> int:
    flags = payload[pos]
    _, pos = _uleb(payload, pos + 1)
    if flags & 1:
        _, pos = _uleb(payload, pos)
    return pos


def trim(module: bytes, keep: tuple[str, ...] = FILTER_EXPORTS) -> bytes:
    """The module with every export not named in `keep` removed; each kept one must exist."""
    out = bytearray(MAGIC)
    found: set[str] = set()
    for section_id, payload in sections(module):
        if section_id == EXPORT_SECTION:
            kept = [e for e in _exports_of(payload) if e[0] in keep]
            found.update(name for name, _, _ in kept)
            payload = _leb_bytes(len(kept)) + b"".join(
                _leb_bytes(len(name.encode())) + name.encode() + bytes([kind]) + _leb_bytes(index)
                for name, kind, index in kept)
        out += bytes([section_id]) + _leb_bytes(len(payload)) + payload
    missing = [name for name in keep if name not in found]
    if missing:
        raise WasmError(f"the module does not export {', '.join(missing)}")
    return bytes(out)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("trim", "list"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: wasm_exports.py trim|list MODULE.wasm", file=sys.stderr)
        return 2
    command, path = argv
    try:
        with open(path, "rb") as f:
            module = f.read()
        if command == "list":
            for name in exports(module):
                print(name)
            return 0
        before = len(exports(module))
        trimmed = trim(module)
    except (OSError, WasmError, UnicodeDecodeError) as e:
        print(f"wasm_exports.py: {path}: {e}", file=sys.stderr)
        return 1
    if trimmed != module:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".wasm")
        with os.fdopen(fd, "wb") as f:
            f.write(trimmed)
        os.chmod(tmp, os.stat(path).st_mode & 0o777)
        os.replace(tmp, path)
    print(f"{path}: {len(FILTER_EXPORTS)} of {before} exports kept")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
