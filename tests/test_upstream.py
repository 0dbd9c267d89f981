"""What reaches the upstream on an allowed request: Authorization handling and claims_to_headers."""
import json

import pytest

from helpers.asserts import assert_allowed
from helpers.tokens import DELETE, mint


@pytest.fixture(scope="module")
def stack(default_stack):
    return default_stack


# --------------------------------------------------------------------------- shipped configuration

def test_request_is_forwarded_unchanged_apart_from_auth_headers(stack, keys):
    claims = stack.claims()
    body = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}'
    resp = stack.request("POST", "/mcp?x=1", token=mint(keys.sig, claims), body=body,
                         headers={"content-type": "application/json", "mcp-session-id": "abc-123",
                                  "mcp-protocol-version": "2025-06-18",
                                  "accept": "application/json, text/event-stream"})
    seen = assert_allowed(stack, resp)
    assert seen.method == "POST"
    assert seen.path == "/mcp?x=1"
    assert seen.body == body
    assert seen.header("mcp-session-id") == "abc-123"
    assert seen.header("mcp-protocol-version") == "2025-06-18"
    assert seen.header("content-type") == "application/json"


def test_authorization_is_removed_by_default(stack, keys):
    seen = assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims())))
    assert seen.header_all("authorization") == []


def test_subject_header_is_set_from_sub(stack, keys):
    claims = stack.claims()
    seen = assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, claims)))
    assert seen.header_all("x-mcp-subject") == [claims["sub"]]


def test_client_supplied_subject_header_is_replaced(stack, keys):
    claims = stack.claims()
    resp = stack.request("GET", "/mcp", token=mint(keys.sig, claims),
                         headers=[("x-mcp-subject", "admin"), ("X-MCP-Subject", "root")])
    seen = assert_allowed(stack, resp)
    assert seen.header_all("x-mcp-subject") == [claims["sub"]]


def test_client_supplied_subject_header_is_removed_when_claim_absent(stack, keys):
    resp = stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims(sub=DELETE)),
                         headers={"x-mcp-subject": "admin"})
    seen = assert_allowed(stack, resp)
    assert seen.header_all("x-mcp-subject") == []


def test_upstream_response_is_passed_back(stack, keys):
    resp = stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims()))
    assert_allowed(stack, resp)
    echoed = json.loads(resp.body)
    assert echoed["path"] == "/mcp"


# --------------------------------------------------------------------------- forward_token + more claims

CLAIM_HEADERS = {
    "sub": "x-mcp-subject",
    "preferred_username": "x-user",
    "email_verified": "x-email-verified",
    "exp": "x-exp",
    "aud": "x-aud",
    "realm_access": "x-realm-access",
    "numbers": "x-numbers",
    "missing_claim": "x-missing",
    "ratio": "x-ratio",
}


@pytest.fixture(scope="module")
def forwarding(stack_factory, keys):
    stack = stack_factory("forwarding", keys=keys.keycloak(),
                          overrides={"forward_token": True, "claims_to_headers": CLAIM_HEADERS})
    yield stack
    stack.stop()


def test_forward_token_keeps_authorization(forwarding, keys):
    token = mint(keys.sig, forwarding.claims())
    seen = assert_allowed(forwarding, forwarding.request("GET", "/mcp", token=token))
    assert seen.header_all("authorization") == [f"Bearer {token}"]


def test_claims_to_headers_value_conversions(forwarding, keys):
    claims = forwarding.claims(realm_access={"roles": ["offline_access"]}, numbers=[1, 2], ratio=0.5)
    resp = forwarding.request("GET", "/mcp", token=mint(keys.sig, claims),
                              headers=[("x-user", "spoof"), ("x-missing", "spoof"), ("x-aud", "spoof")])
    seen = assert_allowed(forwarding, resp)
    assert seen.header_all("x-mcp-subject") == [claims["sub"]]
    assert seen.header_all("x-user") == ["eitan"]                      # string as is
    assert seen.header_all("x-email-verified") == ["true"]             # bool as JSON text
    assert seen.header_all("x-exp") == [str(claims["exp"])]            # number as JSON text
    assert seen.header_all("x-aud") == ["echo-mcp-server,account"]     # array of strings joined with ","
    assert seen.header_all("x-realm-access") == ['{"roles":["offline_access"]}']  # compact JSON
    assert seen.header_all("x-numbers") == ["[1,2]"]                   # not all strings: compact JSON
    assert seen.header_all("x-ratio") == ["0.5"]
    assert seen.header_all("x-missing") == []                          # client copy removed, no claim


def test_claims_to_headers_strips_spoofed_headers_on_every_request(forwarding, keys):
    claims = forwarding.claims(preferred_username=DELETE, email_verified=DELETE)
    resp = forwarding.request("GET", "/mcp", token=mint(keys.sig, claims),
                              headers=[("x-user", "root"), ("x-email-verified", "true")])
    seen = assert_allowed(forwarding, resp)
    assert seen.header_all("x-user") == []
    assert seen.header_all("x-email-verified") == []
