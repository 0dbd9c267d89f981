"""Key-set lifetime: Cache-Control max-age clamped to [min_cache_duration_s, max_cache_duration_s],
cache_duration_s without the header, background refresh before expiry."""
import time

import pytest

from helpers.asserts import assert_allowed
from helpers.http import wait_for
from helpers.tokens import mint


@pytest.fixture(scope="module")
def stack(stack_factory, keys):
    stack = stack_factory("cache", keys=keys.keycloak(), cache_control="public, max-age=2",
                          overrides={"jwks.min_cache_duration_s": 1, "jwks.max_cache_duration_s": 3})
    yield stack
    stack.stop()


def fetches_during(stack, seconds: float) -> int:
    start = stack.jwks.fetch_count
    time.sleep(seconds)
    return stack.jwks.fetch_count - start


def test_max_age_drives_background_refresh(stack, keys):
    # max-age=2 -> refreshed at ~90% of 2 s, with no traffic at all.
    n = fetches_during(stack, 4.5)
    assert 1 <= n <= 5, f"{n} background fetches in 4.5 s with max-age=2"
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims())))


def test_background_refresh_picks_up_a_rotation(stack, keys):
    stack.jwks.set_keys([keys.enc, keys.rotated])
    n = stack.jwks.fetch_count
    wait_for(lambda: stack.jwks.fetch_count > n, timeout=4, message="a background refresh")
    time.sleep(0.2)  # let the filter store the new set
    # New key known without any unknown-kid refetch; old key gone.
    before = stack.jwks.fetch_count
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.rotated, stack.claims())))
    assert stack.jwks.fetch_count == before
    resp = stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims()))
    assert resp.status == 401, resp
    stack.jwks.set_keys(keys.keycloak())


def test_max_age_zero_is_clamped_to_min_cache_duration(stack):
    stack.jwks.set_cache_control("max-age=0")
    n = stack.jwks.fetch_count
    wait_for(lambda: stack.jwks.fetch_count > n, timeout=4, message="a fetch that sees max-age=0")
    n = fetches_during(stack, 3.0)
    # min_cache_duration_s=1: about 3 fetches; an unclamped 0 s lifetime would loop.
    assert n <= 6, f"{n} fetches in 3 s with max-age=0 and min_cache_duration_s=1"


def test_huge_max_age_is_clamped_to_max_cache_duration(stack):
    stack.jwks.set_cache_control("public, max-age=100000")
    n = stack.jwks.fetch_count
    wait_for(lambda: stack.jwks.fetch_count > n, timeout=4, message="a fetch that sees max-age=100000")
    n = stack.jwks.fetch_count
    # max_cache_duration_s=3: the next refresh comes after ~2.7 s, not in 100000 s.
    wait_for(lambda: stack.jwks.fetch_count > n, timeout=5, message="a refresh after max_cache_duration_s")


def test_without_cache_control_cache_duration_applies(stack):
    stack.jwks.set_cache_control(None)
    n = stack.jwks.fetch_count
    wait_for(lambda: stack.jwks.fetch_count > n, timeout=4, message="a fetch without Cache-Control")
    time.sleep(0.2)
    # cache_duration_s is 300 in envoy.yaml: nothing more for a long while.
    assert fetches_during(stack, 3.0) == 0
