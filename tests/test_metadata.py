"""RFC 9728 protected resource metadata served by the filter itself."""
import pytest

from helpers.asserts import assert_missing_token, assert_not_forwarded, stat_delta
from helpers.tokens import mint

ROOT = "/.well-known/oauth-protected-resource"


@pytest.fixture(scope="module")
def stack(default_stack):
    return default_stack


def expected_document(stack):
    return {
        "resource": f"http://localhost:{stack.listen_port}/mcp",
        "authorization_servers": [f"http://localhost:{stack.auth_port}/realms/my-realm"],
        "scopes_supported": ["mcp:tools", "mcp:admin"],
        "bearer_methods_supported": ["header"],
        "resource_name": "MCP Echo Server",
    }


def assert_metadata(stack, resp, body=True):
    assert resp.status == 200, resp
    assert (resp.header("content-type") or "").split(";")[0] == "application/json", resp
    assert resp.header_all("cache-control") == ["public, max-age=3600"], resp
    assert resp.header_all("access-control-allow-origin") == ["*"], resp
    assert resp.header("www-authenticate") is None, resp
    assert_not_forwarded(stack, resp)
    if body:
        assert resp.json() == expected_document(stack), resp


def test_metadata_path_matches_resource(stack):
    assert stack.metadata_path == ROOT + "/mcp"


@pytest.mark.parametrize("path", [ROOT + "/mcp", ROOT, ROOT + "/mcp?foo=bar", ROOT + "?x=1&y"])
def test_get_metadata(stack, path):
    with stat_delta(stack) as d:
        resp = stack.request("GET", path)
    assert_metadata(stack, resp)
    assert d.value == {"mcp_auth.metadata_served": 1}


@pytest.mark.parametrize("path", [ROOT + "/mcp", ROOT])
def test_head_metadata(stack, path):
    resp = stack.request("HEAD", path)
    assert_metadata(stack, resp, body=False)
    assert resp.body == b""


def test_metadata_needs_no_token_and_ignores_a_bad_one(stack, keys):
    resp = stack.request("GET", ROOT + "/mcp", token="not.a.token")
    assert_metadata(stack, resp)
    resp = stack.request("GET", ROOT + "/mcp", token=mint(keys.foreign, stack.claims()))
    assert_metadata(stack, resp)
    resp = stack.request("GET", ROOT + "/mcp", headers=[("authorization", "Bearer a"), ("authorization", "Bearer b")])
    assert_metadata(stack, resp)


def test_metadata_ignores_request_host(stack):
    resp = stack.request("GET", ROOT + "/mcp", host="evil.example.com",
                         headers={"x-forwarded-host": "evil.example.com", "x-forwarded-proto": "https"})
    assert_metadata(stack, resp)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", [ROOT + "/mcp", ROOT])
def test_other_methods_get_405(stack, method, path):
    # OPTIONS without Origin is no CORS preflight: the filter answers it.
    resp = stack.request(method, path, body=b"{}" if method in ("POST", "PUT", "PATCH") else None)
    assert resp.status == 405, resp
    assert resp.header_all("allow") == ["GET, HEAD"], resp
    assert_not_forwarded(stack, resp)


@pytest.mark.parametrize("path", [ROOT + "/other", ROOT + "/mcp/extra", ROOT + "x", "/mcp" + ROOT])
def test_other_well_known_paths_are_protected(stack, path):
    assert_missing_token(stack, stack.request("GET", path))


def test_metadata_with_origin_has_one_allow_origin(stack):
    resp = stack.request("GET", ROOT + "/mcp", headers={"origin": "http://localhost:6274"})
    assert resp.status == 200, resp
    values = resp.header_all("access-control-allow-origin")
    assert values in (["*"], ["http://localhost:6274"]), resp
    assert resp.json() == expected_document(stack)
