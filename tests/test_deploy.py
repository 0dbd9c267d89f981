"""deploy/: the plain-Envoy bootstrap fetching the module, Istio's WasmPlugin and Envoy Gateway's
EnvoyExtensionPolicy carry envoy.yaml's filter configuration, and each one's configuration is
accepted by the filter itself, in a real Envoy, with the JWKS cluster name its platform uses.

No Kubernetes runs here: the manifests are parsed, their embedded configuration is compared with
envoy.yaml's and loaded by the filter in Envoy (README, *Deploying*, says what was not run)."""
import copy
import hashlib
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

import envoy_config
from helpers.asserts import assert_allowed, assert_missing_token
from helpers.ports import free_port
from helpers.servers import ModuleServer
from helpers.tokens import mint

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
PLAIN_ENVOY = DEPLOY / "envoy" / "envoy.yaml"
ISTIO = DEPLOY / "istio" / "wasmplugin.yaml"
ENVOY_GATEWAY = DEPLOY / "envoy-gateway" / "extension-policy.yaml"


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def only(path: Path, kind: str, name: str | None = None) -> dict:
    found = [d for d in documents(path) if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{path.name}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def istio_plugin() -> dict:
    return only(ISTIO, "WasmPlugin")


def gateway_wasm() -> dict:
    [wasm] = only(ENVOY_GATEWAY, "EnvoyExtensionPolicy")["spec"]["wasm"]
    return wasm


def shipped() -> dict:
    return envoy_config.plugin_config(envoy_config.load())


# The cluster each platform fetches the key set through (how the name is found: the comments in
# the manifests, README *Deploying*).
def istio_cluster() -> str:
    return "outbound|8080||keycloak.keycloak.svc.cluster.local"


def gateway_cluster() -> str:
    """Envoy Gateway's name for the cluster of the HTTPRoute rule that sends to the Backend."""
    backend = only(ENVOY_GATEWAY, "Backend")
    for doc in documents(ENVOY_GATEWAY):
        if doc["kind"] != "HTTPRoute":
            continue
        for index, rule in enumerate(doc["spec"]["rules"]):
            if any(ref.get("kind") == "Backend" and ref["name"] == backend["metadata"]["name"]
                   for ref in rule.get("backendRefs", [])):
                return f"httproute/{doc['metadata']['namespace']}/{doc['metadata']['name']}/rule/{index}"
    raise AssertionError("no HTTPRoute rule sends to the Backend")


# Each deployment's filter configuration as the filter receives it (JSON text), and the cluster.
CONFIGS = {
    "plain_envoy": (lambda: envoy_config.plugin_config(envoy_config.load(PLAIN_ENVOY)), lambda: "authorization_server"),
    "istio": (lambda: istio_plugin()["spec"]["pluginConfig"], istio_cluster),
    "envoy_gateway": (lambda: gateway_wasm()["config"], gateway_cluster),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_filter_configuration_is_envoy_yamls(name):
    config_of, cluster_of = CONFIGS[name]
    expected = copy.deepcopy(shipped())
    expected["jwks"]["cluster"] = cluster_of()
    assert config_of() == expected


def test_cluster_names_follow_their_platforms_scheme():
    # Istio: outbound|<port>|<subset>|<service FQDN>; the Backend's port and host in Envoy Gateway.
    assert re.fullmatch(r"outbound\|\d+\|\|[a-z0-9.-]+\.svc\.cluster\.local", istio_cluster())
    backend = only(ENVOY_GATEWAY, "Backend")["spec"]["endpoints"][0]["fqdn"]
    _, port, _, host = istio_cluster().split("|")
    assert (host, int(port)) == (backend["hostname"], backend["port"])  # the same Keycloak Service
    assert gateway_cluster() == "httproute/mcp/keycloak-jwks/rule/0"  # what the policy names


def test_every_deployment_fails_closed_with_the_same_root_id():
    for path in (REPO / "envoy.yaml", PLAIN_ENVOY):
        wasm = envoy_config.wasm_filter(envoy_config.load(path))
        assert wasm["fail_open"] is False and wasm["root_id"] == "mcp_auth", path
    plugin = istio_plugin()["spec"]
    assert plugin["failStrategy"] == "FAIL_CLOSE"
    assert plugin["pluginName"] == "mcp_auth"
    assert plugin["url"].startswith("oci://")
    wasm = gateway_wasm()
    assert wasm["failOpen"] is False
    assert wasm["rootID"] == "mcp_auth"
    assert wasm["code"]["type"] == "Image"


def test_plain_envoy_file_is_envoy_yaml_but_for_the_module_source():
    ours, reference = envoy_config.load(PLAIN_ENVOY), envoy_config.load()
    remote = envoy_config.wasm_filter(ours)["vm_config"]["code"]["remote"]
    assert remote["http_uri"]["cluster"] == "wasm_artifacts"
    envoy_config.cluster(ours, "wasm_artifacts")
    for cfg in (ours, reference):
        del envoy_config.wasm_filter(cfg)["vm_config"]["code"]
        cfg["static_resources"]["clusters"] = [c for c in cfg["static_resources"]["clusters"]
                                               if c["name"] != "wasm_artifacts"]
    assert ours == reference


def test_plain_envoy_file_validates(envoy_bin):
    result = subprocess.run([envoy_bin, "--mode", "validate", "-c", str(PLAIN_ENVOY)], capture_output=True,
                            text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"configuration '{PLAIN_ENVOY}' OK" in result.stdout + result.stderr


def test_plain_envoy_file_runs_with_the_module_pinned(stack_factory, keys, wasm_path):
    """The deploy file itself, on free ports: the artifact cluster pointed at a local server and
    the placeholder digest replaced by the module's, as its header comment tells an operator."""
    stack = stack_factory("deploy-plain", start=False, keys=keys.keycloak(), envoy_yaml=PLAIN_ENVOY)
    remote = envoy_config.wasm_filter(stack.config)["vm_config"]["code"]["remote"]
    server = ModuleServer(free_port(), wasm_path.read_bytes(), path=urlsplit(remote["http_uri"]["uri"]).path).start()
    remote["sha256"] = hashlib.sha256(wasm_path.read_bytes()).hexdigest()
    clusters = stack.config["static_resources"]["clusters"]
    clusters[:] = [c for c in clusters if c["name"] != "wasm_artifacts"]
    clusters.append(envoy_config.static_cluster("wasm_artifacts", server.port))
    try:
        stack.start()
        assert server.fetch_count == 1
        assert_missing_token(stack, stack.request("POST", "/mcp"))
        assert_allowed(stack, stack.post_mcp(mint(keys.sig, stack.claims())))  # a JSON-RPC body: the policy reads it
    finally:
        stack.stop()
        server.stop()


@pytest.mark.parametrize("name", ["istio", "envoy_gateway"])
def test_manifest_configuration_loads_in_the_filter(stack_factory, keys, name):
    """The manifest's JSON in a real Envoy: the filter parses it, and with a cluster of the
    platform's name (`|` and `/` are fine in Envoy cluster names) it fetches keys and admits a token."""
    config_of, cluster_of = CONFIGS[name]
    stack = stack_factory(f"deploy-{name}", start=False, keys=keys.keycloak(), plugin=config_of())
    assert stack.plugin["jwks"]["cluster"] == cluster_of()
    stack.config["static_resources"]["clusters"].append(envoy_config.static_cluster(cluster_of(), stack.auth_port))
    try:
        stack.start(wait_for_keys=False)
        assert stack.wait_for_keys(), stack.envoy.log_tail()
        metadata = stack.request("GET", stack.metadata_path)
        assert metadata.status == 200, metadata
        assert metadata.json()["resource"] == stack.resource
        assert_missing_token(stack, stack.request("POST", "/mcp"))
        assert_allowed(stack, stack.post_mcp(mint(keys.sig, stack.claims())))  # a JSON-RPC body: the policy reads it
    finally:
        stack.stop()
