"""Stats naming as Envoy shows proxy-wasm counters, and the families the contract lists."""
import pytest

from helpers.tokens import mint


@pytest.fixture(scope="module")
def stack(default_stack):
    return default_stack


def test_counters_are_exposed_with_wasmcustom_prefix(stack, keys):
    stack.request("GET", "/mcp")
    stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims()))
    stack.request("GET", "/.well-known/oauth-protected-resource/mcp")
    _, text = stack.envoy.admin_get("/stats?filter=mcp_auth")
    names = {line.split(":")[0] for line in text.splitlines()}
    for name in ("mcp_auth.allowed", "mcp_auth.denied.missing_token", "mcp_auth.metadata_served",
                 "mcp_auth.jwks_fetch.ok"):
        assert f"wasmcustom.{name}" in names, f"{name} not in /stats:\n{text}"
    stats = stack.stats()
    assert stats["mcp_auth.allowed"] >= 1
    assert stats["mcp_auth.denied.missing_token"] >= 1
    assert stats["mcp_auth.metadata_served"] >= 1
    assert stats["mcp_auth.jwks_fetch.ok"] >= 1
    assert stats["mcp_auth.jwks_fetch.failed"] == 0


def test_prometheus_output_has_the_counters(stack):
    _, text = stack.envoy.admin_get("/stats/prometheus")
    assert "mcp_auth" in text
