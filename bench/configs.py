#!/usr/bin/env python3
"""Envoy bootstraps for the benchmark, all derived from the repository's envoy.yaml.

Every variant is the shipped file rendered by ``tests/envoy_config.py`` (ports moved, filter path
absolute) with two edits:
  * the route answers itself (``direct_response`` 200, body "ok") instead of proxying to the MCP
    server, so what is measured is the HTTP filter chain, not an upstream;
  * the auth slot of the filter chain (between CORS and the router) holds the variant's filter.

Variants:
  none             no auth filter (CORS + router only)
  jwt_authn        Envoy's C++ JWT filter, same issuer / audience / key set (remote_jwks through
                   the same ``authorization_server`` cluster), claim ``sub`` -> ``x-mcp-subject``,
                   Authorization removed (like ours with forward_token false)
  jwt_authn_cache  the same plus ``jwt_cache_config`` (verified-token cache)
  noop_wasm        bench/noop-filter: reads the Authorization header, continues (the wasm floor)
  noop_wasm_lean   the same module with its unused callbacks' exports dropped, as `make wasm`
                   does for ours (scripts/wasm_exports.py): the floor for a filter built that way
  mcp_auth         our filter with the shipped plugin configuration
  mcp_auth_b       only when BENCH_OURS_WASM_B names a second build of the filter: that build,
                   configured the same, so two builds are compared in one interleaved run

The MCP policy cells (issue 10) use variants of their own: our filter in front of routes that
answer POST /mcp themselves (``mcp_routes``: "ok", or a `tools/list` result of 50 tools as JSON or
as an SSE stream, chosen by the request's ``x-bench-response`` header), with
  mcp_off             no ``mcp`` section (the filter as in issue 5: the token only)
  mcp_policy          ``MCP_POLICY``: ten scope patterns and two rules, the tutorial's among them;
                      the rules permit 25 of the 50 listed tools
  mcp_policy_trust    the same with ``trust_routing_headers: true``
  mcp_policy_norules  the same scope patterns, no rules: nothing to filter in a list, so its
                      responses pass untouched (the unfiltered comparison for the list cells)
  mcp_off_b, mcp_policy_b, mcp_policy_trust_b
                      only with BENCH_OURS_WASM_B: the same on that build (the call cells)

The plugin's URLs are not rebased (``rebase=False``): the issuer stays
``http://localhost:8080/realms/my-realm`` whatever ports a run uses (so a signed token pool can be
kept between runs); ``jwks.uri`` only provides the ``:authority``/``:path`` of the fetch, which goes
to the ``authorization_server`` cluster, rendered onto the bench's JWKS port.

The full-stack rows (bench/fullstack.py) use ``render_full_stack``: the shipped file unchanged but for
ports, proxying to a real echo-server, with our filter or without any auth filter.

CLI (inspect what the bench runs):

    python bench/configs.py --variant jwt_authn > /tmp/envoy.yaml
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

import envoy_config  # noqa: E402  (read-only use of the test harness)

# BENCH_OURS_WASM: measure another build of the filter (an experiment) against the same variants.
OURS_WASM = Path(os.environ.get("BENCH_OURS_WASM")
                 or REPO_ROOT / "target" / "wasm32-wasip1" / "release" / "mcp_auth_filter.wasm")
NOOP_TARGET_DIR = REPO_ROOT / "target" / "bench-noop"
NOOP_WASM = NOOP_TARGET_DIR / "wasm32-wasip1" / "release" / "noop_filter.wasm"
NOOP_LEAN_WASM = NOOP_WASM.with_name("noop_filter_lean.wasm")  # `make bench-noop` writes both

# BENCH_OURS_WASM_B: price a change against the current build, both in the same run.
OURS_WASM_B = Path(os.environ["BENCH_OURS_WASM_B"]) if os.environ.get("BENCH_OURS_WASM_B") else None

CLASSIC_VARIANTS = ("none", "jwt_authn", "jwt_authn_cache", "noop_wasm", "noop_wasm_lean", "mcp_auth") + (
    ("mcp_auth_b",) if OURS_WASM_B else ())
# With BENCH_OURS_WASM_B, the call cells' variants also run on build B (suffix `_b`), so two builds
# of the MCP path are compared in one interleaved run.
MCP_VARIANTS_B = ("mcp_off_b", "mcp_policy_b", "mcp_policy_trust_b") if OURS_WASM_B else ()
MCP_VARIANTS = ("mcp_off", "mcp_policy", "mcp_policy_trust", "mcp_policy_norules") + MCP_VARIANTS_B
VARIANTS = CLASSIC_VARIANTS + MCP_VARIANTS
WASM_OF = {"mcp_auth": OURS_WASM, "noop_wasm": NOOP_WASM, "noop_wasm_lean": NOOP_LEAN_WASM}
if OURS_WASM_B:
    WASM_OF["mcp_auth_b"] = OURS_WASM_B
VERIFYING = ("jwt_authn", "jwt_authn_cache", "mcp_auth", "mcp_auth_b") + MCP_VARIANTS
JWT_CACHE_SIZE = 4096  # jwt_authn's default is 100; same order as our filter's token cache

DIRECT_RESPONSE_ROUTE = {
    "match": {"prefix": "/"},
    "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}},
}

# --- the MCP policy cells -------------------------------------------------------------------
# Ten scope patterns (tools, prompts, resources) and two rules: the tutorial's, verbatim, and one
# that permits the `public_*` tools. The bench's token has `mcp:tools` and `roles: ["admin"]`,
# so `tools/call echo` is permitted (by the first rule) and a list keeps the 25 `public_*` tools.
MCP_RULES = [
    'mcp.tool.name == "echo" && "admin" in jwt.roles',
    'mcp.tool.name.startsWith("public_")',
]
MCP_SCOPES = {
    "tools": {
        "echo": ["mcp:tools"],
        "public_*": ["mcp:tools"],
        "private_*": ["mcp:tools"],
        "admin_*": ["mcp:admin"],
        "debug_*": ["mcp:admin"],
        "*": ["mcp:tools"],
    },
    "prompts": {"*": ["mcp:prompts"], "summary_*": ["mcp:tools"]},
    "resources": {"file:///private/*": ["mcp:private"], "file:///*": ["mcp:tools"]},
}
MCP_POLICY = {"endpoint": "/mcp", "rules": MCP_RULES, "scopes": MCP_SCOPES}
MCP_POLICY_OF = {
    "mcp_off": None,
    "mcp_policy": MCP_POLICY,
    "mcp_policy_trust": {**MCP_POLICY, "trust_routing_headers": True},
    "mcp_policy_norules": {**MCP_POLICY, "rules": []},
}
MCP_POLICY_OF.update({variant: MCP_POLICY_OF[variant.removesuffix("_b")] for variant in MCP_VARIANTS_B})
LIST_TOOLS = 50  # listed by the upstream; the rules keep the `public_*` half
LIST_ID = 1  # the JSON-RPC id of the list request and of its (fixed) response
RESPONSE_HEADER = "x-bench-response"  # which answer a request's route gives: "tools-json", "tools-sse"


def listed_tool(i: int) -> dict:
    """Tool ``i`` of the list, shaped like a real server's (description, input schema)."""
    name = f"{'public' if i % 2 == 0 else 'private'}_{i // 2:02d}"
    return {
        "name": name,
        "title": f"Tool {name}",
        "description": f"Does the {name} thing with a message; returns the message repeated.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "message": {"type": "string", "description": "What to send"},
                "repeat_count": {"type": "integer", "minimum": 1, "default": 1},
            },
            "required": ["message"],
        },
    }


def tools_list_json() -> str:
    """The upstream's `tools/list` response: 50 tools (public and private alternating) and a cursor."""
    result = {"tools": [listed_tool(i) for i in range(LIST_TOOLS)], "nextCursor": "page-2"}
    return json.dumps({"jsonrpc": "2.0", "id": LIST_ID, "result": result}, separators=(",", ":"))


def tools_list_sse() -> str:
    """The same response as a Streamable HTTP server streams it: a priming event, then the message."""
    return f"id: 0\nretry: 3000\ndata: \n\nevent: message\nid: 1\ndata: {tools_list_json()}\n\n"


BUFFER_FILTER = {
    "name": "envoy.filters.http.buffer",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                     "max_request_bytes": 1 << 20},
}


def _answer(header_value: str, body: str, content_type: str) -> dict:
    return {
        "match": {"prefix": "/", "headers": [{"name": RESPONSE_HEADER, "string_match": {"exact": header_value}}]},
        "direct_response": {"status": 200, "body": {"inline_string": body}},
        "response_headers_to_add": [{"header": {"key": "content-type", "value": content_type},
                                     "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
    }


def mcp_routes() -> list[dict]:
    """What answers the MCP policy cells: the list (JSON or SSE) by header, else "ok"."""
    return [
        _answer("tools-json", tools_list_json(), "application/json"),
        _answer("tools-sse", tools_list_sse(), "text/event-stream"),
        copy.deepcopy(DIRECT_RESPONSE_ROUTE),
    ]


def _jwt_authn(plugin: dict, cache: bool) -> dict:
    provider = {
        "issuer": plugin["issuer"],
        "audiences": list(plugin["audiences"]),
        "remote_jwks": {
            "http_uri": {
                "uri": plugin["jwks"]["uri"],
                "cluster": plugin["jwks"]["cluster"],
                "timeout": f"{plugin['jwks'].get('timeout_ms', 5000) / 1000:g}s",
            },
            "cache_duration": f"{plugin['jwks'].get('cache_duration_s', 300)}s",
        },
        # Like ours with forward_token false: the upstream does not get the token.
        "forward": bool(plugin.get("forward_token", False)),
        "claim_to_headers": [{"header_name": header, "claim_name": claim}
                             for claim, header in plugin.get("claims_to_headers", {}).items()],
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": JWT_CACHE_SIZE}
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"mcp": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "mcp"}}],
        },
    }


def _noop_wasm(ours: dict, wasm: Path) -> dict:
    f = copy.deepcopy(ours)
    cfg = f["typed_config"]["config"]
    cfg["name"] = "noop"
    cfg["root_id"] = "noop"
    cfg["vm_config"]["vm_id"] = "noop"
    cfg["vm_config"]["code"]["local"]["filename"] = str(wasm)
    cfg.pop("configuration", None)
    return f


def render(variant: str, listen_port: int, admin_port: int, auth_port: int, upstream_port: int,
           ours_wasm: Path = OURS_WASM, noop_wasm: Path = NOOP_WASM,
           noop_lean_wasm: Path = NOOP_LEAN_WASM) -> dict:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
    if variant == "mcp_auth_b" or variant in MCP_VARIANTS_B:
        if OURS_WASM_B is None:
            raise ValueError(f"variant {variant} needs BENCH_OURS_WASM_B")
        ours_wasm = OURS_WASM_B
    mcp_policy = MCP_POLICY_OF.get(variant)
    overrides = {"mcp": copy.deepcopy(mcp_policy)} if mcp_policy is not None else None
    cfg = envoy_config.render(listen_port, admin_port, upstream_port, auth_port, wasm=ours_wasm,
                              rebase=False, overrides=overrides)
    hcm = envoy_config.http_connection_manager(cfg)
    for vhost in hcm["route_config"]["virtual_hosts"]:
        vhost["routes"] = mcp_routes() if variant in MCP_VARIANTS else [copy.deepcopy(DIRECT_RESPONSE_ROUTE)]
    if variant in MCP_VARIANTS:
        # The list of 50 tools is ~16 KB; Envoy's default cap on a direct response body is 4 KB.
        hcm["route_config"]["max_direct_response_body_size_bytes"] = 1 << 16
        # A direct response sent before the request body was read closes the connection; a
        # filter that lets the request go at its headers (mcp_off, trusted routing headers) would
        # pay a reconnect per request. The buffer filter holds every variant's request until its
        # body is in, so all keep their connections and pay the same buffering.
        router = next(i for i, f in enumerate(hcm["http_filters"]) if f["name"] == "envoy.filters.http.router")
        hcm["http_filters"].insert(router, BUFFER_FILTER)
    plugin = envoy_config.plugin_config(cfg)
    filters = hcm["http_filters"]
    index = next(i for i, f in enumerate(filters) if f["name"] == envoy_config.WASM_FILTER)
    ours = filters[index]
    if variant == "none":
        del filters[index]
    elif variant in ("jwt_authn", "jwt_authn_cache"):
        filters[index] = _jwt_authn(plugin, cache=variant == "jwt_authn_cache")
    elif variant == "noop_wasm":
        filters[index] = _noop_wasm(ours, noop_wasm)
    elif variant == "noop_wasm_lean":
        filters[index] = _noop_wasm(ours, noop_lean_wasm)
    return cfg


def render_full_stack(with_filter: bool, listen_port: int, admin_port: int, auth_port: int,
                      upstream_port: int, ours_wasm: Path = OURS_WASM) -> dict:
    """The full-stack rows' Envoy: the shipped envoy.yaml as users run it, proxying to the
    ``echo_server`` cluster (here an echo-server on ``upstream_port``), with or without our filter."""
    cfg = envoy_config.render(listen_port, admin_port, upstream_port, auth_port, wasm=ours_wasm,
                              rebase=False)
    if not with_filter:
        hcm = envoy_config.http_connection_manager(cfg)
        hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != envoy_config.WASM_FILTER]
    return cfg


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=VARIANTS + ("full_stack", "full_stack_no_auth"), required=True,
                        help="full_stack[_no_auth]: the full-stack rows' proxying Envoy")
    parser.add_argument("--listen-port", type=int, default=10000)
    parser.add_argument("--admin-port", type=int, default=10001)
    parser.add_argument("--auth-port", type=int, default=10003)
    parser.add_argument("--upstream-port", type=int, default=10002)
    args = parser.parse_args(argv)
    if args.variant.startswith("full_stack"):
        cfg = render_full_stack(args.variant == "full_stack", args.listen_port, args.admin_port,
                                args.auth_port, args.upstream_port)
    else:
        cfg = render(args.variant, args.listen_port, args.admin_port, args.auth_port, args.upstream_port)
    sys.stdout.write(envoy_config.dump(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
