"""One key set per Envoy process: with two workers the JWKS is fetched once, and an unknown-kid
flood causes at most one refetch per min_refetch_interval_s."""
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers.asserts import assert_allowed, assert_invalid_token, stat_delta
from helpers.tokens import mint


@pytest.fixture(scope="module")
def stack(stack_factory, keys):
    stack = stack_factory("shared", keys=keys.all_published(), concurrency=2)
    yield stack
    stack.stop()


def parallel(fn, n, workers=8):
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda i: fn(i), range(n)))


def worker_connections(stack) -> dict:
    _, text = stack.envoy.admin_get(f"/stats?filter=listener.127.0.0.1_{stack.listen_port}.worker_")
    counts = {}
    for m in re.finditer(r"worker_(\d+)\.downstream_cx_total: (\d+)", text):
        counts[int(m.group(1))] = int(m.group(2))
    return counts


def test_key_set_fetched_once_for_all_workers(stack, keys):
    key_list = [keys.sig, keys.rsa_any, keys.ec256, keys.ec384, keys.ed25519]
    responses = parallel(lambda i: stack.request("GET", "/mcp", token=mint(key_list[i % 5], stack.claims())), 40)
    for resp in responses:
        assert_allowed(stack, resp)
    conns = worker_connections(stack)
    assert len(conns) == 2 and all(c > 0 for c in conns.values()), f"connections per worker: {conns}"
    assert stack.jwks.fetch_count == 1, f"{stack.jwks.fetch_count} JWKS fetches for one Envoy"
    stats = stack.stats()
    assert stats["mcp_auth.jwks_fetch.ok"] == 1
    assert stats["mcp_auth.allowed"] == 40


def test_unknown_kid_flood_refetches_at_most_once(stack, keys):
    before = stack.jwks.fetch_count
    with stat_delta(stack) as d:
        responses = parallel(lambda i: stack.request(
            "GET", "/mcp", token=mint(keys.foreign, stack.claims(), kid=uuid.uuid4().hex)), 50, workers=10)
    for resp in responses:
        assert_invalid_token(stack, resp, "no matching signing key")
    refetches = stack.jwks.fetch_count - before
    assert refetches <= 1, f"{refetches} JWKS fetches for 50 unknown kids within min_refetch_interval_s"
    assert d.value == {"mcp_auth.denied.unknown_key": 50}
    # Valid tokens are unaffected.
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims())))
