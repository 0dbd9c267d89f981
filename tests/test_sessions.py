"""Session binding (issue 11), through Envoy.

The recording upstream hands out a new `Mcp-Session-Id` on its answer to an `initialize` that
carries none, as a Streamable HTTP server does. The filter binds that id to the (iss, sub) of the
token that started it; a request presenting it with another subject's valid token is answered
`404` with a JSON-RPC error (so a client starts a new session), counted
`mcp_auth.denied.session_mismatch`, and never reaches the upstream. The owner's own requests, and
session ids the filter never saw, pass (the server judges those). `session_binding:
{"enabled": false}` (its own Envoy) lets the hijack through, which shows the check is the
filter's.
"""
from __future__ import annotations

import json
import time

import pytest

from helpers import counters
from helpers.asserts import assert_allowed, assert_not_forwarded

INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "t", "version": "1"}}}).encode()


@pytest.fixture(scope="module")
def bound(stack_factory, keys):
    # Session binding alone: without the shipped MCP policy (which would read every POST's body
    # and count its own verdicts) and its required scope.
    stack = stack_factory("sessions", keys=keys.all_published(),
                          overrides={"required_scopes": []}, unset=("mcp",))
    stack.upstream.hand_out_sessions = True
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def unbound(stack_factory, keys):
    stack = stack_factory("sessions-off", keys=keys.all_published(), unset=("mcp",),
                          overrides={"session_binding": {"enabled": False}, "required_scopes": []})
    stack.upstream.hand_out_sessions = True
    yield stack
    stack.stop()


def settled(stack):
    """The counters once the previous test's increments have landed (they reach Envoy on the
    filter's 100 ms tick)."""
    time.sleep(0.3)
    return counters.read(stack.envoy)


def token_of(stack, keys, sub: str) -> str:
    return stack.token(keys.sig, stack.claims(sub=sub))


def initialize(stack, token: str) -> str:
    resp = stack.request("POST", "/mcp", token=token, body=INITIALIZE,
                         headers=[("content-type", "application/json"),
                                  ("accept", "application/json, text/event-stream")])
    assert_allowed(stack, resp)
    session = resp.header("mcp-session-id")
    assert session and session.startswith("session-"), resp
    return session


def in_session(stack, token: str, session, method: str = "POST"):
    headers = [("mcp-session-id", s) for s in ([session] if isinstance(session, str) else session)]
    if method == "POST":
        return stack.post_mcp(token, headers=headers)
    return stack.request(method, "/mcp", token=token, headers=headers)


def assert_session_not_found(stack, resp):
    assert resp.status == 404, resp
    assert (resp.header("content-type") or "").split(";")[0] == "application/json", resp
    body = resp.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None, body
    assert isinstance(body["error"]["code"], int) and body["error"]["message"], body
    assert resp.header("www-authenticate") is None, resp
    assert_not_forwarded(stack, resp)


def test_the_owner_keeps_its_session(bound, keys):
    alice = token_of(bound, keys, "alice")
    before = counters.read(bound.envoy)
    session = initialize(bound, alice)
    for _ in range(3):
        seen = assert_allowed(bound, in_session(bound, alice, session))
        assert seen.header_all("mcp-session-id") == [session]
    counters.wait_delta(bound.envoy, before, {"mcp_auth.allowed": 4})


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
def test_another_subject_cannot_use_the_session(bound, keys, method):
    alice, mallory = token_of(bound, keys, "alice"), token_of(bound, keys, "mallory")
    before = settled(bound)
    session = initialize(bound, alice)
    upstream_before = bound.upstream.count
    for _ in range(2):
        assert_session_not_found(bound, in_session(bound, mallory, session, method))
    counters.wait_delta(bound.envoy, before, {"mcp_auth.allowed": 1, "mcp_auth.denied.session_mismatch": 2})
    assert bound.upstream.count == upstream_before
    # The owner is not disturbed: the session is still hers.
    assert_allowed(bound, in_session(bound, alice, session))


@pytest.mark.parametrize("path", ["/mcp/", "/MCP", "/mcp;x", "//mcp", "/other"])
def test_the_session_is_bound_on_every_path(bound, keys, path):
    """Envoy routes every path to the server, and servers differ on which of these they take for
    their endpoint (Express ignores a trailing slash and case by default): the filter cannot
    know, so a bound session id is checked wherever it is presented."""
    alice, mallory = token_of(bound, keys, "alice"), token_of(bound, keys, "mallory")
    session = initialize(bound, alice)
    resp = bound.request("POST", path, token=mallory, body=b"{}",
                         headers=[("mcp-session-id", session), ("content-type", "application/json")])
    assert_session_not_found(bound, resp)
    assert_allowed(bound, bound.request("POST", path, token=alice, body=b"{}",
                                        headers=[("mcp-session-id", session)]))


def test_the_same_subject_with_a_new_token_keeps_the_session(bound, keys):
    session = initialize(bound, token_of(bound, keys, "bob"))
    renewed = bound.token(keys.sig, bound.claims(sub="bob", jti="renewed"))
    assert_allowed(bound, in_session(bound, renewed, session))


def test_an_unknown_session_id_passes_to_the_server(bound, keys):
    seen = assert_allowed(bound, in_session(bound, token_of(bound, keys, "mallory"), "session-never-issued"))
    assert seen.header("mcp-session-id") == "session-never-issued"


def test_each_subject_owns_only_its_own_session(bound, keys):
    alice, carol = token_of(bound, keys, "alice"), token_of(bound, keys, "carol")
    a_session, c_session = initialize(bound, alice), initialize(bound, carol)
    assert a_session != c_session
    assert_allowed(bound, in_session(bound, carol, c_session))
    assert_session_not_found(bound, in_session(bound, alice, c_session))
    assert_session_not_found(bound, in_session(bound, carol, a_session))


def test_a_bound_session_id_behind_an_unknown_one_is_not_smuggled(bound, keys):
    """Two `Mcp-Session-Id` headers, an unknown one first and the victim's second: a server that
    reads the last value would join the victim's session. Neither may reach it as the victim's."""
    alice, mallory = token_of(bound, keys, "alice"), token_of(bound, keys, "mallory")
    session = initialize(bound, alice)
    resp = in_session(bound, mallory, ["session-never-issued", session])
    seen = bound.reached_upstream(resp)
    assert seen is None or session not in seen.header_all("mcp-session-id"), \
        f"the victim's session id reached the server with another subject's token: {resp!r}"
    # The owner's own request with two copies goes on with the one judged.
    seen = assert_allowed(bound, in_session(bound, alice, [session, "session-other"]))
    assert seen.header_all("mcp-session-id") == [session]


def test_binding_disabled_lets_the_hijack_through(unbound, keys):
    alice, mallory = token_of(unbound, keys, "alice"), token_of(unbound, keys, "mallory")
    before = counters.read(unbound.envoy)
    session = initialize(unbound, alice)
    seen = assert_allowed(unbound, in_session(unbound, mallory, session))
    assert seen.header("mcp-session-id") == session
    counters.wait_delta(unbound.envoy, before, {"mcp_auth.allowed": 2})
