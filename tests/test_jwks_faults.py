"""JWKS faults through Envoy, beyond test_jwks_outage (down at start; failures of the unknown-kid
refetch), test_jwks_rotation, test_jwks_cache and test_jwks_shared:

* no key set ever loaded, for every fault mode (500, garbage, empty key set, oversized, slower
  than the timeout): 503 + Retry-After, fetches counted as failed, bounded fetches under a flood,
  recovery without restart;
* `jwks.max_body_bytes` at its boundary (exactly the limit is accepted, one byte more refused);
* unknown-kid floods while the endpoint fails or hangs: 401s (never 503 once keys exist), one
  refetch per interval, known kids never wait;
* background refreshes failing past the key set's lifetime (every mode, down included): the last
  good keys keep serving, retries back off; the endpoint comes back with a new key (picked up by
  the background refresh), then the old key is removed (its cached verdicts go with it).

Every test asserts the endpoint's fetch log against `mcp_auth.jwks_fetch.ok/failed`. The tests
of a module run in order and build on each other's state.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import counters as fast
from helpers import health
from helpers.asserts import assert_allowed, assert_invalid_token, assert_unavailable, stat_delta
from helpers.http import wait_for
from helpers.keys import jwks_document
from helpers.tokens import mint

TIMEOUT_MS = 1000
RETRY_INITIAL_MS = 200
RETRY_MAX_MS = 500
REFETCH_S = 1
MAX_BODY = 16384


def parallel(fn, n, workers=10):
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, range(n)))


def counters(stack):
    """(jwks_fetch.ok, jwks_fetch.failed) as of the filter's last tick (no wait: callers poll)."""
    s = fast.read(stack.envoy)
    return s["mcp_auth.jwks_fetch.ok"], s["mcp_auth.jwks_fetch.failed"]


def unknown_kid_token(stack, keys):
    return mint(keys.foreign, stack.claims(), kid=f"unknown-{uuid.uuid4().hex}")


def served_size(keys_list, pad: int) -> int:
    """Bytes of the `oversized` mode's body for these keys and padding (as servers.py builds it)."""
    doc = jwks_document(keys_list)
    doc["keys"].append({"kid": "padding", "kty": "oct", "use": "sig", "k": "A" * pad})
    return len(json.dumps(doc).encode())


def pad_for(keys_list, size: int) -> int:
    pad = size - served_size(keys_list, 0)
    assert pad > 0 and served_size(keys_list, pad) == size
    return pad


# =========================================================================== never loaded

@pytest.fixture(scope="module")
def never(stack_factory, keys):
    """Starts with the JWKS answering 500: no key set is ever loaded until test_recovery."""
    stack = stack_factory(
        "faults-never", keys=keys.keycloak(), jwks_mode="500", wait_for_keys=False,
        overrides={"jwks.timeout_ms": TIMEOUT_MS, "jwks.retry_initial_ms": RETRY_INITIAL_MS,
                   "jwks.retry_max_ms": RETRY_MAX_MS, "jwks.min_refetch_interval_s": REFETCH_S,
                   "jwks.max_body_bytes": MAX_BODY})
    stack.jwks.slow_seconds = TIMEOUT_MS / 1000 + 0.6
    stack.wasm_baseline = health.wasm_stats(stack.envoy)
    yield stack
    stack.stop()


@pytest.mark.parametrize("mode", ["500", "garbage", "empty", "oversized", "slow"])
def test_no_key_set_yet_each_fault_gives_503(never, keys, mode):
    stack = never
    stack.jwks.set_mode(mode)
    seen = stack.jwks.fetches_in_mode(mode)
    wait_for(lambda: stack.jwks.fetches_in_mode(mode) > seen, timeout=3, message=f"an attempt in mode {mode}")
    # ... and counted: no key set yet, every attempt so far failed.
    wait_for(lambda: counters(stack) == (0, stack.jwks.fetch_count), timeout=3,
             message=f"jwks_fetch.failed == attempts ({counters(stack)} vs {stack.jwks.fetch_count})")
    before = fast.read(stack.envoy)
    resp = stack.post_mcp(mint(keys.sig, stack.claims()))
    assert_unavailable(stack, resp)
    # It waits for the next attempt at most: the slow one ends at the fetch timeout.
    assert resp.elapsed <= TIMEOUT_MS / 1000 + 1.0, resp
    fast.wait_delta(stack.envoy, before, {"mcp_auth.denied.jwks_unavailable": 1})


def test_flood_without_keys_is_503_with_bounded_fetches(never, keys):
    stack = never
    stack.jwks.set_mode("500")
    before = stack.jwks.fetch_count
    start = time.monotonic()
    tokens = [mint(keys.sig, stack.claims()), unknown_kid_token(stack, keys)]
    counted = fast.read(stack.envoy)
    responses = parallel(lambda i: stack.post_mcp(tokens[i % 2]), 40, workers=20)
    elapsed = time.monotonic() - start
    for resp in responses:
        assert_unavailable(stack, resp)
    fast.wait_delta(stack.envoy, counted, {"mcp_auth.denied.jwks_unavailable": 40})
    fetches = stack.jwks.fetch_count - before
    # The retry schedule paces fetches (backoff capped at RETRY_MAX_MS), not the request rate.
    assert fetches <= elapsed / (RETRY_MAX_MS / 1000) + 3, f"{fetches} fetches in {elapsed:.2f}s for 40 requests"
    assert fetches < 20


def test_every_attempt_is_counted_failed(never):
    """No key set yet and the endpoint never down: each GET it logged is one jwks_fetch.failed
    (equal whenever no attempt is in flight)."""
    stack = never
    wait_for(lambda: counters(stack) == (0, stack.jwks.fetch_count), timeout=3,
             message=f"jwks_fetch.failed == attempts logged ({counters(stack)}, {stack.jwks.fetch_count})")


def test_recovery_without_restart(never, keys):
    stack = never
    ok_before, failed_before = counters(stack)
    stack.jwks.set_mode("ok")
    wait_for(lambda: counters(stack)[0] == 1, timeout=RETRY_MAX_MS / 1000 + 2, message="the first good fetch")
    for _ in range(3):
        assert_allowed(stack, stack.post_mcp(mint(keys.sig, stack.claims())))
    n = stack.jwks.fetch_count
    time.sleep(1.0)
    # Loaded: no more retries (cache_duration_s 300), the failures stay as they were.
    assert stack.jwks.fetch_count == n
    ok, failed = counters(stack)
    assert ok == 1 and stack.jwks.fetches_in_mode("ok") == 1
    assert failed == stack.jwks.fetch_count - 1


def test_max_body_bytes_boundary(never, keys):
    """A body of exactly jwks.max_body_bytes is used; one byte more is refused (and counted failed)
    while the last good keys keep serving."""
    stack = never
    exact = [keys.enc, keys.sig, keys.rotated]
    stack.jwks.set_keys(exact)
    stack.jwks.oversize = pad_for(exact, MAX_BODY)
    stack.jwks.set_mode("oversized")
    time.sleep(REFETCH_S + 0.2)
    ok0, failed0 = counters(stack)
    n0 = stack.jwks.fetch_count
    assert_allowed(stack, stack.post_mcp(mint(keys.rotated, stack.claims())))  # unknown kid -> refetch
    assert stack.jwks.fetch_count == n0 + 1
    wait_for(lambda: counters(stack) == (ok0 + 1, failed0), timeout=2, message="the refetch counted ok")

    over = [keys.enc, keys.sig, keys.rotated, keys.foreign]
    stack.jwks.set_keys(over)
    stack.jwks.oversize = pad_for(over, MAX_BODY + 1)
    time.sleep(REFETCH_S + 0.2)
    ok0, failed0 = counters(stack)
    n0 = stack.jwks.fetch_count
    resp = stack.post_mcp(mint(keys.foreign, stack.claims()))
    assert_invalid_token(stack, resp, "no matching signing key")
    assert stack.jwks.fetch_count >= n0 + 1
    wait_for(lambda: counters(stack)[1] >= failed0 + 1, timeout=2, message="the refetch counted failed")
    assert counters(stack)[0] == ok0
    assert_allowed(stack, stack.post_mcp(mint(keys.rotated, stack.claims())))
    # Back to a normal body: the failed refetch is retried on its own and succeeds.
    stack.jwks.set_keys(keys.keycloak())
    stack.jwks.set_mode("ok")
    wait_for(lambda: counters(stack)[0] == ok0 + 1, timeout=RETRY_MAX_MS / 1000 + 2, message="the retry")
    wait_for(lambda: sum(counters(stack)) == stack.jwks.fetch_count, timeout=2, message="counters == attempts")
    n = stack.jwks.fetch_count
    time.sleep(0.7)
    assert stack.jwks.fetch_count == n, "retries must stop after a success"


@pytest.mark.parametrize("mode", ["500", "slow"])
def test_unknown_kid_flood_while_the_endpoint_fails(never, keys, mode):
    """Keys are loaded; the endpoint breaks (500) or hangs past the timeout (slow), and a flood
    of unknown kids arrives: every one is a 401 (never 503), one refetch serves the whole flood
    (plus the failure's own backoff retries), and known kids are answered without waiting."""
    stack = never
    time.sleep(REFETCH_S + 0.2)
    stack.jwks.set_mode(mode)
    before = stack.jwks.fetch_count
    ok0, _ = counters(stack)
    valid = []

    def valid_during_flood():
        time.sleep(0.1)  # inside the refetch
        for _ in range(3):
            valid.append(stack.post_mcp(mint(keys.sig, stack.claims())))

    side = threading.Thread(target=valid_during_flood)
    start = time.monotonic()
    with stat_delta(stack) as d:
        side.start()
        responses = parallel(lambda i: stack.post_mcp(unknown_kid_token(stack, keys)), 30)
        side.join()
    elapsed = time.monotonic() - start
    try:
        for resp in responses:
            assert_invalid_token(stack, resp, "no matching signing key")
            # Waits for the one refetch at most (the slow one ends at the fetch timeout).
            assert resp.elapsed <= TIMEOUT_MS / 1000 + 1.5, resp
        for resp in valid:
            assert_allowed(stack, resp)
            # Waiting for the refetch would take until its timeout, 0.9 s after these were sent.
            assert resp.elapsed < 0.6, f"a known kid waited for the refetch: {resp!r}"
        assert d.value == {"mcp_auth.denied.unknown_key": 30, "mcp_auth.allowed": 3,
                           "mcp_auth.mcp.allowed": 3}, d.value
        fetches = stack.jwks.fetch_count - before
        assert 1 <= fetches <= 2 + elapsed / (RETRY_INITIAL_MS / 1000), f"{fetches} fetches in {elapsed:.2f}s"
        assert counters(stack)[0] == ok0
    finally:
        stack.jwks.set_mode("ok")
    wait_for(lambda: counters(stack)[0] == ok0 + 1, timeout=TIMEOUT_MS / 1000 + RETRY_MAX_MS / 1000 + 2,
             message="recovery after the flood")
    health.assert_wasm_healthy(stack.envoy, stack.wasm_baseline)


# =========================================================================== background refresh

REFRESH_RETRY_MAX_MS = 400


@pytest.fixture(scope="module")
def refresh(stack_factory, keys):
    """max-age=1 (min_cache_duration_s 1): a background refresh every ~0.9 s."""
    stack = stack_factory(
        "faults-refresh", keys=keys.keycloak(), cache_control="public, max-age=1",
        overrides={"jwks.timeout_ms": TIMEOUT_MS, "jwks.retry_initial_ms": RETRY_INITIAL_MS,
                   "jwks.retry_max_ms": REFRESH_RETRY_MAX_MS, "jwks.min_cache_duration_s": 1,
                   "jwks.max_body_bytes": MAX_BODY})
    stack.jwks.slow_seconds = TIMEOUT_MS / 1000 + 0.6
    stack.jwks.oversize = MAX_BODY
    stack.wasm_baseline = health.wasm_stats(stack.envoy)
    yield stack
    stack.stop()


def test_background_refresh_failures_keep_the_last_good_keys(refresh, keys):
    """Every fault in turn, several key-set lifetimes in all: fresh tokens (no verdict cache) keep
    being accepted throughout, never a 503; every attempt the endpoint saw is counted failed;
    retries are paced by the backoff."""
    stack = refresh
    wait_for(lambda: stack.jwks.fetch_count >= 2, timeout=3, message="background refreshes")
    stop = threading.Event()
    results = []

    def traffic():
        while not stop.is_set():
            results.append(stack.post_mcp(mint(keys.sig, stack.claims())))
            time.sleep(0.05)

    def attempt_in(mode):
        seen = stack.jwks.fetches_in_mode(mode)
        wait_for(lambda: stack.jwks.fetches_in_mode(mode) > seen, timeout=3, message=f"an attempt in mode {mode}")
        # Every attempt so far was logged (no 'down' yet) and is counted once it has finished.
        wait_for(lambda: sum(counters(stack)) == stack.jwks.fetch_count, timeout=3,
                 message=f"the attempt in mode {mode} to be counted")

    start = time.monotonic()
    stack.jwks.set_mode("500")
    t = threading.Thread(target=traffic)
    t.start()
    try:
        attempt_in("500")
        ok0, failed0 = counters(stack)  # from here on no fetch can succeed
        logged0 = stack.jwks.fetch_count
        for mode in ("garbage", "empty", "oversized", "slow"):
            stack.jwks.set_mode(mode)
            attempt_in(mode)
        logged = stack.jwks.fetch_count - logged0
        stack.jwks.set_mode("down")
        failed = counters(stack)[1]
        wait_for(lambda: counters(stack)[1] >= failed + 2, timeout=3, message="failed fetches while down")
    finally:
        outage = time.monotonic() - start
        stop.set()
        t.join()
    assert outage > 2.5, "the outage must outlast the key set's lifetime (1 s) several times"
    bad = [r for r in results if r.status != 200]
    assert not bad, f"{len(bad)} of {len(results)} valid requests failed during the outage: {bad[:3]}"
    assert len(results) >= 20
    for resp in results[:: max(1, len(results) // 10)]:
        assert_allowed(stack, resp)
    ok, failed = counters(stack)
    assert ok == ok0, "no fetch can have succeeded"
    # Each attempt the endpoint logged, plus the refused connections while down, counted failed.
    assert failed - failed0 >= logged + 2
    # Backoff: 200, 400, 400, ... ms (plus the slow attempt's 1 s timeout).
    assert failed - failed0 <= outage / (RETRY_INITIAL_MS / 1000) + 2, f"{failed - failed0} attempts in {outage:.1f}s"
    assert stack.stats()["mcp_auth.denied.jwks_unavailable"] == 0


def test_endpoint_back_with_a_new_key_then_old_key_removed(refresh, keys):
    stack = refresh
    assert stack.jwks.mode == "down"
    ok0, _ = counters(stack)
    # While it was down, the authorization server added a key. It comes back:
    stack.jwks.set_keys([keys.enc, keys.sig, keys.rotated])
    stack.jwks.set_mode("ok")
    wait_for(lambda: counters(stack)[0] > ok0, timeout=REFRESH_RETRY_MAX_MS / 1000 + 2, message="recovery")
    assert_allowed(stack, stack.post_mcp(mint(keys.rotated, stack.claims())))
    old_token = mint(keys.sig, stack.claims())
    assert_allowed(stack, stack.post_mcp(old_token))
    assert_allowed(stack, stack.post_mcp(old_token))  # now a cached verdict

    # The old key is retired: the next background refresh drops it, and the cached verdict of a
    # token it verified goes with it.
    stack.jwks.set_keys([keys.enc, keys.rotated])
    n = stack.jwks.fetch_count
    wait_for(lambda: stack.jwks.fetch_count > n, timeout=3, message="a refresh after the removal")
    time.sleep(0.3)  # the fetch completes, every VM installs the new set on its next tick
    with stat_delta(stack) as d:
        resp = stack.post_mcp(old_token)
    assert_invalid_token(stack, resp, "no matching signing key")
    assert d.value == {"mcp_auth.denied.unknown_key": 1}
    assert_allowed(stack, stack.post_mcp(mint(keys.rotated, stack.claims())))
    # Kid-less tokens resolve to the one signing key left.
    assert_allowed(stack, stack.post_mcp(mint(keys.rotated, stack.claims(), kid=None)))
    health.assert_wasm_healthy(stack.envoy, stack.wasm_baseline)


def test_non_utf8_jwks_response_header_is_not_fatal(refresh, keys):
    """The key set's response carries a header with a Latin-1 byte (`x-realm: r\\xe9alm`), which
    Envoy's codec accepts. The fetch may be used or refused, but the VM must survive it and keep
    answering. Last in the module: the bug kills the VM."""
    stack = refresh
    stack.jwks.extra_headers = {"x-realm": "r\u00e9alm"}  # sent as Latin-1 by http.server
    n = stack.jwks.fetch_count
    wait_for(lambda: stack.jwks.fetch_count >= n + 2, timeout=4, message="refreshes with the header")
    assert_allowed(stack, stack.post_mcp(mint(keys.rotated, stack.claims())))
    health.assert_wasm_healthy(stack.envoy, stack.wasm_baseline)
