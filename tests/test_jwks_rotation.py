"""Key set against a Keycloak-shaped JWKS: enc key skipped, key rotation, rate-limited refetch."""
import time

import pytest

from helpers.asserts import assert_allowed, assert_invalid_token, stat_delta
from helpers.tokens import mint

REFETCH_S = 1


@pytest.fixture(scope="module")
def stack(stack_factory, keys):
    stack = stack_factory("rotation", keys=keys.keycloak(),
                          overrides={"jwks.min_refetch_interval_s": REFETCH_S})
    yield stack
    stack.stop()


def past_refetch_interval():
    time.sleep(REFETCH_S + 0.2)


def test_jwks_fetched_with_uri_authority_and_path(stack):
    assert stack.jwks.fetch_count >= 1
    first = stack.jwks.requests[0]
    assert first["method"] == "GET"
    assert first["path"] == "/realms/my-realm/protocol/openid-connect/certs"
    assert first["headers"].get("host") == f"localhost:{stack.auth_port}"
    assert stack.stats()["mcp_auth.jwks_fetch.ok"] >= 1


def test_keycloak_enc_key_is_skipped_so_kidless_token_finds_the_one_signing_key(stack, keys):
    # Keycloak publishes [RSA-OAEP enc key, RS256 sig key]; only the second is a signing key.
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims(), kid=None)))


def test_enc_key_cannot_verify_tokens(stack, keys):
    resp = stack.request("GET", "/mcp", token=mint(keys.enc, stack.claims(), alg="RS256"))
    assert_invalid_token(stack, resp, "no matching signing key")


def test_rotation_new_kid_triggers_one_refetch_and_old_kid_fails_after_removal(stack, keys):
    new = keys.rotated
    old = keys.sig
    past_refetch_interval()

    # 1. The authorization server adds a new signing key and starts using it.
    stack.jwks.set_keys([keys.enc, old, new])
    before = stack.jwks.fetch_count
    with stat_delta(stack, ignore_jwks=False) as d:
        assert_allowed(stack, stack.request("GET", "/mcp", token=mint(new, stack.claims())))
    assert stack.jwks.fetch_count == before + 1, "an unknown kid must trigger exactly one refetch"
    assert d.value == {"mcp_auth.allowed": 1, "mcp_auth.jwks_fetch.ok": 1}

    # Known kids need no fetch; tokens from the old key are still good.
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(new, stack.claims())))
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(old, stack.claims())))
    assert stack.jwks.fetch_count == before + 1

    # 2. The old key is retired. Cached until the next fetch...
    stack.jwks.set_keys([keys.enc, new])
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(old, stack.claims())))
    assert stack.jwks.fetch_count == before + 1

    # ...which an unknown kid triggers once the refetch interval has passed.
    past_refetch_interval()
    stranger = mint(keys.foreign, stack.claims())
    assert_invalid_token(stack, stack.request("GET", "/mcp", token=stranger), "no matching signing key")
    assert stack.jwks.fetch_count == before + 2

    # 3. Old tokens now fail; new ones pass.
    assert_invalid_token(stack, stack.request("GET", "/mcp", token=mint(old, stack.claims())),
                         "no matching signing key")
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(new, stack.claims())))
    # With one signing key left, kid-less tokens resolve to it.
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(new, stack.claims(), kid=None)))


def test_unknown_kid_refetch_is_rate_limited(stack, keys):
    past_refetch_interval()
    before = stack.jwks.fetch_count
    for _ in range(5):
        token = mint(keys.foreign, stack.claims(), kid=f"random-{time.monotonic_ns()}")
        assert_invalid_token(stack, stack.request("GET", "/mcp", token=token), "no matching signing key")
    assert stack.jwks.fetch_count - before == 1


def test_refetch_allowed_again_after_the_interval(stack, keys):
    past_refetch_interval()
    before = stack.jwks.fetch_count
    resp = stack.request("GET", "/mcp", token=mint(keys.foreign, stack.claims(), kid="another-unknown"))
    assert_invalid_token(stack, resp, "no matching signing key")
    assert stack.jwks.fetch_count - before == 1


def test_unusable_entries_are_skipped_not_fatal(stack, keys):
    """Unknown kty, symmetric keys, unsupported curves and malformed members are skipped; the
    rest of the key set is used."""
    from helpers.keys import ec_key
    junk = [
        {"kid": "oct-key", "kty": "oct", "alg": "HS256", "use": "sig", "k": "c2VjcmV0LXNlY3JldA"},
        {"kid": "weird-kty", "kty": "XYZ", "use": "sig"},
        {"kid": "bad-rsa", "kty": "RSA", "use": "sig", "alg": "RS256", "n": "!!not*base64url!!", "e": "AQAB"},
        {"kid": "no-modulus", "kty": "RSA", "use": "sig", "alg": "RS256", "e": "AQAB"},
        {"kid": "bad-ec", "kty": "EC", "use": "sig", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        ec_key("P-521").jwk() | {"kid": "p521"},
        {"kid": "okp-x448", "kty": "OKP", "crv": "X448", "x": "AAAA"},
    ]
    past_refetch_interval()
    stack.jwks.set_keys(junk + [keys.enc, keys.rotated, keys.sig])
    before = stack.jwks.fetch_count
    # keys.sig was retired by the rotation test: its kid is unknown, so this refetches.
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims())))
    assert stack.jwks.fetch_count == before + 1
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.rotated, stack.claims())))
    for kid in ("bad-rsa", "no-modulus", "weird-kty"):
        resp = stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims(), kid=kid))
        assert_invalid_token(stack, resp, "no matching signing key")
