"""Browser clients (MCP Inspector on http://localhost:6274): Envoy's CORS filter in front of mcp_auth."""
import pytest

from helpers.asserts import (assert_allowed, assert_insufficient_scope, assert_invalid_token,
                             assert_missing_token, assert_not_forwarded)
from helpers.tokens import mint

ORIGIN = "http://localhost:6274"


@pytest.fixture(scope="module")
def stack(default_stack):
    return default_stack


def expose_list(resp):
    values = resp.header_all("access-control-expose-headers")
    return {h.strip().lower() for v in values for h in v.split(",")}


def assert_cors(resp, origin=ORIGIN):
    assert resp.header_all("access-control-allow-origin") == [origin], resp
    exposed = expose_list(resp)
    assert {"www-authenticate", "mcp-session-id"} <= exposed, resp


@pytest.mark.parametrize("path", ["/mcp", "/.well-known/oauth-protected-resource/mcp"])
def test_preflight_passes_without_token(stack, path):
    resp = stack.request("OPTIONS", path, headers={
        "origin": ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,mcp-session-id",
    })
    assert 200 <= resp.status < 300, resp
    assert resp.header_all("access-control-allow-origin") == [ORIGIN], resp
    methods = {m.strip() for m in (resp.header("access-control-allow-methods") or "").split(",")}
    assert "POST" in methods, resp
    allowed = {h.strip().lower() for h in (resp.header("access-control-allow-headers") or "").split(",")}
    assert {"authorization", "mcp-session-id"} <= allowed, resp
    assert resp.header("www-authenticate") is None, resp
    assert_not_forwarded(stack, resp)


def test_preflight_from_127_0_0_1_origin(stack):
    origin = "http://127.0.0.1:6274"
    resp = stack.request("OPTIONS", "/mcp", headers={"origin": origin, "access-control-request-method": "POST",
                                                     "access-control-request-headers": "authorization"})
    assert 200 <= resp.status < 300, resp
    assert resp.header_all("access-control-allow-origin") == [origin], resp


def test_preflight_from_foreign_origin_gets_no_cors_grant(stack):
    resp = stack.request("OPTIONS", "/mcp", headers={"origin": "https://evil.example",
                                                     "access-control-request-method": "POST"})
    assert resp.header("access-control-allow-origin") is None, resp
    assert_not_forwarded(stack, resp)


def test_401_carries_cors_headers(stack):
    resp = stack.request("POST", "/mcp", headers={"origin": ORIGIN, "content-type": "application/json"},
                         body=b'{"jsonrpc":"2.0","id":1,"method":"initialize"}')
    assert_missing_token(stack, resp)
    assert_cors(resp)


def test_401_invalid_token_carries_cors_headers(stack, keys):
    resp = stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims(aud="nobody")),
                         headers={"origin": ORIGIN})
    assert_invalid_token(stack, resp, "invalid audience")
    assert_cors(resp)


def test_403_carries_cors_headers(scoped, keys):
    resp = scoped.request("GET", "/api/mcp", token=mint(keys.sig, scoped.claims()), headers={"origin": ORIGIN})
    assert_insufficient_scope(scoped, resp, "mcp:tools mcp:write")
    assert_cors(resp)


def test_allowed_response_carries_cors_headers(stack, keys):
    resp = stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims()), headers={"origin": ORIGIN})
    assert_allowed(stack, resp)
    assert_cors(resp)


def test_foreign_origin_gets_no_cors_headers_on_401(stack):
    resp = stack.request("GET", "/mcp", headers={"origin": "https://evil.example"})
    assert_missing_token(stack, resp)
    assert resp.header("access-control-allow-origin") is None, resp
