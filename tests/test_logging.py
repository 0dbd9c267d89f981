"""Operator logs: each refusal logged with its reason at debug level, tokens never logged."""
import time

import pytest

from helpers.tokens import mint


@pytest.fixture(scope="module")
def debug_stack(stack_factory, keys):
    stack = stack_factory("logging", keys=keys.all_published(), start=False)
    # Debug lines for the wasm component only; the log file flushed promptly for the test.
    stack.envoy.extra_args = ["--component-log-level", "wasm:debug", "--file-flush-interval-msec", "50"]
    stack.start()
    yield stack
    stack.stop()


def _log_after(stack, marker_count: int, needle: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = stack.envoy.log_text()
        if text.count(needle) >= marker_count or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_refusals_are_logged_with_reason_and_without_tokens(debug_stack, keys):
    stack = debug_stack
    wrong_aud = mint(keys.sig, stack.claims(aud="someone-else"))
    forged = wrong_aud[:-6] + ("AAAAAA" if not wrong_aud.endswith("AAAAAA") else "BBBBBB")
    valid = mint(keys.sig, stack.claims())
    assert stack.request("POST", "/mcp", token=wrong_aud).status == 401
    assert stack.request("POST", "/mcp", token=forged).status == 401
    assert stack.request("POST", "/mcp").status == 401
    assert stack.request("POST", "/mcp", token="not-a-jwt").status == 401
    # A token in the query string is not a credential, and must not be logged either.
    assert stack.request("POST", f"/mcp?access_token={valid}").status == 401
    # A valid token's POST carries a JSON-RPC body: the shipped MCP policy refuses an empty one.
    assert stack.post_mcp(valid).status == 200

    text = _log_after(stack, 5, "denied /mcp")
    assert "denied /mcp: bad_audience (invalid audience)" in text
    assert "denied /mcp: bad_signature (invalid signature)" in text
    assert "denied /mcp: missing_token" in text
    assert "denied /mcp: malformed_token (not a compact JWS with three parts)" in text
    for token in (wrong_aud, forged, valid):
        for part in token.split("."):
            assert part not in text, "a token part appears in Envoy's log"
    assert "not-a-jwt" not in text
    assert "access_token" not in text


def test_no_per_request_lines_at_info(stack_factory, keys):
    """At Envoy's default level a flood of refusals writes nothing per request (it would cost
    throughput and fill disks); the filter's start-up line shows the log is being read."""
    stack = stack_factory("logging-info", keys=keys.all_published(), start=False)
    stack.envoy.extra_args = ["--file-flush-interval-msec", "50"]
    stack.start()
    try:
        for _ in range(3):
            assert stack.request("POST", "/mcp", token=mint(keys.sig, stack.claims(aud="nope"))).status == 401
        assert stack.post_mcp(mint(keys.sig, stack.claims())).status == 200
        text = _log_after(stack, 1, "key set version 1 loaded")
        assert "configured for issuer" in text
        assert "key set version 1 loaded" in text
        assert "denied /mcp" not in text
    finally:
        stack.stop()
