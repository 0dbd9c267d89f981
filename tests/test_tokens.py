"""JWT validation: algorithms, header checks, key selection, signature, iss/aud/exp/nbf/iat, check order."""
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from helpers.asserts import assert_allowed, assert_invalid_token, stat_delta
from helpers.keys import b64url, ec_key
from helpers.tokens import DELETE, flip_signature, hs256_with_public_key, mint, tamper_payload

REASONS = {
    "malformed token": "malformed_token",
    "unsupported algorithm": "unsupported_alg",
    "unsupported critical header": "unsupported_crit",
    "no matching signing key": "unknown_key",
    "invalid signature": "bad_signature",
    "invalid issuer": "bad_issuer",
    "invalid audience": "bad_audience",
    "missing or invalid exp": "missing_exp",
    "token expired": "expired",
    "token not yet valid": "not_yet_valid",
    "token issued in the future": "issued_in_future",
}


@pytest.fixture(scope="module")
def stack(default_stack):
    return default_stack


def now():
    return int(time.time())


# --------------------------------------------------------------------------- accepted tokens

@pytest.mark.parametrize("key_name,alg", [
    ("sig", "RS256"),       # Keycloak's key: x5c, x5t, x5t#S256, listed after the enc key
    ("rsa_any", "RS256"),
    ("rsa_any", "RS384"),
    ("rsa_any", "RS512"),
    ("rsa_any", "PS256"),
    ("rsa_any", "PS384"),
    ("rsa_any", "PS512"),
    ("ec256", "ES256"),
    ("ec384", "ES384"),
    ("ed25519", "EdDSA"),
])
def test_valid_token_is_allowed(stack, keys, key_name, alg):
    key = getattr(keys, key_name)
    with stat_delta(stack) as d:
        resp = stack.request("GET", "/mcp", token=mint(key, stack.claims(), alg=alg))
    assert_allowed(stack, resp)
    assert d.value == {"mcp_auth.allowed": 1}


@pytest.mark.parametrize("case", [
    "aud_string", "aud_many", "exp_within_skew", "nbf_past", "nbf_within_skew", "iat_within_skew",
    "typ_at_jwt", "no_typ", "minimal_claims",
])
def test_token_variants_accepted(stack, keys, case):
    t = now()
    claims = {
        "aud_string": lambda: stack.claims(aud="echo-mcp-server"),
        "aud_many": lambda: stack.claims(aud=["a", "b", "echo-mcp-server", "c"]),
        "exp_within_skew": lambda: stack.claims(exp=t - 30),          # skew is 60 s
        "nbf_past": lambda: stack.claims(nbf=t - 10),
        "nbf_within_skew": lambda: stack.claims(nbf=t + 30),
        "iat_within_skew": lambda: stack.claims(iat=t + 30),
        "typ_at_jwt": lambda: stack.claims(),
        "no_typ": lambda: stack.claims(),
        # The shipped envoy.yaml requires the scope mcp:tools.
        "minimal_claims": lambda: {"iss": stack.issuer, "aud": "echo-mcp-server", "exp": t + 60, "scope": "mcp:tools"},
    }[case]()
    header = {"typ_at_jwt": {"typ": "at+jwt"}, "no_typ": {"typ": DELETE}}.get(case)
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, claims, header=header)))


def test_token_without_kid_uses_the_only_suitable_key(stack, keys):
    # The key set has exactly one OKP/Ed25519 key.
    assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.ed25519, stack.claims(), kid=None)))


# --------------------------------------------------------------------------- rejected tokens

def _p521_token(stack, keys):
    key = ec_key("P-521", kid=keys.ec256.kid)
    return mint(key, stack.claims(), alg="ES512")


def _der_es256(stack, keys):
    """ES256 signature in DER form instead of JOSE r||s."""
    from cryptography.hazmat.primitives import hashes
    h = b64url(json.dumps({"alg": "ES256", "typ": "JWT", "kid": keys.ec256.kid}).encode())
    p = b64url(json.dumps(stack.claims()).encode())
    der = keys.ec256.private.sign(f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA256()))
    return f"{h}.{p}.{b64url(der)}"


def _signed_raw_payload(raw):
    def build(stack, keys):
        return mint(keys.sig, {}, raw_payload=raw)
    return build


CASES = {
    # not a compact JWS / undecodable
    "one_part": (lambda s, k: "abcdef", "malformed token"),
    "two_parts": (lambda s, k: "abc.def", "malformed token"),
    "four_parts": (lambda s, k: mint(k.sig, s.claims()) + ".xyz", "malformed token"),
    "empty_parts": (lambda s, k: "..", "malformed token"),
    "header_bad_base64": (lambda s, k: "!!!*." + mint(k.sig, s.claims()).split(".", 1)[1], "malformed token"),
    "header_not_json": (lambda s, k: mint(k.sig, s.claims(), raw_header=b"not json"), "malformed token"),
    "header_json_array": (lambda s, k: mint(k.sig, s.claims(), raw_header=b'["RS256"]'), "malformed token"),
    "payload_not_json": (_signed_raw_payload(b"this is not json"), "malformed token"),
    "payload_json_array": (_signed_raw_payload(b'["iss","aud"]'), "malformed token"),
    "payload_json_string": (_signed_raw_payload(b'"hello"'), "malformed token"),
    # algorithms
    "alg_none": (lambda s, k: mint(k.sig, s.claims(), alg="none"), "unsupported algorithm"),
    "alg_None_casing": (lambda s, k: mint(k.sig, s.claims(), alg="none", header={"alg": "None"}),
                        "unsupported algorithm"),
    "alg_hs256_public_key_as_secret": (lambda s, k: hs256_with_public_key(k.sig, s.claims()),
                                       "unsupported algorithm"),
    "alg_hs512": (lambda s, k: mint(k.sig.public_pem(), s.claims(), alg="HS512", kid=k.sig.kid),
                  "unsupported algorithm"),
    "alg_es512_not_supported": (_p521_token, "unsupported algorithm"),
    "alg_unknown": (lambda s, k: mint(k.sig, s.claims(), header={"alg": "RS999"}), "unsupported algorithm"),
    "alg_rs256_on_ec_key": (lambda s, k: mint(k.sig, s.claims(), alg="RS256", kid=k.ec256.kid),
                            "unsupported algorithm"),
    "alg_es256_on_rsa_key": (lambda s, k: mint(k.ec256, s.claims(), alg="ES256", kid=k.sig.kid),
                             "unsupported algorithm"),
    "alg_es384_on_p256_key": (lambda s, k: mint(k.ec384, s.claims(), alg="ES384", kid=k.ec256.kid),
                              "unsupported algorithm"),
    "alg_eddsa_on_rsa_key": (lambda s, k: mint(k.ed25519, s.claims(), alg="EdDSA", kid=k.rsa_any.kid),
                             "unsupported algorithm"),
    "alg_rs256_on_enc_key_kid": (lambda s, k: mint(k.enc, s.claims(), alg="RS256"), "no matching signing key"),
    # crit
    "crit_unknown": (lambda s, k: mint(k.sig, s.claims(), header={"crit": ["urn:example:x"],
                                                                   "urn:example:x": True}),
                     "unsupported critical header"),
    "crit_exp": (lambda s, k: mint(k.sig, s.claims(), header={"crit": ["exp"], "exp": 1}),
                 "unsupported critical header"),
    # key selection
    "unknown_kid": (lambda s, k: mint(k.foreign, s.claims()), "no matching signing key"),
    "no_kid_two_rsa_keys": (lambda s, k: mint(k.sig, s.claims(), kid=None), "no matching signing key"),
    # signatures
    "tampered_payload": (lambda s, k: tamper_payload(mint(k.sig, s.claims()), sub="someone-else"),
                         "invalid signature"),
    "flipped_signature_rs": (lambda s, k: flip_signature(mint(k.sig, s.claims())), "invalid signature"),
    "flipped_signature_ps": (lambda s, k: flip_signature(mint(k.rsa_any, s.claims(), alg="PS256")),
                             "invalid signature"),
    "flipped_signature_es256": (lambda s, k: flip_signature(mint(k.ec256, s.claims())), "invalid signature"),
    "flipped_signature_es384": (lambda s, k: flip_signature(mint(k.ec384, s.claims())), "invalid signature"),
    "flipped_signature_eddsa": (lambda s, k: flip_signature(mint(k.ed25519, s.claims())), "invalid signature"),
    "forged_with_foreign_key": (lambda s, k: mint(k.sig, s.claims(), signing_key=k.foreign), "invalid signature"),
    "rs256_signature_as_ps256": (lambda s, k: mint(k.rsa_any, s.claims(), alg="RS256",
                                                   header={"alg": "PS256"}), "invalid signature"),
    "es256_der_signature": (_der_es256, "invalid signature"),
    "empty_signature": (lambda s, k: mint(k.sig, s.claims()).rsplit(".", 1)[0] + ".", "invalid signature"),
    # issuer
    "iss_wrong": (lambda s, k: mint(k.sig, s.claims(iss="http://localhost:1/realms/other")), "invalid issuer"),
    "iss_trailing_slash": (lambda s, k: mint(k.sig, s.claims(iss=s.issuer + "/")), "invalid issuer"),
    "iss_missing": (lambda s, k: mint(k.sig, s.claims(iss=DELETE)), "invalid issuer"),
    # audience
    "aud_wrong_array": (lambda s, k: mint(k.sig, s.claims(aud=["account"])), "invalid audience"),
    "aud_wrong_string": (lambda s, k: mint(k.sig, s.claims(aud="account")), "invalid audience"),
    "aud_missing": (lambda s, k: mint(k.sig, s.claims(aud=DELETE)), "invalid audience"),
    "aud_empty_array": (lambda s, k: mint(k.sig, s.claims(aud=[])), "invalid audience"),
    "aud_prefix_only": (lambda s, k: mint(k.sig, s.claims(aud="echo-mcp-server-2")), "invalid audience"),
    # exp
    "exp_missing": (lambda s, k: mint(k.sig, s.claims(exp=DELETE)), "missing or invalid exp"),
    "exp_string": (lambda s, k: mint(k.sig, s.claims(exp=str(now() + 300))), "missing or invalid exp"),
    "exp_null": (lambda s, k: mint(k.sig, s.claims(exp=None)), "missing or invalid exp"),
    # NumericDate as an integer only (every major issuer emits integers; the attack catalogue
    # refuses a fractional exp rather than guessing how to round it).
    "exp_float": (lambda s, k: mint(k.sig, s.claims(exp=now() + 300.5)), "missing or invalid exp"),
    "exp_beyond_skew": (lambda s, k: mint(k.sig, s.claims(exp=now() - 120)), "token expired"),
    "exp_long_ago": (lambda s, k: mint(k.sig, s.claims(exp=1_000_000_000, iat=999_999_000)), "token expired"),
    # nbf / iat
    "nbf_future": (lambda s, k: mint(k.sig, s.claims(nbf=now() + 300)), "token not yet valid"),
    "iat_future": (lambda s, k: mint(k.sig, s.claims(iat=now() + 300, auth_time=now() + 300)),
                   "token issued in the future"),
    # check order: extraction -> (an `iss` no provider names) -> header -> alg/crit -> key -> signature -> payload
    # -> iss -> aud -> exp -> nbf -> iat. The unverified `iss` only picks the provider whose keys judge the
    # token; one naming no provider is refused before any key lookup (issue 12).
    "order_alg_before_kid": (lambda s, k: mint(k.sig, s.claims(), alg="none", kid="no-such-kid"),
                             "unsupported algorithm"),
    "order_crit_before_kid": (lambda s, k: mint(k.foreign, s.claims(), header={"crit": ["x"], "x": 1}),
                              "unsupported critical header"),
    "order_signature_before_payload": (lambda s, k: flip_signature(mint(k.sig, {}, raw_payload=b"not json")),
                                       "invalid signature"),
    "order_unknown_iss_before_signature": (lambda s, k: tamper_payload(mint(k.sig, s.claims()), iss="http://x"),
                                           "invalid issuer"),
    "order_signature_before_aud": (lambda s, k: tamper_payload(mint(k.sig, s.claims()), aud="nobody"),
                                   "invalid signature"),
    "order_iss_before_aud": (lambda s, k: mint(k.sig, s.claims(iss="http://x", aud="nobody")), "invalid issuer"),
    "order_aud_before_exp": (lambda s, k: mint(k.sig, s.claims(aud="nobody", exp=now() - 1000)),
                             "invalid audience"),
    "order_exp_before_nbf": (lambda s, k: mint(k.sig, s.claims(exp=now() - 1000, nbf=now() + 1000)),
                             "token expired"),
    "order_nbf_before_iat": (lambda s, k: mint(k.sig, s.claims(nbf=now() + 1000, iat=now() + 1000)),
                             "token not yet valid"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rejected_token(stack, keys, case):
    build, description = CASES[case]
    token = build(stack, keys)
    with stat_delta(stack) as d:
        resp = stack.request("GET", "/mcp", token=token)
    assert_invalid_token(stack, resp, description)
    assert d.value == {f"mcp_auth.denied.{REASONS[description]}": 1}


def test_rejected_token_on_post_is_not_forwarded(stack, keys):
    resp = stack.post_mcp(token=mint(keys.sig, stack.claims(exp=now() - 3600)))
    assert_invalid_token(stack, resp, "token expired")
