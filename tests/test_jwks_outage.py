"""JWKS outages: down at start (503 + Retry-After, recovery without restart), and failures once keys
are loaded (the last good key set keeps serving). The tests in this module run in order."""
import threading
import time

import pytest

from helpers.asserts import (assert_allowed, assert_invalid_token, assert_missing_token, assert_unavailable,
                             stat_delta)
from helpers.tokens import mint

TIMEOUT_MS = 2000
RETRY_INITIAL_MS = 200
RETRY_MAX_MS = 500
REFETCH_S = 1


@pytest.fixture(scope="module")
def stack(stack_factory, keys):
    stack = stack_factory(
        "outage", keys=keys.keycloak(), jwks_mode="down", wait_for_keys=False,
        overrides={"jwks.timeout_ms": TIMEOUT_MS, "jwks.retry_initial_ms": RETRY_INITIAL_MS,
                   "jwks.retry_max_ms": RETRY_MAX_MS, "jwks.min_refetch_interval_s": REFETCH_S})
    stack.jwks.slow_seconds = TIMEOUT_MS / 1000 + 1.5
    yield stack
    stack.stop()


# --------------------------------------------------------------------------- no key set yet

def test_missing_token_is_answered_without_waiting_for_keys(stack):
    resp = stack.request("GET", "/mcp")
    assert_missing_token(stack, resp)
    assert resp.elapsed < 0.5, resp


def test_metadata_is_served_without_keys(stack):
    resp = stack.request("GET", "/.well-known/oauth-protected-resource/mcp")
    assert resp.status == 200, resp
    assert resp.elapsed < 0.5, resp


def test_request_waits_then_gets_503_with_retry_after(stack, keys):
    assert stack.jwks.mode == "down"
    with stat_delta(stack, ignore_jwks=False) as d:
        resp = stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims()))
    assert_unavailable(stack, resp)
    assert resp.elapsed <= TIMEOUT_MS / 1000 + 2.0, resp
    assert d.value.get("mcp_auth.denied.jwks_unavailable") == 1, d.value
    assert stack.stats()["mcp_auth.jwks_fetch.failed"] >= 1
    assert stack.stats()["mcp_auth.jwks_fetch.ok"] == 0


def test_failed_fetches_are_retried_with_backoff(stack, keys):
    # 500s are failures too; count the retries the filter makes on its own (no traffic).
    stack.jwks.set_mode("500")
    start = stack.jwks.fetch_count
    time.sleep(2.5)
    retries = stack.jwks.fetch_count - start
    # retry_max_ms=500: about 5 in 2.5 s; allow timer granularity, forbid a busy loop.
    assert 2 <= retries <= 15, f"{retries} fetch attempts in 2.5 s"
    resp = stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims()))
    assert_unavailable(stack, resp)


def test_waiting_request_is_released_when_jwks_recovers(stack, keys):
    """No restart: the JWKS comes back while a request waits, and the request goes through."""
    stack.jwks.set_mode("down")
    result = {}

    def call():
        result["resp"] = stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims()))

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.3)
    stack.jwks.set_mode("ok")
    t.join(timeout=TIMEOUT_MS / 1000 + 5)
    resp = result["resp"]
    assert_allowed(stack, resp)
    assert resp.elapsed < TIMEOUT_MS / 1000 + 0.5, resp
    assert stack.stats()["mcp_auth.jwks_fetch.ok"] >= 1


def test_recovered_without_restart(stack, keys):
    for _ in range(3):
        assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims())))


# --------------------------------------------------------------------------- keys loaded, JWKS breaks

@pytest.mark.parametrize("mode", ["500", "garbage", "down", "slow", "oversized", "empty"])
def test_failed_refresh_keeps_last_good_keys(stack, keys, mode):
    """The JWKS breaks while publishing a new key: the refetch an unknown kid triggers fails,
    the new kid stays unknown, and tokens from the last good key set keep working.
    ``empty`` ({"keys": []}: no usable key) is treated as a failed fetch, not as "revoke all keys"."""
    time.sleep(REFETCH_S + 0.2)
    stack.jwks.set_mode(mode)                                  # first break it...
    stack.jwks.set_keys([keys.enc, keys.sig, keys.rotated])   # ...then publish (oversized serves these)
    before = stack.stats()
    try:
        resp = stack.request("GET", "/mcp", token=mint(keys.rotated, stack.claims()))
        assert_invalid_token(stack, resp, "no matching signing key")
        after = stack.stats()
        assert after["mcp_auth.jwks_fetch.failed"] > before["mcp_auth.jwks_fetch.failed"], (
            f"refetch in mode {mode} not counted as failed")
        assert after["mcp_auth.jwks_fetch.ok"] == before["mcp_auth.jwks_fetch.ok"]
        for _ in range(3):
            assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims())))
    finally:
        stack.jwks.set_keys(keys.keycloak())
        stack.jwks.set_mode("ok")


def test_still_serving_after_the_failures(stack, keys):
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims())))
