#!/usr/bin/env python3
"""Render the repository's envoy.yaml for a test or benchmark run.

The shipped ``envoy.yaml`` is the source: this module loads it, moves it onto the given ports and
edits the mcp_auth plugin's JSON configuration, so every test exercises the file users run.

What ``render`` changes, and nothing else:
  * admin and ``mcp`` listener ports (address stays 127.0.0.1),
  * the ``echo_server`` cluster port (upstream) and the ``authorization_server`` cluster port (JWKS),
  * the wasm ``vm_config.code.local.filename`` -> absolute path of the built filter (a ``remote``
    code source is left as it is: see ``use_remote_module``),
  * in the plugin configuration, ``localhost:8080`` -> ``localhost:<auth port>`` and
    ``localhost:9000`` -> ``localhost:<listen port>`` in every string (issuer, jwks.uri, resource,
    authorization_servers) unless ``rebase=False``; then the overrides and removals, in that order.

Overrides use dotted keys into the plugin JSON (``jwks.timeout_ms``, ``resource_metadata.resource``).

CLI (for the node e2e tests and the benchmarks):

    python tests/envoy_config.py --listen-port 10000 --admin-port 10001 --upstream-port 10002 \\
        --auth-port 10003 --wasm target/wasm32-wasip1/release/mcp_auth_filter.wasm \\
        --set jwks.timeout_ms=1000 --set 'required_scopes=["mcp:tools"]' --unset resource_metadata.resource_name \\
        > /tmp/envoy.yaml

``--unset mcp`` renders the filter without its MCP policy (token checks only).

``--set KEY=VALUE`` parses VALUE as JSON, falling back to a plain string when it is not JSON
(``--set issuer=http://x`` works; quote JSON strings that look like numbers: ``--set 'k="1"'``).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
ENVOY_YAML = REPO_ROOT / "envoy.yaml"
WASM_PATH = REPO_ROOT / "target" / "wasm32-wasip1" / "release" / "mcp_auth_filter.wasm"

SHIPPED_LISTEN_AUTHORITY = "localhost:9000"
SHIPPED_AUTH_AUTHORITY = "localhost:8080"
LISTENER_NAME = "mcp"
UPSTREAM_CLUSTER = "echo_server"
AUTH_CLUSTER = "authorization_server"
WASM_FILTER = "envoy.filters.http.wasm"


class _Unset:
    def __repr__(self):
        return "UNSET"


UNSET = _Unset()  # as an override value: remove the key


def load(path: Path | str | None = None) -> dict:
    with open(path or ENVOY_YAML, encoding="utf-8") as f:
        return yaml.safe_load(f)


def listener(cfg: dict, name: str = LISTENER_NAME) -> dict:
    for item in cfg["static_resources"]["listeners"]:
        if item.get("name") == name:
            return item
    raise KeyError(f"listener {name!r} not found in envoy.yaml")


def cluster(cfg: dict, name: str) -> dict:
    for item in cfg["static_resources"]["clusters"]:
        if item.get("name") == name:
            return item
    raise KeyError(f"cluster {name!r} not found in envoy.yaml")


def http_connection_manager(cfg: dict) -> dict:
    for chain in listener(cfg)["filter_chains"]:
        for f in chain["filters"]:
            if f["name"] == "envoy.filters.network.http_connection_manager":
                return f["typed_config"]
    raise KeyError("http_connection_manager not found")


def wasm_filter(cfg: dict) -> dict:
    """The ``config`` block of the mcp_auth wasm HTTP filter."""
    for f in http_connection_manager(cfg)["http_filters"]:
        if f["name"] == WASM_FILTER:
            return f["typed_config"]["config"]
    raise KeyError("wasm filter not found")


def plugin_config(cfg: dict) -> dict:
    return json.loads(wasm_filter(cfg)["configuration"]["value"])


def set_plugin_config(cfg: dict, plugin) -> None:
    """Store the plugin configuration; a str is stored verbatim (for invalid-JSON tests)."""
    text = plugin if isinstance(plugin, str) else json.dumps(plugin, indent=2) + "\n"
    wasm_filter(cfg)["configuration"]["value"] = text


def _set_socket_port(holder: dict, port: int) -> None:
    holder["address"]["socket_address"]["port_value"] = int(port)


def _set_cluster_port(cfg: dict, name: str, port: int) -> None:
    for group in cluster(cfg, name)["load_assignment"]["endpoints"]:
        for ep in group["lb_endpoints"]:
            ep["endpoint"]["address"]["socket_address"]["port_value"] = int(port)


def _rebase(value, mapping: dict):
    if isinstance(value, str):
        for old, new in mapping.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_rebase(v, mapping) for v in value]
    if isinstance(value, dict):
        return {k: _rebase(v, mapping) for k, v in value.items()}
    return value


def apply_override(plugin: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    node = plugin
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            if value is UNSET:
                return
            node[part] = {}
        node = node[part]
    if value is UNSET:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = copy.deepcopy(value)


def render(listen_port: int, admin_port: int, upstream_port: int, auth_port: int,
           wasm: Path | str | None = None, overrides: dict | list | None = None, unset=(),
           rebase: bool = True, plugin=None, envoy_yaml: Path | str | None = None) -> dict:
    """Return the rendered Envoy bootstrap as a dict.

    ``overrides``: {dotted key: value} (or a list of pairs, applied in order; value UNSET removes).
    ``unset``: dotted keys to remove. ``plugin``: replace the whole plugin configuration
    (dict, or str stored verbatim) instead of editing the shipped one.
    """
    cfg = load(envoy_yaml)
    cfg["admin"]["address"]["socket_address"]["address"] = "127.0.0.1"
    cfg["admin"]["address"]["socket_address"]["port_value"] = int(admin_port)
    _set_socket_port(listener(cfg), listen_port)
    _set_cluster_port(cfg, UPSTREAM_CLUSTER, upstream_port)
    _set_cluster_port(cfg, AUTH_CLUSTER, auth_port)
    wasm_path = Path(wasm) if wasm else WASM_PATH
    if not wasm_path.is_absolute():
        wasm_path = (Path.cwd() / wasm_path).resolve()
    code = wasm_filter(cfg)["vm_config"]["code"]
    if "local" in code:  # a bootstrap fetching the module (deploy/envoy/envoy.yaml) keeps `remote`
        code["local"]["filename"] = str(wasm_path)

    if isinstance(plugin, str):
        set_plugin_config(cfg, plugin)
        return cfg
    current = copy.deepcopy(plugin) if plugin is not None else plugin_config(cfg)
    if rebase:
        current = _rebase(current, {SHIPPED_AUTH_AUTHORITY: f"localhost:{auth_port}",
                                    SHIPPED_LISTEN_AUTHORITY: f"localhost:{listen_port}"})
    items = overrides.items() if isinstance(overrides, dict) else (overrides or [])
    for key, value in items:
        apply_override(current, key, value)
    for key in unset:
        apply_override(current, key, UNSET)
    set_plugin_config(cfg, current)
    return cfg


MODULE_CLUSTER = "wasm_modules"


def static_cluster(name: str, port: int, address: str = "127.0.0.1") -> dict:
    """A STATIC cluster of one endpoint, shaped like envoy.yaml's."""
    return {"name": name, "connect_timeout": "2s", "type": "STATIC",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": address, "port_value": int(port)}}}}]}]}}


def use_remote_module(cfg: dict, uri: str, sha256: str, port: int, cluster_name: str = MODULE_CLUSTER,
                      timeout: str = "10s") -> dict:
    """Make Envoy fetch the filter itself (``vm_config.code.remote``) from ``uri`` through a new
    STATIC cluster on 127.0.0.1:``port``, accepting it only if its SHA-256 is ``sha256`` (hex).
    Envoy's default retry policy applies (one retry after about a second)."""
    wasm_filter(cfg)["vm_config"]["code"] = {"remote": {
        "http_uri": {"uri": uri, "cluster": cluster_name, "timeout": timeout},
        "sha256": sha256,
    }}
    cfg["static_resources"]["clusters"].append(static_cluster(cluster_name, port))
    return cfg


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper, value: str):
    style = "|" if "\n" in value else None  # the plugin JSON as a readable block, like envoy.yaml
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump(cfg: dict) -> str:
    return yaml.dump(cfg, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def _parse_set(text: str):
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True, help="echo_server cluster port")
    parser.add_argument("--auth-port", type=int, required=True, help="authorization_server cluster port")
    parser.add_argument("--wasm", default=str(WASM_PATH), help="filter .wasm (made absolute)")
    parser.add_argument("--envoy-yaml", default=str(ENVOY_YAML), help="source bootstrap")
    parser.add_argument("--set", dest="overrides", action="append", type=_parse_set, default=[],
                        metavar="KEY=JSON", help="override a plugin config key (dotted path)")
    parser.add_argument("--unset", action="append", default=[], metavar="KEY",
                        help="remove a plugin config key (dotted path)")
    parser.add_argument("--no-rebase", dest="rebase", action="store_false",
                        help="keep localhost:8080 / localhost:9000 in the plugin config")
    parser.add_argument("-o", "--output", help="write here instead of stdout")
    args = parser.parse_args(argv)
    cfg = render(args.listen_port, args.admin_port, args.upstream_port, args.auth_port, wasm=args.wasm,
                 overrides=args.overrides, unset=args.unset, rebase=args.rebase, envoy_yaml=args.envoy_yaml)
    text = dump(cfg)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
