"""The attack catalogue of `src/attacks.rs`, through a real Envoy.

`tests/attack_catalogue.json` is generated from `src/attacks.rs` (`MCP_AUTH_WRITE_CATALOGUE=1
cargo test attacks`): a Keycloak-shaped JWKS plus EC/Ed25519 keys, and cases, each a list of
`Authorization` values (none, one or two), the expected status and the stats reason. The tokens
carry the shipped issuer `http://localhost:8080/realms/my-realm`, so this module keeps that issuer
(no rebasing of `issuer`) and serves the catalogue's JWKS from the test JWKS server.

Each case is sent twice (the second answer may come from the verdict cache and must be the same),
POST /mcp with the header bytes exactly as generated (UTF-8), and checked for status, body,
`WWW-Authenticate`, the `mcp_auth.denied.<reason>` counter (+1 per request, +2 per case, no other
counter moved) and that nothing reached the upstream. "token in the query string only" puts a genuine, valid token in
`?access_token=`: it must be ignored.

Where Envoy answers before the filter runs:
  * "control character in the signature" (a 0x01 byte in the header value): Envoy's HTTP/1 codec
    refuses the request line with its own `400 Bad Request` (text/plain, connection closed,
    `http.mcp.downstream_cx_protocol_error` +1); the filter never sees it. Asserted as such.
  * Header size: Envoy's default `max_request_headers_kb` is 60, so even the 20 KB token reaches
    the filter; a 431 from Envoy is therefore not accepted for any case.

The catalogue's tokens were minted at its fixed `now` (2026-11-26T10:00Z) and are expired in
real time; the expected reasons all come before the `exp` check except "expired" itself, which
stays expired. The genuine token sent after the catalogue is freshly minted with the
catalogue's RSA key (`src/testdata/rsa-test-key.pem`, kid `kc-rs256-Xq3`).
"""
from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives import serialization

from envoy_config import REPO_ROOT
from helpers import counters, health
from helpers.asserts import (assert_allowed, assert_invalid_request, assert_invalid_token, assert_missing_token,
                             stat_delta)
from helpers.tokens import keycloak_claims, mint

CATALOGUE = json.loads((REPO_ROOT / "tests" / "attack_catalogue.json").read_text(encoding="utf-8"))
CASES = CATALOGUE["cases"]
SESSION_CASES = CATALOGUE["sessions"]
ISSUER = "http://localhost:8080/realms/my-realm"
RSA_KID = "kc-rs256-Xq3"
RSA_KEY_PEM = REPO_ROOT / "src" / "testdata" / "rsa-test-key.pem"

DESCRIPTIONS = {
    "token_too_large": "token too large",
    "malformed_token": "malformed token",
    "unsupported_alg": "unsupported algorithm",
    "unsupported_crit": "unsupported critical header",
    "unknown_key": "no matching signing key",
    "bad_signature": "invalid signature",
    "bad_issuer": "invalid issuer",
    "bad_audience": "invalid audience",
    "missing_exp": "missing or invalid exp",
    "expired": "token expired",
    "not_yet_valid": "token not yet valid",
    "issued_in_future": "token issued in the future",
    "wrong_token_type": "not an access token",
}
# Cases Envoy answers itself, before the filter: name -> Envoy's status.
ENVOY_CODEC_REJECTS = {"control character in the signature": 400}
QUERY_CASE = "token in the query string only"


def rsa_private_key():
    return serialization.load_pem_private_key(RSA_KEY_PEM.read_bytes(), password=None)


def genuine_token(**claims) -> str:
    return mint(rsa_private_key(), keycloak_claims(ISSUER, **claims), alg="RS256", kid=RSA_KID)


@pytest.fixture(scope="module")
def stack(stack_factory):
    if time.time() < CATALOGUE["now"] - 3600 + 120:
        pytest.skip("the clock is before the catalogue's time: its `expired` token would not be expired")
    stack = stack_factory("attacks", keys=CATALOGUE["jwks"]["keys"],
                          overrides={"issuer": ISSUER, "resource_metadata.authorization_servers": [ISSUER]})
    assert stack.issuer == ISSUER
    stack.wasm_baseline = health.wasm_stats(stack.envoy)
    stack.fetches_at_start = stack.jwks.fetch_count
    stack.upstream_at_start = stack.upstream.count
    yield stack
    stack.stop()


def send(stack, case):
    headers = [("authorization", value.encode("utf-8")) for value in case["authorization"]]
    path = f"/mcp?access_token={genuine_token()}" if case["name"] == QUERY_CASE else "/mcp"
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    return stack.request("POST", path, headers=[("content-type", "application/json")] + headers, body=body)


def test_catalogue_is_complete():
    assert len(CASES) >= 50
    assert {c["reason"] for c in CASES} - set(DESCRIPTIONS) <= {"missing_token", "invalid_request"}
    for case in CASES:
        assert case["status"] in (400, 401), case["name"]
    assert [c["reason"] for c in SESSION_CASES] == ["session_mismatch"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_attack_is_refused_for_its_reason(stack, case):
    name, reason = case["name"], case["reason"]
    before = counters.read(stack.envoy)
    if name in ENVOY_CODEC_REJECTS:
        codec_before = stack.envoy.stats("http.mcp.downstream_cx_protocol_error")
        for _ in range(2):
            resp = send(stack, case)
            assert resp.status == ENVOY_CODEC_REJECTS[name], resp
            assert resp.body == b"Bad Request" and resp.header("www-authenticate") is None, resp
            assert stack.reached_upstream(resp) is None
        codec_after = stack.envoy.stats("http.mcp.downstream_cx_protocol_error")  # waits past a tick
        assert codec_after.delta(codec_before) == {"http.mcp.downstream_cx_protocol_error": 2}
        assert counters.filter_delta(counters.read(stack.envoy), before) == {}, \
            f"{name}: the filter saw a request Envoy's codec refused"
        return
    # Twice: the second answer may come from the verdict cache and must be the same.
    for round_ in range(2):
        resp = send(stack, case)
        assert resp.status == case["status"], f"{name} (round {round_}): {resp!r}"
        if reason == "missing_token":
            assert_missing_token(stack, resp)
        elif reason == "invalid_request":
            assert_invalid_request(stack, resp)
        else:
            assert_invalid_token(stack, resp, DESCRIPTIONS[reason])
    counters.wait_delta(stack.envoy, before, {f"mcp_auth.denied.{reason}": 2})


def test_nothing_reached_the_upstream(stack):
    assert stack.upstream.count == stack.upstream_at_start


def test_unknown_kids_caused_at_most_one_refetch(stack):
    # Four cases name unknown kids; min_refetch_interval_s is the default 30 s.
    assert stack.jwks.fetch_count - stack.fetches_at_start <= 1


def test_genuine_token_is_accepted_after_the_catalogue(stack):
    token = genuine_token(sub="catalogue-survivor")
    with stat_delta(stack) as d:
        resp = stack.post_mcp(token)
    seen = assert_allowed(stack, resp)
    assert seen.header("authorization") is None
    assert seen.header("x-mcp-subject") == "catalogue-survivor"
    # The token, then the shipped MCP policy's verdict on its tools/list.
    assert d.value == {"mcp_auth.allowed": 1, "mcp_auth.mcp.allowed": 1}
    assert_allowed(stack, stack.post_mcp(token))  # again, from the verdict cache


@pytest.mark.parametrize("case", SESSION_CASES, ids=[c["name"] for c in SESSION_CASES])
def test_session_attack_is_refused_before_the_server(stack, case):
    """The owner starts a session (the upstream hands out `Mcp-Session-Id` on `initialize`); the
    intruder, with its own valid token, presents it: the case's status, a JSON-RPC error body,
    the counter, and nothing reaches the upstream."""
    stack.upstream.hand_out_sessions = True
    owner, intruder = genuine_token(sub="session-owner"), genuine_token(sub="session-intruder")
    initialize = b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}'
    before = counters.read(stack.envoy)
    started = stack.request("POST", "/mcp", token=owner, body=initialize,
                            headers=[("content-type", "application/json")])
    assert_allowed(stack, started)
    session = started.header("mcp-session-id")
    assert session, started
    upstream_before = stack.upstream.count
    for _ in range(2):
        resp = stack.post_mcp(intruder, headers=[("mcp-session-id", session)])
        assert resp.status == case["status"], resp
        body = resp.json()
        assert body["jsonrpc"] == "2.0" and "error" in body, resp
        assert resp.header("www-authenticate") is None, resp
    # The owner's initialize is also judged (and allowed) by the shipped MCP policy.
    counters.wait_delta(stack.envoy, before, {"mcp_auth.allowed": 1, "mcp_auth.mcp.allowed": 1,
                                              f"mcp_auth.denied.{case['reason']}": 2})
    assert stack.upstream.count == upstream_before
    assert_allowed(stack, stack.post_mcp(owner, headers=[("mcp-session-id", session)]))


def test_wasm_vm_is_healthy_after_the_catalogue(stack):
    health.assert_wasm_healthy(stack.envoy, stack.wasm_baseline)


def test_non_utf8_authorization_is_refused_not_fatal(stack_factory):
    """`Authorization: Bearer a<0xE9>bc` (a Latin-1 byte, which Envoy's HTTP/1 codec accepts as
    obs-text) must be a 401 like any malformed token, and the VM must survive it. Own Envoy:
    the bug kills the VM."""
    stack = stack_factory("attacks-latin1", keys=CATALOGUE["jwks"]["keys"],
                          overrides={"issuer": ISSUER, "resource_metadata.authorization_servers": [ISSUER]})
    try:
        baseline = health.wasm_stats(stack.envoy)
        resp = stack.request("POST", "/mcp", headers=[("authorization", b"Bearer a\xe9bc")], body=b"{}")
        after = stack.request("POST", "/mcp", body=b"{}")
        assert resp.status == 401 and resp.body.startswith(b"{"), resp
        assert_missing_token(stack, after)
        health.assert_wasm_healthy(stack.envoy, baseline)
    finally:
        stack.stop()
