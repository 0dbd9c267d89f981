"""Remote module loading: Envoy fetches the filter itself (`vm_config.code.remote`, `http_uri` and
`sha256`) from an artifact server, as a fleet without a control plane rolls it out (and as Envoy
Gateway hands modules to its proxies). A wrong digest must never leave the route open.

What Envoy 1.40 does with a module whose SHA-256 does not match (measured here, asserted below):
it fetches twice (its default retry policy: one retry after about a second), logs `Plugin mcp_auth
failed to load`, counts `wasm.remote_load_fetch_failures`, and still starts: the admin says LIVE
and the listener accepts. With `fail_open: false` (envoy.yaml, deploy/) every request on the
route then gets Envoy's bare `503` and none reaches the server; with `fail_open: true` the filter
is skipped and requests reach the server unchecked, which is why every file here says fail closed.
"""
import hashlib
import time

import pytest

import envoy_config
from helpers.asserts import assert_allowed, assert_missing_token, assert_not_forwarded
from helpers.ports import free_port
from helpers.servers import ModuleServer
from helpers.tokens import mint


def remote_stack(stack_factory, keys, wasm_path, sha256: str, name: str, concurrency: int = 1,
                 fail_open: bool = False):
    server = ModuleServer(free_port(), wasm_path.read_bytes()).start()
    stack = stack_factory(name, start=False, keys=keys.keycloak(), concurrency=concurrency)
    envoy_config.use_remote_module(stack.config, server.url, sha256, server.port)
    envoy_config.wasm_filter(stack.config)["fail_open"] = fail_open
    return stack, server


def envoy_stat(stack, name: str) -> int:
    status, body = stack.envoy.admin_get(f"/stats?filter=^{name}$")
    assert status == 200, body
    for line in body.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def wait_for_stat(stack, name: str, at_least: int = 1, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        value = envoy_stat(stack, name)
        if value >= at_least or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_envoy_loads_the_module_from_the_artifact_server_by_digest(stack_factory, keys, wasm_path):
    sha256 = hashlib.sha256(wasm_path.read_bytes()).hexdigest()
    stack, server = remote_stack(stack_factory, keys, wasm_path, sha256, "remote-ok", concurrency=2)
    try:
        stack.start()
        assert envoy_stat(stack, "wasm.remote_load_fetch_successes") == 1
        # One download per Envoy process: both workers' VMs are built from the same fetched code.
        assert server.requests == [server.path]
        assert_missing_token(stack, stack.request("POST", "/mcp"))
        assert_allowed(stack, stack.post_mcp(mint(keys.sig, stack.claims())))  # a JSON-RPC body: the policy reads it
        forged = mint(keys.sig, stack.claims(), signing_key=keys.foreign)
        refused = stack.request("POST", "/mcp", token=forged)
        assert refused.status == 401, refused
        assert_not_forwarded(stack, refused)
    finally:
        stack.stop()
        server.stop()


@pytest.mark.parametrize("fail_open", [False, True], ids=["fail_closed", "fail_open"])
def test_a_wrong_digest_is_refused(stack_factory, keys, wasm_path, fail_open):
    # The digest of other bytes: what a stale pin or a swapped artifact looks like.
    wrong = hashlib.sha256(wasm_path.read_bytes() + b"\0").hexdigest()
    stack, server = remote_stack(stack_factory, keys, wasm_path, wrong, f"remote-bad-{fail_open}",
                                 fail_open=fail_open)
    try:
        stack.start(wait_for_keys=False)  # Envoy starts all the same: LIVE, listener accepting
        assert wait_for_stat(stack, "wasm.remote_load_fetch_failures") == 1
        assert envoy_stat(stack, "wasm.remote_load_fetch_successes") == 0
        assert server.fetch_count == 2  # the first try and Envoy's default single retry
        log = stack.envoy.log_text()
        assert "Plugin mcp_auth failed to load" in log, stack.envoy.log_tail()
        assert stack.envoy.running

        token = mint(keys.sig, stack.claims())
        for resp in (stack.request("POST", "/mcp"), stack.request("POST", "/mcp", token=token),
                     stack.request("GET", "/.well-known/oauth-protected-resource/mcp")):
            if fail_open:
                # No filter at all: even a request without a token reaches the server.
                assert_allowed(stack, resp)
            else:
                assert resp.status == 503, resp
                assert resp.body == b"", resp
                assert resp.header("www-authenticate") is None, resp
                assert_not_forwarded(stack, resp)
        if not fail_open:
            assert "Plugin configured to fail closed failed to load" in stack.envoy.log_text()
        # The module is never loaded later on its own: a fix needs a new configuration.
        assert stack.jwks.fetch_count == 0
    finally:
        stack.stop()
        server.stop()
