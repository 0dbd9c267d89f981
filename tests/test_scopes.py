"""A configuration using the optional keys: required_scopes, allowed_algorithms, max_token_bytes,
clock_skew_s, several audiences, a resource with a longer path, metadata defaults."""
import time

import pytest

from helpers.asserts import (assert_allowed, assert_insufficient_scope, assert_invalid_token,
                             assert_missing_token, assert_not_forwarded, stat_delta)
from helpers.tokens import DELETE, mint

SCOPE = "mcp:tools mcp:write"
ROOT = "/.well-known/oauth-protected-resource"


@pytest.fixture(scope="module")
def stack(scoped):
    return scoped


def test_metadata_url_uses_resource_path(stack):
    assert stack.metadata_url == f"http://localhost:{stack.listen_port}{ROOT}/api/mcp"


def test_challenge_carries_required_scopes(stack):
    with stat_delta(stack) as d:
        resp = stack.request("GET", "/api/mcp")
    assert_missing_token(stack, resp, scope=SCOPE)
    assert d.value == {"mcp_auth.denied.missing_token": 1}


def test_missing_scope_gets_403(stack, keys):
    with stat_delta(stack) as d:
        resp = stack.request("GET", "/api/mcp", token=mint(keys.sig, stack.claims()))  # Keycloak default scopes
    assert_insufficient_scope(stack, resp, SCOPE)
    assert d.value == {"mcp_auth.denied.insufficient_scope": 1}


@pytest.mark.parametrize("claims", [
    {"scope": "openid mcp:tools mcp:write email"},
    {"scope": "mcp:write mcp:tools"},
    {"scope": "  mcp:tools   mcp:write "},
    {"scope": DELETE, "scp": ["mcp:tools", "mcp:write"]},
    {"scope": DELETE, "scp": ["openid", "mcp:write", "mcp:tools"]},
], ids=["scope", "scope_reordered", "scope_extra_spaces", "scp", "scp_extra"])
def test_all_required_scopes_present_is_allowed(stack, keys, claims):
    with stat_delta(stack) as d:
        resp = stack.request("GET", "/api/mcp", token=mint(keys.sig, stack.claims(**claims)))
    assert_allowed(stack, resp)
    assert d.value == {"mcp_auth.allowed": 1}


@pytest.mark.parametrize("claims", [
    {"scope": "mcp:tools"},
    {"scope": "mcp:toolsx mcp:write"},
    {"scope": "mcp:tools,mcp:write"},
    {"scope": "MCP:TOOLS MCP:WRITE"},
    {"scope": ""},
    {"scope": DELETE},
    {"scope": DELETE, "scp": ["mcp:tools"]},
    {"scope": DELETE, "scp": "mcp:tools"},
], ids=["one_missing", "lookalike", "comma_separated", "wrong_case", "empty", "none", "scp_one_missing",
        "scp_not_array"])
def test_missing_required_scope_is_forbidden(stack, keys, claims):
    resp = stack.request("GET", "/api/mcp", token=mint(keys.sig, stack.claims(**claims)))
    assert_insufficient_scope(stack, resp, SCOPE)


def test_invalid_token_still_gets_401(stack, keys):
    resp = stack.request("GET", "/api/mcp", token=mint(keys.foreign, stack.claims(), kid=keys.sig.kid))
    assert_invalid_token(stack, resp, "invalid signature", exact=False)


def test_scope_is_checked_last(stack, keys):
    resp = stack.request("GET", "/api/mcp", token=mint(keys.sig, stack.claims(scope="x", exp=int(time.time()) - 600)))
    assert_invalid_token(stack, resp, "token expired", exact=False)


# --------------------------------------------------------------------------- allowed_algorithms

@pytest.mark.parametrize("key_name,alg", [("sig", "RS256"), ("ec256", "ES256")])
def test_allowed_algorithms_accepted(stack, keys, key_name, alg):
    token = mint(getattr(keys, key_name), stack.claims(scope=SCOPE), alg=alg)
    assert_allowed(stack, stack.request("GET", "/api/mcp", token=token))


@pytest.mark.parametrize("key_name,alg", [("rsa_any", "RS384"), ("rsa_any", "PS256"), ("ec384", "ES384"),
                                          ("ed25519", "EdDSA")])
def test_algorithms_outside_allowed_list_rejected(stack, keys, key_name, alg):
    token = mint(getattr(keys, key_name), stack.claims(scope=SCOPE), alg=alg)
    with stat_delta(stack) as d:
        resp = stack.request("GET", "/api/mcp", token=token)
    assert_invalid_token(stack, resp, "unsupported algorithm", exact=False)
    assert d.value == {"mcp_auth.denied.unsupported_alg": 1}


# --------------------------------------------------------------------------- audiences, skew, size

def test_any_configured_audience_is_accepted(stack, keys):
    token = mint(keys.sig, stack.claims(aud="other-api", scope=SCOPE))
    assert_allowed(stack, stack.request("GET", "/api/mcp", token=token))


@pytest.mark.parametrize("claims,description", [
    ({"exp": -30}, "token expired"),
    ({"nbf": 30}, "token not yet valid"),
    ({"iat": 30}, "token issued in the future"),
])
def test_configured_clock_skew(stack, keys, claims, description):
    now = int(time.time())
    token = mint(keys.sig, stack.claims(scope=SCOPE, **{k: now + v for k, v in claims.items()}))
    assert_invalid_token(stack, stack.request("GET", "/api/mcp", token=token), description, exact=False)


def test_expired_within_configured_skew(stack, keys):
    token = mint(keys.sig, stack.claims(scope=SCOPE, exp=int(time.time()) - 2))
    assert_allowed(stack, stack.request("GET", "/api/mcp", token=token))


def test_configured_max_token_bytes(stack):
    assert_invalid_token(stack, stack.request("GET", "/api/mcp", token="a" * 4097), "token too large", exact=False)
    assert_invalid_token(stack, stack.request("GET", "/api/mcp", token="a" * 4096), "malformed token", exact=False)


# --------------------------------------------------------------------------- defaults of optional keys

def test_without_claims_to_headers_and_forward_token(stack, keys):
    resp = stack.request("GET", "/api/mcp", token=mint(keys.sig, stack.claims(scope=SCOPE)),
                         headers={"x-mcp-subject": "client-value"})
    seen = assert_allowed(stack, resp)
    assert seen.header_all("authorization") == []               # forward_token defaults to false
    assert seen.header_all("x-mcp-subject") == ["client-value"]  # claims_to_headers defaults to {}


@pytest.mark.parametrize("path", [ROOT + "/api/mcp", ROOT])
def test_metadata_defaults(stack, path):
    resp = stack.request("GET", path)
    assert resp.status == 200, resp
    assert resp.json() == {
        "resource": f"http://localhost:{stack.listen_port}/api/mcp",
        "authorization_servers": [f"http://localhost:{stack.auth_port}/realms/my-realm"],
        "bearer_methods_supported": ["header"],
        "resource_documentation": "https://docs.example.com/mcp",
    }
    assert_not_forwarded(stack, resp)


def test_old_metadata_path_is_protected(stack):
    assert_missing_token(stack, stack.request("GET", ROOT + "/mcp"), scope=SCOPE)
