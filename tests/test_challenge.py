"""Token extraction: the 401 challenge, the Bearer scheme, 400 invalid_request and the size limit."""
import pytest

from helpers.asserts import (assert_allowed, assert_invalid_request, assert_invalid_token,
                             assert_missing_token, stat_delta)
from helpers.tokens import AUDIENCE  # noqa: F401  (documents where tokens come from)


@pytest.fixture(scope="module")
def stack(default_stack):
    return default_stack


def test_metadata_url_is_built_from_configured_resource(stack):
    # The reference config's resource is rebased onto the test listener: http://localhost:<port>/mcp
    assert stack.resource == f"http://localhost:{stack.listen_port}/mcp"
    assert stack.metadata_url == f"http://localhost:{stack.listen_port}/.well-known/oauth-protected-resource/mcp"


def test_no_token_gets_401_challenge(stack):
    with stat_delta(stack) as d:
        resp = stack.request("GET", "/mcp")
    assert_missing_token(stack, resp)
    assert d.value == {"mcp_auth.denied.missing_token": 1}


def test_mcp_post_without_token_gets_401_challenge(stack):
    resp = stack.post_mcp()
    assert_missing_token(stack, resp)


@pytest.mark.parametrize("path", ["/", "/anything/else", "/mcp?session=1"])
def test_every_path_is_protected(stack, path):
    assert_missing_token(stack, stack.request("GET", path))


@pytest.mark.parametrize("host", ["evil.example.com", "mcp.example.org:8443", "127.0.0.1"])
def test_challenge_ignores_request_host(stack, host):
    resp = stack.request("GET", "/mcp", host=host,
                         headers={"x-forwarded-host": "attacker.example", "x-forwarded-proto": "https"})
    assert_missing_token(stack, resp)  # resource_metadata still http://localhost:<listen>/...


@pytest.mark.parametrize("value", [
    "Basic dXNlcjpwYXNzd29yZA==",
    "Token abc.def.ghi",
    "DPoP eyJhbGciOiJSUzI1NiJ9.e30.sig",
    "Bearerabc.def.ghi",
    "Negotiate",
])
def test_non_bearer_scheme_gets_401_challenge(stack, value):
    with stat_delta(stack) as d:
        resp = stack.request("GET", "/mcp", headers={"authorization": value})
    assert_missing_token(stack, resp)
    assert d.value == {"mcp_auth.denied.missing_token": 1}


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_scheme_is_case_insensitive(stack, keys, scheme):
    resp = stack.request("GET", "/mcp", token=stack.token(keys.sig), scheme=scheme)
    assert_allowed(stack, resp)


@pytest.mark.parametrize("path", ["/mcp?access_token={t}", "/mcp?token={t}"])
def test_token_in_query_string_is_ignored(stack, keys, path):
    # Header only (bearer_methods_supported: ["header"]).
    assert_missing_token(stack, stack.request("GET", path.format(t=stack.token(keys.sig))))


def test_token_in_form_body_is_ignored(stack, keys):
    body = f"access_token={stack.token(keys.sig)}".encode()
    resp = stack.request("POST", "/mcp", body=body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert_missing_token(stack, resp)


def test_two_authorization_headers_get_400(stack, keys):
    token = stack.token(keys.sig)
    with stat_delta(stack) as d:
        resp = stack.request("GET", "/mcp", headers=[("authorization", f"Bearer {token}"),
                                                     ("authorization", f"Bearer {token}")])
    assert_invalid_request(stack, resp)
    assert d.value == {"mcp_auth.denied.invalid_request": 1}


def test_bearer_plus_other_scheme_headers_get_400(stack, keys):
    resp = stack.request("GET", "/mcp", headers=[("authorization", "Basic dXNlcjpwYXNz"),
                                                 ("authorization", f"Bearer {stack.token(keys.sig)}")])
    assert_invalid_request(stack, resp)


@pytest.mark.parametrize("value", ["Bearer ", "Bearer", "bearer    "])
def test_empty_bearer_token_gets_400(stack, value):
    with stat_delta(stack) as d:
        resp = stack.request("GET", "/mcp", headers={"authorization": value})
    assert_invalid_request(stack, resp)
    assert d.value == {"mcp_auth.denied.invalid_request": 1}


def test_token_over_max_token_bytes_gets_401_too_large(stack):
    with stat_delta(stack) as d:
        resp = stack.request("GET", "/mcp", token="a" * 8193)
    assert_invalid_token(stack, resp, "token too large")
    assert d.value == {"mcp_auth.denied.token_too_large": 1}


def test_token_of_exactly_max_token_bytes_is_parsed(stack):
    # 8192 bytes is not "longer than max_token_bytes": it gets parsed (and is malformed).
    resp = stack.request("GET", "/mcp", token="a" * 8192)
    assert_invalid_token(stack, resp, "malformed token")


def test_valid_token_just_under_the_limit_is_allowed(stack, keys):
    from helpers.tokens import mint
    token = None
    base = len(mint(keys.sig, stack.claims(padding="")))
    start = max(0, (8192 - base) * 3 // 4 - 16)
    for pad in range(start, start + 64):
        candidate = mint(keys.sig, stack.claims(padding="x" * pad))
        if len(candidate) > 8192:
            break
        token = candidate
    assert token is not None and 8150 < len(token) <= 8192, len(token or "")
    assert_allowed(stack, stack.request("GET", "/mcp", token=token))
