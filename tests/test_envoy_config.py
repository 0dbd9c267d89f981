"""The renderer other suites reuse (tests/envoy_config.py): library and CLI, against the shipped envoy.yaml."""
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import yaml

import envoy_config

CONTRACT_KEYS = {"issuer", "audiences", "jwks", "clock_skew_s", "max_token_bytes", "required_scopes",
                 "allowed_algorithms", "resource_metadata", "forward_token", "claims_to_headers", "mcp"}
CONTRACT_JWKS_KEYS = {"cluster", "uri", "timeout_ms", "cache_duration_s", "min_cache_duration_s",
                      "max_cache_duration_s", "min_refetch_interval_s", "retry_initial_ms", "retry_max_ms",
                      "max_body_bytes"}
CONTRACT_MCP_KEYS = {"endpoint", "max_body_bytes", "rules", "scopes", "hide_unscoped", "trust_routing_headers"}
CONTRACT_METADATA_KEYS = {"resource", "authorization_servers", "scopes_supported", "bearer_methods_supported",
                          "resource_name", "resource_documentation"}


def render():
    return envoy_config.render(10001, 10002, 10003, 10004, overrides={"jwks.timeout_ms": 1234},
                               unset=["resource_metadata.resource_name"])


def test_shipped_plugin_configuration_uses_only_contract_keys():
    plugin = envoy_config.plugin_config(envoy_config.load())
    assert set(plugin) <= CONTRACT_KEYS
    assert set(plugin["jwks"]) <= CONTRACT_JWKS_KEYS
    assert set(plugin["resource_metadata"]) <= CONTRACT_METADATA_KEYS
    assert set(plugin["mcp"]) <= CONTRACT_MCP_KEYS
    assert set(plugin["mcp"]["scopes"]) <= {"tools", "prompts", "resources"}
    assert plugin["jwks"]["cluster"] == "authorization_server"
    envoy_config.cluster(envoy_config.load(), plugin["jwks"]["cluster"])  # the cluster exists


def test_render_moves_ports_and_wasm_path():
    cfg = render()
    assert cfg["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 10002}
    assert envoy_config.listener(cfg)["address"]["socket_address"]["port_value"] == 10001

    def cluster_port(name):
        ep = envoy_config.cluster(cfg, name)["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
        return ep["endpoint"]["address"]["socket_address"]["port_value"]

    assert cluster_port("echo_server") == 10003
    assert cluster_port("authorization_server") == 10004
    wasm = Path(envoy_config.wasm_filter(cfg)["vm_config"]["code"]["local"]["filename"])
    assert wasm.is_absolute() and wasm == envoy_config.WASM_PATH


def test_render_rebases_and_overrides_plugin_configuration():
    shipped = envoy_config.plugin_config(envoy_config.load())
    plugin = envoy_config.plugin_config(render())
    assert plugin["issuer"] == "http://localhost:10004/realms/my-realm"
    assert plugin["jwks"]["uri"] == "http://localhost:10004/realms/my-realm/protocol/openid-connect/certs"
    assert plugin["resource_metadata"]["resource"] == "http://localhost:10001/mcp"
    assert plugin["resource_metadata"]["authorization_servers"] == ["http://localhost:10004/realms/my-realm"]
    assert plugin["jwks"]["timeout_ms"] == 1234
    assert "resource_name" not in plugin["resource_metadata"]
    # Everything else is the shipped file's.
    assert plugin["claims_to_headers"] == shipped["claims_to_headers"]
    assert plugin["audiences"] == shipped["audiences"]
    assert plugin["jwks"]["cache_duration_s"] == shipped["jwks"]["cache_duration_s"]


def test_render_keeps_the_rest_of_envoy_yaml():
    shipped = envoy_config.load()
    cfg = render()
    assert [f["name"] for f in envoy_config.http_connection_manager(cfg)["http_filters"]] == \
        [f["name"] for f in envoy_config.http_connection_manager(shipped)["http_filters"]]
    assert envoy_config.http_connection_manager(cfg)["route_config"] == \
        envoy_config.http_connection_manager(shipped)["route_config"]


def test_cli_matches_library(tmp_path):
    out = subprocess.run(
        [sys.executable, str(Path(envoy_config.__file__)), "--listen-port", "10001", "--admin-port", "10002",
         "--upstream-port", "10003", "--auth-port", "10004", "--wasm", str(envoy_config.WASM_PATH),
         "--set", "jwks.timeout_ms=1234", "--unset", "resource_metadata.resource_name"],
        check=True, capture_output=True, text=True).stdout
    assert yaml.safe_load(out) == render()


def test_cli_set_parses_json_with_string_fallback(tmp_path):
    target = tmp_path / "out.yaml"
    subprocess.run(
        [sys.executable, str(Path(envoy_config.__file__)), "--listen-port", "1", "--admin-port", "2",
         "--upstream-port", "3", "--auth-port", "4", "--wasm", "rel/filter.wasm",
         "--set", 'required_scopes=["mcp:tools"]', "--set", "issuer=http://issuer.example/x",
         "--set", "forward_token=true", "--set", 'resource_metadata.resource_name="42"', "-o", str(target)],
        check=True, cwd=tmp_path)
    cfg = yaml.safe_load(target.read_text())
    plugin = json.loads(envoy_config.wasm_filter(cfg)["configuration"]["value"])
    assert plugin["required_scopes"] == ["mcp:tools"]
    assert plugin["issuer"] == "http://issuer.example/x"
    assert plugin["forward_token"] is True
    assert plugin["resource_metadata"]["resource_name"] == "42"
    assert envoy_config.wasm_filter(cfg)["vm_config"]["code"]["local"]["filename"] == str(tmp_path / "rel/filter.wasm")


def test_shipped_mcp_policy_is_the_reference_story():
    """echo needs mcp:tools; whoami needs mcp:admin (step-up) and the admin role; echo-server's whoami
    gets the subject, scopes and roles; every scope the policy names is advertised."""
    cfg = envoy_config.load()
    plugin = envoy_config.plugin_config(cfg)
    mcp = plugin["mcp"]
    assert mcp["endpoint"] == "/mcp" == urlparse(plugin["resource_metadata"]["resource"]).path
    assert mcp["scopes"]["tools"] == {"echo": ["mcp:tools"], "whoami": ["mcp:admin"]}
    assert mcp["rules"] == ['mcp.tool.name == "echo" || (mcp.tool.name == "whoami" && "admin" in jwt.roles)']
    assert mcp.get("hide_unscoped", False) is False  # eitan sees whoami before stepping up
    # The 401 challenge names mcp:tools, so a first login asks for that alone (not for every scope
    # in scopes_supported) and whoami needs a step-up.
    assert plugin["required_scopes"] == ["mcp:tools"]
    assert mcp.get("trust_routing_headers", False) is False  # echo-server is not known to enforce SEP-2243
    assert {"mcp:tools", "mcp:admin"} <= set(plugin["resource_metadata"]["scopes_supported"])
    assert plugin["claims_to_headers"] == {"sub": "x-mcp-subject", "scope": "x-mcp-scope", "roles": "x-mcp-roles"}
    cors = envoy_config.http_connection_manager(cfg)["route_config"]["virtual_hosts"][0]["typed_per_filter_config"]
    allowed = {h.strip() for h in cors["envoy.filters.http.cors"]["allow_headers"].split(",")}
    assert {"mcp-method", "mcp-name", "mcp-protocol-version", "mcp-session-id"} <= allowed  # both eras from a browser
    # The policy reads a POST's body after pausing its headers: Envoy must keep calling the filter.
    assert envoy_config.wasm_filter(cfg)["allow_on_headers_stop_iteration"] is True


def test_render_keeps_the_mcp_policy_and_can_drop_it():
    shipped = envoy_config.plugin_config(envoy_config.load())
    assert envoy_config.plugin_config(render())["mcp"] == shipped["mcp"]
    plain = envoy_config.plugin_config(envoy_config.render(1, 2, 3, 4, unset=["mcp"]))
    assert "mcp" not in plain
    tweaked = envoy_config.plugin_config(envoy_config.render(1, 2, 3, 4, overrides={"mcp.trust_routing_headers": True}))
    assert tweaked["mcp"]["trust_routing_headers"] is True
    assert tweaked["mcp"]["rules"] == shipped["mcp"]["rules"]
