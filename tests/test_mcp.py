"""MCP-aware authorization through a real Envoy (issue 10): every outcome of the `mcp` section,
in both protocol eras, asserting what reached the upstream (nothing for a refusal, the exact
bytes for a permitted body) and the counters each outcome moves.

Three configurations, one Envoy each:
  * ``mcp_stack``: the policy below, bodies always read (debug log on, for the log checks);
  * ``trusted_stack``: the same policy with ``trust_routing_headers`` and ``hide_unscoped``;
  * a policy with a bad CEL rule, which Envoy must refuse.

The upstream is the recording one of helpers.servers, taught MCP lists: asked (``x-reply``) it
answers tools/list, prompts/list, resources/list and resources/templates/list in JSON or as an
SSE stream written in several pieces, with events before and after the response.
"""
from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
import uuid

import pytest

from helpers import counters
from helpers.http import wait_for
from helpers.servers import _UpstreamHandler
from test_config import refused

MAX_BODY = 4096

POLICY = {
    "endpoint": "/mcp",
    "max_body_bytes": MAX_BODY,
    "rules": [
        'mcp.tool.name == "echo" && "admin" in jwt.roles',  # the tutorial's rule, verbatim
        'mcp.tool.name == "whoami"',
        'mcp.tool.name.startsWith("admin_") && "admin" in jwt.roles',
        'mcp.prompt.name == "greet"',
        'mcp.resource.name.startsWith("file:///")',
    ],
    "scopes": {
        "tools": {"echo": ["mcp:tools"], "whoami": ["mcp:admin"], "admin_*": ["mcp:admin"]},
        "prompts": {"*": ["mcp:prompts"]},
        "resources": {"file:///private/*": ["mcp:private"]},
    },
}

# Callers: the scopes and roles each token carries.
CALLERS = {
    "admin": ("openid mcp:tools mcp:prompts", ["admin"]),       # lacks mcp:admin, mcp:private
    "user": ("openid mcp:tools mcp:prompts", ["user"]),         # not admin
    "user_scoped": ("openid mcp:tools mcp:admin", ["user"]),    # every tool scope, not admin
    "super": ("openid mcp:tools mcp:admin mcp:prompts mcp:private", ["admin"]),
    "bare": ("openid", ["admin"]),                              # no MCP scope at all
}

HEADER_MISMATCH = -32020
INSUFFICIENT_SCOPE_CODE = -32001
FORBIDDEN_CODE = -32003


# --------------------------------------------------------------------------- the MCP upstream

def _raw_id(value) -> str:
    return json.dumps(value, separators=(",", ":"))


# Items of each list, as raw JSON text (name, text): the bytes a kept item must go out with.
LIST_ITEMS = {
    "tools/list": ("tools", [
        ("echo", '{"name":"echo","description":"Echo a message","inputSchema":{"type":"object"}}'),
        ("whoami", '{"name":"whoami","inputSchema":{"type":"object","properties":{}}}'),
        ("admin_reset", '{"name":"admin_reset","inputSchema":{"type":"object"}}'),
        ("secret", '{"name":"secret","inputSchema":{"type":"object"}}'),
        # An escaped spelling of a forbidden name is judged decoded.
        ("secr\\u0065t", '{"name":"secr\\u0065t","annotations":{"title":"x"},"inputSchema":{}}'),
    ]),
    "prompts/list": ("prompts", [
        ("greet", '{"name":"greet","description":"Say hello"}'),
        ("leak", '{"name":"leak","arguments":[{"name":"what"}]}'),
    ]),
    "resources/list": ("resources", [
        ("file:///public/a", '{"uri":"file:///public/a","name":"a"}'),
        ("file:///private/b", '{"uri":"file:///private/b","name":"b"}'),
        ("https://evil.example/x", '{"uri":"https://evil.example/x","name":"x"}'),
    ]),
    "resources/templates/list": ("resourceTemplates", [
        ("file:///public/{name}", '{"uriTemplate":"file:///public/{name}","name":"pub"}'),
        ("https://evil.example/{x}", '{"uriTemplate":"https://evil.example/{x}","name":"evil"}'),
    ]),
}


def list_result(method: str, request_id, keep=None) -> bytes:
    """The upstream's response to a list request; with ``keep`` (names), what the filter must
    make of it: the same bytes with the other items spliced out."""
    member, items = LIST_ITEMS[method]
    texts = [text for name, text in items if keep is None or name in keep]
    return (f'{{"jsonrpc":"2.0","id":{_raw_id(request_id)},"result":{{"{member}":[' + ",".join(texts)
            + '],"nextCursor":"cursor-2","_meta":{"x":[1,2]}}}').encode()


def sse_parts(method: str, request_id, keep=None) -> tuple[bytes, bytes, bytes]:
    """(before, response event, after) of a list answered on an event stream: before it a
    comment, a notification whose data has a "tools" member, and a server request that reuses
    the list's id (ids are per direction); after it another notification."""
    before = (b": stream opened\n\n"
              b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":'
              b'{"level":"info","data":{"tools":[{"name":"secret"}]}}}\n\n'
              b'event: message\ndata: {"jsonrpc":"2.0","id":' + _raw_id(request_id).encode()
              + b',"method":"sampling/createMessage","params":{"messages":[],"maxTokens":1}}\n\n')
    response = b"event: message\nid: ev-3\ndata: " + list_result(method, request_id, keep) + b"\n\n"
    after = b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":' \
            b'{"progressToken":1,"progress":1}}\n\n'
    return before, response, after


class McpUpstreamHandler(_UpstreamHandler):
    """Records every request (reading chunked bodies too) and the moment its headers arrived;
    answers lists when asked with ``x-reply: json|sse``, otherwise like the recording upstream."""

    def _read_body(self) -> bytes:
        if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
            return super()._read_body()
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return body
            body += self.rfile.read(size)
            self.rfile.readline()

    def _handle(self):
        owner = self.server.owner
        test_id = self.headers.get("x-test-id")
        with owner._lock:
            owner.arrivals.append(test_id)
        body = self._read_body()
        record = {"method": self.command, "path": self.path,
                  "headers": [(k.lower(), v) for k, v in self.headers.items()], "body": body}
        with owner._lock:
            owner.requests.append(record)
        reply = self.headers.get("x-reply")
        if reply not in ("json", "sse"):
            payload = json.dumps({"method": self.command, "path": self.path}).encode()
            self._send(200, payload, {"Content-Type": "application/json", "x-upstream": "echo"})
            return
        message = json.loads(body)
        if reply == "json" and isinstance(message, list):  # a batch of list requests
            answers = [list_result(m["method"], m["id"]) for m in message]
            self._send(200, b"[" + b",".join(answers) + b"]",
                       {"Content-Type": "application/json", "x-upstream": "echo"})
            return
        if reply == "json":
            headers = {"Content-Type": "application/json", "x-upstream": "echo",
                       "Cache-Control": "public, max-age=60"}
            answer = list_result(message["method"], message["id"])
            if "gzip" in (self.headers.get("Accept-Encoding") or "") or self.headers.get("x-gzip"):
                answer = gzip.compress(answer)
                headers["Content-Encoding"] = "gzip"
            self._send(200, answer, headers)
            return
        before, response, after = sse_parts(message["method"], message["id"])
        if self.headers.get("x-gzip"):  # compressed although the client was not asked
            self._send(200, gzip.compress(before + response + after),
                       {"Content-Type": "text/event-stream", "Content-Encoding": "gzip", "x-upstream": "echo"})
            return
        self.send_response(200)
        for name, value in (("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                            ("x-upstream", "echo"), ("Transfer-Encoding", "chunked")):
            self.send_header(name, value)
        self.end_headers()
        gate = owner.gates.get(test_id)
        # Several writes: the events before, then the response cut mid-line and mid-name.
        cuts = [3, 9, len(response) // 2, len(response) - 30, len(response) - 1]
        pieces = [before[:40], before[40:]]
        pieces += [response[a:b] for a, b in zip([0] + cuts, cuts + [len(response)])]
        pieces.append(after)
        for i, piece in enumerate(pieces):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            if i == 1 and gate is not None:
                # The response is held back until the client has read the events before it.
                owner.gate_results[test_id] = gate.wait(5)
            time.sleep(0.02)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_DELETE = _handle


def _mcp_stack(stack_factory, keys, name: str, policy: dict, debug: bool = False):
    # The policy under test alone: the shipped required_scopes (mcp:tools) would refuse these
    # tests' tokens before the policy sees them.
    stack = stack_factory(name, start=False, keys=keys.keycloak(), overrides={"mcp": policy, "required_scopes": []})
    stack.upstream.handler = McpUpstreamHandler
    stack.upstream.arrivals = []
    stack.upstream.gates = {}
    stack.upstream.gate_results = {}
    if debug:
        stack.envoy.extra_args = ["--component-log-level", "wasm:debug", "--file-flush-interval-msec", "50"]
    stack.start()
    stack.tokens = {who: stack.token(keys.sig, stack.claims(scope=scope, roles=roles))
                    for who, (scope, roles) in CALLERS.items()}
    return stack


@pytest.fixture(scope="module")
def mcp_stack(stack_factory, keys):
    stack = _mcp_stack(stack_factory, keys, "mcp", POLICY, debug=True)
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def trusted_stack(stack_factory, keys):
    policy = dict(POLICY, trust_routing_headers=True, hide_unscoped=True)
    stack = _mcp_stack(stack_factory, keys, "mcp-trusted", policy)
    yield stack
    stack.stop()


# --------------------------------------------------------------------------- requests and checks

def rpc(method: str, item=None, id_=1, **extra) -> bytes:
    message = {"jsonrpc": "2.0", "id": id_, "method": method}
    if id_ is None:
        del message["id"]
    if item is not None:
        key = "uri" if method.startswith("resources/") else "name"
        message["params"] = {key: item}
        if method == "tools/call":
            message["params"]["arguments"] = {"message": "tool-argument-never-logged"}
    message.update(extra)
    return json.dumps(message, separators=(",", ":")).encode()


def post(stack, who: str | None, body: bytes, headers=None, path: str = "/mcp"):
    hdrs = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")]
    hdrs += list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    token = stack.tokens[who] if who else None
    return stack.request("POST", path, token=token, headers=hdrs, body=body)


class Counted:
    """Checks the filter's counters moved by exactly ``expected`` over the block."""

    used = False  # by the current test (see settle_counters)

    def __init__(self, stack, expected: dict):
        self.stack, self.expected = stack, expected

    def __enter__(self):
        Counted.used = True
        self.before = counters.read(self.stack.envoy)
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            counters.wait_delta(self.stack.envoy, self.before, self.expected)


@pytest.fixture(autouse=True)
def settle_counters():
    """A test that does not count its requests lets their counters land (the filter flushes
    them on its 100 ms tick) before the next test reads a baseline."""
    Counted.used = False
    yield
    if not Counted.used:
        time.sleep(0.25)


def outcome(name: str, **more) -> dict:
    """The counter change of one request with a valid token whose MCP verdict is ``name``."""
    return {"mcp_auth.allowed": 1, f"mcp_auth.mcp.{name}": 1,
            **{f"mcp_auth.mcp.{k}": v for k, v in more.items()}}


TOKEN_ONLY = {"mcp_auth.allowed": 1}


def assert_forwarded(stack, resp, body: bytes):
    """Reached the upstream with exactly ``body``, and its answer came back."""
    assert resp.status == 200, resp
    assert resp.header("x-upstream") == "echo", resp
    seen = stack.reached_upstream(resp)
    assert seen is not None, f"the upstream did not see the request {resp!r}"
    assert seen.body == body, (seen.body, body)
    return seen


def assert_not_forwarded(stack, resp):
    assert stack.reached_upstream(resp) is None, f"a refused request reached the upstream {resp!r}"
    assert resp.header("x-upstream") is None, resp


def assert_jsonrpc_error(resp, status: int, code: int | None = None, id_="any") -> dict:
    assert resp.status == status, resp
    assert (resp.header("content-type") or "").split(";")[0] == "application/json", resp
    body = resp.json()
    assert body["jsonrpc"] == "2.0", body
    assert set(body) == {"jsonrpc", "id", "error"}, body
    assert isinstance(body["error"]["code"], int) and isinstance(body["error"]["message"], str), body
    if code is not None:
        assert body["error"]["code"] == code, body
    if id_ != "any":
        assert body["id"] == id_, body
    return body


def assert_step_up(stack, resp, scope: str, id_="any"):
    """403 naming only this operation's scopes (SEP-2350), nothing forwarded."""
    assert_jsonrpc_error(resp, 403, INSUFFICIENT_SCOPE_CODE, id_)
    challenges = resp.header_all("www-authenticate")
    assert challenges == [f'Bearer error="insufficient_scope", scope="{scope}", '
                          f'resource_metadata="{stack.metadata_url}"'], resp
    assert_not_forwarded(stack, resp)


def assert_rule_refusal(stack, resp, id_="any"):
    """403 JSON-RPC error with the request's id, no challenge (more scopes would not help)."""
    body = assert_jsonrpc_error(resp, 403, FORBIDDEN_CODE, id_)
    assert resp.header_all("www-authenticate") == [], resp
    assert "insufficient_scope" not in json.dumps(body), body
    assert_not_forwarded(stack, resp)


def assert_mismatch(stack, resp):
    assert_jsonrpc_error(resp, 400, HEADER_MISMATCH)
    assert_not_forwarded(stack, resp)


# --------------------------------------------------------------------------- judged methods

# (caller, method, item, verdict, step-up scope)
JUDGED = [
    ("admin", "tools/call", "echo", "allowed", None),
    ("user", "tools/call", "echo", "rule", None),                 # scoped, but not admin
    ("bare", "tools/call", "echo", "scope", "mcp:tools"),
    ("admin", "tools/call", "whoami", "scope", "mcp:admin"),      # only this operation's scope
    ("super", "tools/call", "whoami", "allowed", None),
    ("user", "tools/call", "admin_reset", "scope", "mcp:admin"),  # scopes before rules
    ("user_scoped", "tools/call", "admin_reset", "rule", None),
    ("super", "tools/call", "admin_reset", "allowed", None),
    ("super", "tools/call", "secret", "rule", None),              # no scope needed, no rule permits
    ("admin", "prompts/get", "greet", "allowed", None),
    ("bare", "prompts/get", "greet", "scope", "mcp:prompts"),
    ("super", "prompts/get", "leak", "rule", None),
    ("bare", "resources/read", "file:///public/a", "allowed", None),
    ("admin", "resources/read", "file:///private/b", "scope", "mcp:private"),
    ("super", "resources/read", "file:///private/b", "allowed", None),
    ("super", "resources/read", "https://evil.example/x", "rule", None),
    ("bare", "resources/subscribe", "file:///public/a", "allowed", None),
    ("admin", "resources/subscribe", "file:///private/b", "scope", "mcp:private"),
    ("super", "resources/subscribe", "https://evil.example/x", "rule", None),
]


def check_verdict(stack, resp, body, verdict, scope, id_):
    if verdict == "allowed":
        assert_forwarded(stack, resp, body)
    elif verdict == "scope":
        assert_step_up(stack, resp, scope, id_)
    else:
        assert_rule_refusal(stack, resp, id_)


COUNTER = {"allowed": "allowed", "scope": "denied.scope", "rule": "denied.rule"}


@pytest.mark.parametrize("who,method,item,verdict,scope", JUDGED,
                         ids=[f"{w}-{m}-{i}-{v}" for w, m, i, v, _ in JUDGED])
def test_judged_methods(mcp_stack, who, method, item, verdict, scope):
    body = rpc(method, item, id_=41)
    with Counted(mcp_stack, outcome(COUNTER[verdict])):
        resp = post(mcp_stack, who, body)
    check_verdict(mcp_stack, resp, body, verdict, scope, 41)


def test_rule_refusal_carries_a_string_id(mcp_stack):
    resp = post(mcp_stack, "user", rpc("tools/call", "echo", id_="req-7"))
    assert_rule_refusal(mcp_stack, resp, "req-7")


def test_a_judged_method_without_an_id_is_judged_too(mcp_stack):
    """A tools/call sent as a notification is still a call a server may run."""
    body = rpc("tools/call", "secret", id_=None)
    with Counted(mcp_stack, outcome("denied.rule")):
        resp = post(mcp_stack, "super", body)
    assert_rule_refusal(mcp_stack, resp, None)


PASSING = {
    "initialize": rpc("initialize", params={"protocolVersion": "2025-06-18", "capabilities": {},
                                            "clientInfo": {"name": "t", "version": "1"}}),
    "ping": rpc("ping"),
    "server_discover": rpc("server/discover"),
    "subscriptions_listen": rpc("subscriptions/listen", params={}),
    "completion": rpc("completion/complete", params={"ref": {"type": "ref/prompt", "name": "leak"}}),
    "unsubscribe": rpc("resources/unsubscribe", "https://evil.example/x"),
    "tools_list": rpc("tools/list"),
    "surrounding_whitespace": (b' \r\n\t{"jsonrpc":"2.0","id":1,"method":"resources/read",'
                               b'"params":{"uri":"file:///public/a"}}\n'),
    "notification": b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
    "cancelled": b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}',
    "client_result": b'{"jsonrpc":"2.0","id":"srv-1","result":{"content":[{"type":"text","text":"x"}]}}',
    "client_error": b'{"jsonrpc":"2.0","id":9,"error":{"code":-1,"message":"declined"}}',
}


@pytest.mark.parametrize("name", list(PASSING))
def test_other_methods_notifications_and_responses_pass(mcp_stack, name):
    body = PASSING[name]
    with Counted(mcp_stack, outcome("allowed")):
        resp = post(mcp_stack, "bare", body)
    assert_forwarded(mcp_stack, resp, body)


def test_query_string_does_not_escape_the_policy(mcp_stack):
    resp = post(mcp_stack, "super", rpc("tools/call", "secret"), path="/mcp?x=1")
    assert_rule_refusal(mcp_stack, resp, 1)


# --------------------------------------------------------------------------- batches

def batch(*messages: bytes) -> bytes:
    return b"[" + b",".join(messages) + b"]"


def test_batch_of_permitted_messages_is_forwarded(mcp_stack):
    body = batch(rpc("tools/call", "echo", id_=1), rpc("ping", id_=2), PASSING["notification"])
    with Counted(mcp_stack, outcome("allowed")):
        resp = post(mcp_stack, "admin", body)
    assert_forwarded(mcp_stack, resp, body)


def test_batch_with_one_forbidden_element_is_refused_whole(mcp_stack):
    body = batch(rpc("tools/call", "echo", id_=1), rpc("tools/call", "secret", id_=2))
    with Counted(mcp_stack, outcome("denied.rule")):
        resp = post(mcp_stack, "admin", body)
    assert_rule_refusal(mcp_stack, resp)


def test_batch_missing_a_scope_steps_up_before_rules(mcp_stack):
    body = batch(rpc("tools/call", "secret", id_=1), rpc("tools/call", "echo", id_=2),
                 rpc("tools/call", "whoami", id_=3))
    with Counted(mcp_stack, outcome("denied.scope")):
        resp = post(mcp_stack, "admin", body)
    assert_step_up(mcp_stack, resp, "mcp:admin")


# --------------------------------------------------------------------------- bad bodies

def _deep(levels: int) -> bytes:
    return (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":'
            + b"[" * levels + b"]" * levels + b"}}}")


BAD_BODIES = {
    # name: (body, extra headers, status, JSON-RPC code)
    "empty": (b"", {}, 400, -32700),
    "not_json": (b'{"jsonrpc":"2.0","id":1,', {}, 400, -32700),
    "two_messages": (rpc("tools/call", "echo") + rpc("tools/call", "secret"), {}, 400, -32700),
    "invalid_utf8": (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ech\xff"}}', {},
                     400, -32700),
    "not_jsonrpc": (b'{"hello":"world"}', {}, 400, -32600),
    "wrong_version": (b'{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"echo"}}', {},
                      400, -32600),
    "scalar": (b'"tools/call"', {}, 400, -32600),
    "empty_batch": (b"[]", {}, 400, -32600),
    "batch_with_a_number": (batch(rpc("ping"), b"5"), {}, 400, -32600),
    "too_deep": (_deep(100), {}, 400, -32600),
    "duplicate_method": (b'{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call",'
                         b'"params":{"name":"secret"}}', {}, 400, -32600),
    "duplicate_method_escaped": (b'{"jsonrpc":"2.0","id":1,"method":"tools/list","m\\u0065thod":"tools/call",'
                                 b'"params":{"name":"secret"}}', {}, 400, -32600),
    "duplicate_name": (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"secret"}}',
                       {}, 400, -32600),
    "duplicate_params": (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},'
                         b'"params":{"name":"secret"}}', {}, 400, -32600),
    "name_number": (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}', {}, 400, -32602),
    "name_null": (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null}}', {}, 400, -32602),
    "name_array": (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["echo"]}}', {},
                   400, -32602),
    "name_missing": (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}', {}, 400, -32602),
    "uri_object": (b'{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":{"a":1}}}', {},
                   400, -32602),
    "gzip": (gzip.compress(rpc("tools/call", "echo")), {"content-encoding": "gzip"}, 415, None),
    "deflate_identity": (rpc("tools/call", "echo"), {"content-encoding": "deflate, identity"}, 415, None),
    "over_max_body_bytes": (rpc("tools/call", "echo", params={"name": "echo", "arguments": {"pad": "x" * MAX_BODY}}),
                            {}, 413, None),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_bodies_are_refused(mcp_stack, name):
    body, headers, status, code = BAD_BODIES[name]
    with Counted(mcp_stack, outcome("bad_body")):
        resp = post(mcp_stack, "super", body, headers=headers)
    assert_jsonrpc_error(resp, status, code)
    assert resp.header_all("www-authenticate") == [], resp
    assert_not_forwarded(mcp_stack, resp)


def test_identity_encoding_and_a_body_of_exactly_max_bytes_pass(mcp_stack):
    head = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"pad":"'
    tail = b'"}}}'
    body = head + b"x" * (MAX_BODY - len(head) - len(tail)) + tail
    assert len(body) == MAX_BODY
    with Counted(mcp_stack, outcome("allowed")):
        resp = post(mcp_stack, "admin", body, headers={"content-encoding": "identity"})
    assert_forwarded(mcp_stack, resp, body)


# --------------------------------------------------------------------------- escaped names

ESCAPED = [
    # (caller, body, verdict, scope)
    ("admin", b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"ech\\u006f"}}', "allowed", None),
    ("user", b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"ech\\u006f"}}', "rule", None),
    ("admin", b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"whoam\\u0069"}}', "scope",
     "mcp:admin"),
    ("super", b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"\\u0073ecret"}}', "rule", None),
    ("super", b'{"jsonrpc":"2.0","id":5,"method":"tools\\/call","params":{"name":"secret"}}', "rule", None),
    ("super", b'{"jsonrpc":"2.0","id":5,"m\\u0065thod":"tools/call","p\\u0061rams":{"n\\u0061me":"secret"}}',
     "rule", None),
    ("admin", b'{"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"uri":"file:\\/\\/\\/private\\/b"}}',
     "scope", "mcp:private"),
]


@pytest.mark.parametrize("who,body,verdict,scope", ESCAPED, ids=[f"{i}-{e[2]}" for i, e in enumerate(ESCAPED)])
def test_escaped_names_are_judged_decoded(mcp_stack, who, body, verdict, scope):
    with Counted(mcp_stack, outcome(COUNTER[verdict])):
        resp = post(mcp_stack, who, body)
    check_verdict(mcp_stack, resp, body, verdict, scope, 5)


# --------------------------------------------------------------------------- bodies in pieces

def raw_exchange(stack, who: str, pieces, chunked: bool, delay: float = 0.005, headers=()):
    """Sends a POST on a raw socket, its body in ``pieces`` (as HTTP chunks, or as plain writes
    under a Content-Length) with ``delay`` between them; returns (test id, status, headers, body)."""
    test_id = uuid.uuid4().hex
    head = [f"POST /mcp HTTP/1.1", f"host: localhost:{stack.listen_port}", f"x-test-id: {test_id}",
            f"authorization: Bearer {stack.tokens[who]}", "content-type: application/json",
            "connection: close", *[f"{k}: {v}" for k, v in headers]]
    head.append("transfer-encoding: chunked" if chunked else f"content-length: {sum(map(len, pieces))}")
    sock = socket.create_connection(("127.0.0.1", stack.listen_port), timeout=10)
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            for piece in pieces:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                time.sleep(delay)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # answered (and closed) before the whole body was sent
            pass
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return test_id, resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        sock.close()


def split(body: bytes, size: int) -> list[bytes]:
    return [body[i:i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content_length"])
@pytest.mark.parametrize("who,item,verdict", [("admin", "echo", "allowed"), ("user", "echo", "rule"),
                                              ("admin", "whoami", "scope")])
def test_a_body_in_many_small_slow_pieces_is_judged_the_same(mcp_stack, chunked, who, item, verdict):
    body = rpc("tools/call", item, id_=77)
    with Counted(mcp_stack, outcome(COUNTER[verdict])):
        test_id, status, headers, data = raw_exchange(mcp_stack, who, split(body, 2), chunked)
    seen = mcp_stack.upstream.find(test_id)
    if verdict == "allowed":
        assert status == 200 and headers.get("x-upstream") == "echo", (status, headers, data)
        assert seen is not None and seen.body == body
        return
    assert seen is None, "a refused request reached the upstream"
    assert status == 403, (status, headers, data)
    assert json.loads(data)["id"] == 77
    if verdict == "scope":
        assert 'scope="mcp:admin"' in headers["www-authenticate"]
    else:
        assert "www-authenticate" not in headers


def test_a_chunked_body_growing_past_max_body_bytes_is_refused(mcp_stack):
    body = rpc("tools/call", "echo", params={"name": "echo", "arguments": {"pad": "x" * (2 * MAX_BODY)}})
    with Counted(mcp_stack, outcome("bad_body")):
        test_id, status, _, data = raw_exchange(mcp_stack, "admin", split(body, 512), chunked=True, delay=0.01)
    assert status == 413, data
    assert json.loads(data)["jsonrpc"] == "2.0"
    assert mcp_stack.upstream.find(test_id) is None


def test_nothing_reaches_the_server_before_the_body_is_judged(mcp_stack):
    """Headers and half a body sent: the upstream sees nothing until the body is complete."""
    body = rpc("tools/call", "echo", id_=3)
    test_id = uuid.uuid4().hex
    sent = threading.Event()
    arrived_early: list = []

    def late_half():
        time.sleep(0.6)
        arrived_early.append(test_id in mcp_stack.upstream.arrivals)
        sent.set()

    threading.Thread(target=late_half, daemon=True).start()
    test_id, status, _, _ = _half_then_rest(mcp_stack, "admin", body, test_id, sent)
    assert arrived_early == [False], "the request went upstream before its body was judged"
    assert status == 200
    assert mcp_stack.upstream.find(test_id).body == body


def _half_then_rest(stack, who, body, test_id, go: threading.Event, headers=()):
    """Sends the headers and the first half of ``body``, waits for ``go``, sends the rest."""
    head = [f"POST /mcp HTTP/1.1", f"host: localhost:{stack.listen_port}", f"x-test-id: {test_id}",
            f"authorization: Bearer {stack.tokens[who]}", "content-type: application/json",
            "connection: close", f"content-length: {len(body)}", *[f"{k}: {v}" for k, v in headers]]
    sock = socket.create_connection(("127.0.0.1", stack.listen_port), timeout=10)
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body[:len(body) // 2])
        assert go.wait(5)
        sock.sendall(body[len(body) // 2:])
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return test_id, resp.status, dict(resp.getheaders()), resp.read()
    finally:
        sock.close()


# --------------------------------------------------------------------------- GET, DELETE, other paths

@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_get_and_delete_on_the_endpoint_pass_on_the_token(mcp_stack, method):
    with Counted(mcp_stack, TOKEN_ONLY):
        resp = mcp_stack.request(method, "/mcp", token=mcp_stack.tokens["bare"],
                                 headers={"accept": "text/event-stream", "mcp-session-id": "s-1"})
    assert resp.status == 200 and resp.header("x-upstream") == "echo", resp
    assert mcp_stack.reached_upstream(resp).method == method


@pytest.mark.parametrize("path", ["/other", "/mcpx", "/mcp/sub", "/api/mcp"])
def test_other_paths_are_untouched_by_the_policy(mcp_stack, path):
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"secret"}}'
    with Counted(mcp_stack, TOKEN_ONLY):
        resp = post(mcp_stack, "bare", body, path=path)
    assert_forwarded(mcp_stack, resp, body)


@pytest.mark.parametrize("path", ["/mcp/", "//mcp", "/%6Dcp", "/MCP", "/m%63p/?x=1"])
def test_spellings_of_the_endpoint_a_server_may_route_there_are_judged(mcp_stack, path):
    """Envoy does not normalise paths here, and a lenient server (Starlette routes on the
    decoded path; FastMCP serves /mcp/) may take these for the endpoint."""
    with Counted(mcp_stack, outcome("denied.rule")):
        resp = post(mcp_stack, "super", rpc("tools/call", "secret"), path=path)
    assert_rule_refusal(mcp_stack, resp, 1)


def test_the_endpoint_still_needs_a_valid_token(mcp_stack):
    resp = post(mcp_stack, None, rpc("tools/call", "echo"))
    assert resp.status == 401
    assert_not_forwarded(mcp_stack, resp)


def test_policy_scopes_are_in_scopes_supported(mcp_stack):
    resp = mcp_stack.request("GET", mcp_stack.metadata_path)
    assert resp.status == 200
    supported = resp.json()["scopes_supported"]
    assert set(supported) >= {"mcp:tools", "mcp:admin", "mcp:prompts", "mcp:private"}, supported
    assert len(supported) == len(set(supported)), supported


# --------------------------------------------------------------------------- list filtering

# (list method, caller, names visible with the main policy, with hide_unscoped)
LISTS = [
    ("tools/list", "admin", {"echo", "whoami", "admin_reset"}, {"echo"}),
    ("tools/list", "user", {"whoami"}, set()),
    ("tools/list", "super", {"echo", "whoami", "admin_reset"}, {"echo", "whoami", "admin_reset"}),
    ("prompts/list", "admin", {"greet"}, {"greet"}),
    ("prompts/list", "bare", {"greet"}, set()),
    ("resources/list", "admin", {"file:///public/a", "file:///private/b"}, {"file:///public/a"}),
    ("resources/templates/list", "bare", {"file:///public/{name}"}, {"file:///public/{name}"}),
]
LIST_IDS = [f"{m.replace('/', '_')}-{w}" for m, w, _, _ in LISTS]


def _removed(method, keep) -> int:
    return sum(1 for name, _ in LIST_ITEMS[method][1] if name not in keep)


def check_json_list(stack, method, who, keep, id_=12, headers=()):
    body = rpc(method, id_=id_)
    removed = _removed(method, keep)
    with Counted(stack, outcome("allowed", **({"list_filtered": removed} if removed else {}))):
        resp = post(stack, who, body, headers=[("x-reply", "json"), *headers])
    assert_forwarded(stack, resp, body)
    assert resp.body == list_result(method, id_, keep)
    assert resp.header_all("cache-control") == ["private, no-store"], resp
    assert resp.header("content-length") in (None, str(len(resp.body))), resp
    return resp


@pytest.mark.parametrize("method,who,main,hidden", LISTS, ids=LIST_IDS)
def test_json_lists_are_filtered(mcp_stack, method, who, main, hidden):
    check_json_list(mcp_stack, method, who, main)


def test_a_list_the_worker_remembers_is_still_judged_for_each_caller(mcp_stack):
    """The server sends the same item array every time; the worker reads it once and keeps it
    (src/mcp/lists.rs, ListMemo). Each caller, under any request id, still gets its own
    verdicts, in JSON and in a stream alike."""
    for round_ in range(2):
        for who, keep in (("admin", {"echo", "whoami", "admin_reset"}), ("user", {"whoami"}),
                          ("super", {"echo", "whoami", "admin_reset"})):
            check_json_list(mcp_stack, "tools/list", who, keep, id_=100 + round_)
            removed = _removed("tools/list", keep)
            with Counted(mcp_stack, outcome("allowed", **({"list_filtered": removed} if removed else {}))):
                resp, first, rest = sse_exchange(mcp_stack, "tools/list", who, id_=f"L-{round_}")
            before, response, after = sse_parts("tools/list", f"L-{round_}", keep)
            assert (first, rest) == (before, response + after), who
        # Another kind of list in between: the worker keeps both arrays.
        check_json_list(mcp_stack, "prompts/list", "bare", {"greet"}, id_=f"p-{round_}")


def test_a_list_is_filtered_when_the_client_accepts_compressed_responses(mcp_stack):
    """A client that accepts gzip (Node's fetch does, by default) still gets its list: the
    filter cannot read a compressed answer, so the server must not be asked for one."""
    resp = check_json_list(mcp_stack, "tools/list", "admin", {"echo", "whoami", "admin_reset"},
                           headers=[("accept-encoding", "gzip, deflate, br")])
    assert resp.header("content-encoding") is None, resp


@pytest.mark.parametrize("reply", ["json", "sse"])
def test_a_list_compressed_anyway_is_replaced_by_an_error(mcp_stack, reply):
    """A server that compresses without being asked: the filter cannot read the list, so the
    client gets a JSON-RPC error for it, never the unfiltered list."""
    body = rpc("tools/list", id_=21)
    resp = post(mcp_stack, "admin", body, headers={"x-reply": reply, "x-gzip": "1"})
    assert_forwarded(mcp_stack, resp, body)
    assert resp.header("content-encoding") is None, resp
    answer = resp.json()
    assert answer["id"] == 21 and "result" not in answer and isinstance(answer["error"]["code"], int), answer
    assert resp.header_all("cache-control") == ["private, no-store"], resp


def test_a_batch_of_lists_is_filtered_element_by_element(mcp_stack):
    body = batch(rpc("tools/list", id_=1), rpc("prompts/list", id_="p"))
    with Counted(mcp_stack, outcome("allowed", list_filtered=3)):
        resp = post(mcp_stack, "admin", body, headers={"x-reply": "json"})
    assert_forwarded(mcp_stack, resp, body)
    assert resp.body == (b"[" + list_result("tools/list", 1, {"echo", "whoami", "admin_reset"}) + b","
                         + list_result("prompts/list", "p", {"greet"}) + b"]")
    assert resp.header_all("cache-control") == ["private, no-store"], resp


@pytest.mark.parametrize("method,who,main,hidden", LISTS, ids=LIST_IDS)
def test_json_lists_are_filtered_with_hide_unscoped(trusted_stack, method, who, main, hidden):
    check_json_list(trusted_stack, method, who, hidden)


def sse_exchange(stack, method, who, id_="L-1", headers=()):
    """A list over SSE; the upstream holds the response back until the events before it
    reached the client, which proves they were not buffered. Returns (response, before, rest)."""
    body = rpc(method, id_=id_)
    test_id = uuid.uuid4().hex
    gate = threading.Event()
    stack.upstream.gates[test_id] = gate
    before, _, _ = sse_parts(method, id_)
    conn = http.client.HTTPConnection("127.0.0.1", stack.listen_port, timeout=10)
    try:
        hdrs = {"host": f"localhost:{stack.listen_port}", "x-test-id": test_id, "x-reply": "sse",
                "authorization": f"Bearer {stack.tokens[who]}", "content-type": "application/json",
                "accept": "application/json, text/event-stream", **dict(headers)}
        conn.request("POST", "/mcp", body=body, headers=hdrs)
        resp = conn.getresponse()
        first = resp.read(len(before))
        gate.set()
        rest = resp.read()
    finally:
        conn.close()
    seen = stack.upstream.find(test_id)
    assert seen is not None and seen.body == body
    assert stack.upstream.gate_results.get(test_id) is True, \
        "the events before the response did not reach the client before the response was sent"
    return resp, first, rest


@pytest.mark.parametrize("method,who,main,hidden", LISTS, ids=LIST_IDS)
def test_sse_lists_rewrite_only_the_response_event(mcp_stack, method, who, main, hidden):
    removed = _removed(method, main)
    with Counted(mcp_stack, outcome("allowed", list_filtered=removed)):
        resp, first, rest = sse_exchange(mcp_stack, method, who)
    before, response, after = sse_parts(method, "L-1", main)
    assert resp.status == 200
    assert resp.getheader("content-type") == "text/event-stream"
    assert resp.headers.get_all("cache-control") == ["private, no-store"]
    assert first == before
    assert rest == response + after


def test_sse_list_with_hide_unscoped(trusted_stack):
    resp, first, rest = sse_exchange(trusted_stack, "tools/list", "admin")
    before, response, after = sse_parts("tools/list", "L-1", {"echo"})
    assert first + rest == before + response + after


# --------------------------------------------------------------------------- 2026 era: routing headers

def routing(method, name=None) -> dict:
    headers = {"mcp-method": method, "mcp-protocol-version": "2026-07-28"}
    if name is not None:
        headers["mcp-name"] = name
    return headers


@pytest.mark.parametrize("who,method,item,verdict,scope", JUDGED,
                         ids=[f"{w}-{m}-{i}-{v}" for w, m, i, v, _ in JUDGED])
def test_routing_headers_agreeing_are_judged_the_same(mcp_stack, who, method, item, verdict, scope):
    body = rpc(method, item, id_=42)
    with Counted(mcp_stack, outcome(COUNTER[verdict])):
        resp = post(mcp_stack, who, body, headers=routing(method, item))
    check_verdict(mcp_stack, resp, body, verdict, scope, 42)


@pytest.mark.parametrize("method", ["tools/list", "server/discover", "subscriptions/listen", "ping"])
def test_routing_headers_on_methods_that_name_nothing_pass(mcp_stack, method):
    body = rpc(method)
    with Counted(mcp_stack, outcome("allowed")):
        resp = post(mcp_stack, "bare", body, headers=routing(method))
    assert_forwarded(mcp_stack, resp, body)


def test_routing_headers_agree_with_an_escaped_name(mcp_stack):
    body = b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"ech\\u006f"}}'
    resp = post(mcp_stack, "admin", body, headers=routing("tools/call", "echo"))
    assert_forwarded(mcp_stack, resp, body)


MISMATCHES = {
    # name: (caller, body, headers)
    "method_differs": ("super", rpc("tools/call", "secret"), routing("tools/list")),
    "name_differs": ("super", rpc("tools/call", "secret"), routing("tools/call", "echo")),
    "name_differs_in_case": ("admin", rpc("tools/call", "echo"), routing("tools/call", "Echo")),
    "uri_differs": ("admin", rpc("resources/read", "file:///private/b"), routing("resources/read", "file:///public/a")),
    "prompt_differs": ("super", rpc("prompts/get", "leak"), routing("prompts/get", "greet")),
    "name_missing": ("admin", rpc("tools/call", "echo"), routing("tools/call")),
    "uri_missing": ("bare", rpc("resources/subscribe", "file:///public/a"), routing("resources/subscribe")),
    "name_on_list": ("admin", rpc("tools/list"), routing("tools/list", "echo")),
    "name_on_discover": ("admin", rpc("server/discover"), routing("server/discover", "echo")),
    "name_without_method": ("admin", rpc("tools/list"), {"mcp-name": "echo"}),
    "batch": ("admin", batch(rpc("tools/call", "echo", id_=1), rpc("tools/call", "echo", id_=2)),
              routing("tools/call", "echo")),
}


@pytest.mark.parametrize("name", list(MISMATCHES))
def test_routing_headers_disagreeing_are_refused(mcp_stack, name):
    who, body, headers = MISMATCHES[name]
    with Counted(mcp_stack, outcome("bad_body")):
        resp = post(mcp_stack, who, body, headers=headers)
    assert_mismatch(mcp_stack, resp)


REPEATED = [("mcp-method", "tools/call"), ("mcp-method", "tools/list"),
            ("mcp-name", "echo"), ("mcp-name", "secret")]


def test_repeated_routing_headers_reach_the_server_as_the_one_judged(mcp_stack):
    """Envoy hands the filter the first of repeated headers; a server might read the last."""
    body = rpc("tools/call", "echo")
    resp = post(mcp_stack, "admin", body, headers=REPEATED)
    seen = assert_forwarded(mcp_stack, resp, body)
    assert seen.header_all("mcp-method") == ["tools/call"]
    assert seen.header_all("mcp-name") == ["echo"]


def test_routing_headers_do_not_skip_the_body_unless_trusted(mcp_stack):
    resp = post(mcp_stack, "admin", b"this is not JSON", headers=routing("tools/call", "echo"))
    assert_jsonrpc_error(resp, 400, -32700)
    assert_not_forwarded(mcp_stack, resp)


def test_json_list_with_routing_headers(mcp_stack):
    check_json_list(mcp_stack, "tools/list", "admin", {"echo", "whoami", "admin_reset"},
                    headers=list(routing("tools/list").items()))


# --------------------------------------------------------------------------- trust_routing_headers

def test_trusted_headers_decide_without_reading_the_body(trusted_stack):
    """The body would be refused (not JSON; a forbidden tool; over max_body_bytes): it passes,
    because only the headers are judged."""
    for body in (b"this is not JSON",
                 rpc("tools/call", "secret"),
                 rpc("tools/call", "echo", params={"name": "echo", "arguments": {"pad": "x" * (2 * MAX_BODY)}})):
        with Counted(trusted_stack, outcome("allowed")):
            resp = post(trusted_stack, "admin", body, headers=routing("tools/call", "echo"))
        assert_forwarded(trusted_stack, resp, body)


def test_trusted_headers_forward_before_the_body_is_complete(trusted_stack):
    body = rpc("tools/call", "echo", id_=3)
    test_id = uuid.uuid4().hex
    go = threading.Event()
    arrived: list = []

    def watch():
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and test_id not in trusted_stack.upstream.arrivals:
            time.sleep(0.02)
        arrived.append(test_id in trusted_stack.upstream.arrivals)
        go.set()

    threading.Thread(target=watch, daemon=True).start()
    _, status, _, _ = _half_then_rest(trusted_stack, "admin", body, test_id, go,
                                      headers=routing("tools/call", "echo").items())
    assert arrived == [True], "the request waited for its body although the headers were trusted"
    assert status == 200


def test_trusted_repeated_routing_headers_cannot_smuggle_a_name(trusted_stack):
    """Judged `echo` on the first Mcp-Name; the server must not see `secret` beside it."""
    body = rpc("tools/call", "secret")
    resp = post(trusted_stack, "admin", body, headers=REPEATED)
    seen = assert_forwarded(trusted_stack, resp, body)
    assert seen.header_all("mcp-method") == ["tools/call"]
    assert seen.header_all("mcp-name") == ["echo"]  # an SEP-2243 server refuses this body


@pytest.mark.parametrize("who,name,verdict,scope", [
    ("admin", "whoami", "scope", "mcp:admin"),
    ("super", "secret", "rule", None),
    ("user", "echo", "rule", None),
])
def test_trusted_headers_refusals(trusted_stack, who, name, verdict, scope):
    with Counted(trusted_stack, outcome(COUNTER[verdict])):
        resp = post(trusted_stack, who, b"not read", headers=routing("tools/call", name))
    check_verdict(trusted_stack, resp, b"", verdict, scope, "any")


@pytest.mark.parametrize("headers", [routing("tools/call"), routing("tools/list", "echo")],
                         ids=["name_missing", "name_on_list"])
def test_trusted_headers_still_must_be_consistent(trusted_stack, headers):
    with Counted(trusted_stack, outcome("bad_body")):
        resp = post(trusted_stack, "super", rpc("tools/call", "echo"), headers=headers)
    assert_mismatch(trusted_stack, resp)


def test_without_routing_headers_the_trusting_filter_reads_the_body(trusted_stack):
    resp = post(trusted_stack, "super", rpc("tools/call", "secret"))
    assert_rule_refusal(trusted_stack, resp, 1)
    resp = post(trusted_stack, "super", b'{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}')
    assert_jsonrpc_error(resp, 400, -32600)
    assert_not_forwarded(trusted_stack, resp)


def test_trusted_list_headers_still_filter_the_list(trusted_stack):
    check_json_list(trusted_stack, "tools/list", "admin", {"echo"}, headers=list(routing("tools/list").items()))


# --------------------------------------------------------------------------- logs and configuration

def test_debug_log_names_method_and_item_never_arguments(mcp_stack):
    resp = post(mcp_stack, "admin", rpc("tools/call", "echo"))
    assert resp.status == 200
    deadline = time.monotonic() + 3
    while '"tools/call"' not in mcp_stack.envoy.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = mcp_stack.envoy.log_text()
    lines = [line for line in log.splitlines() if "mcp " in line and '"tools/call"' in line]
    assert any('"echo"' in line for line in lines), lines[-5:]
    assert "tool-argument-never-logged" not in log
    assert all(token not in log for token in mcp_stack.tokens.values())


def test_a_bad_cel_rule_makes_envoy_refuse_the_filter(stack_factory, keys):
    policy = dict(POLICY, rules=['mcp.tool.name == "echo"', "mcp.tool.name == "])
    stack = stack_factory("mcp-bad-rule", start=False, keys=keys.keycloak(), overrides={"mcp": policy})
    stack.jwks.launch()
    stack.upstream.start()
    ok, how = refused(stack)
    log = stack.envoy.log_text()
    assert ok, f"Envoy accepted a bad CEL rule ({how})\n{stack.envoy.log_tail()}"
    lines = [line for line in log.splitlines() if "mcp.rules[1]: " in line]
    assert lines, stack.envoy.log_tail()
    # The parser's own message, with the position of the error in the expression.
    message = lines[0].split("mcp.rules[1]: ", 1)[1]
    assert "Syntax error" in message and ":1:18" in message, lines[0]
    assert "mcp.rules[0]" not in log


def test_counters_are_envoy_stats_under_wasmcustom(mcp_stack):
    """One request of each outcome; Envoy shows every counter as wasmcustom.mcp_auth.mcp.*."""
    post(mcp_stack, "admin", rpc("tools/call", "echo"))
    post(mcp_stack, "admin", rpc("tools/call", "whoami"))
    post(mcp_stack, "super", rpc("tools/call", "secret"))
    post(mcp_stack, "admin", b"[]")
    post(mcp_stack, "admin", rpc("prompts/list"), headers={"x-reply": "json"})
    names = {"allowed", "denied.scope", "denied.rule", "bad_body", "list_filtered"}

    def shown():
        _, text = mcp_stack.envoy.admin_get("/stats?filter=mcp_auth.mcp")
        values = dict(line.rsplit(": ", 1) for line in text.splitlines() if ": " in line)
        return all(int(values.get(f"wasmcustom.mcp_auth.mcp.{n}", "0")) > 0 for n in names)

    wait_for(shown, timeout=3, message="every mcp counter in Envoy's stats")
