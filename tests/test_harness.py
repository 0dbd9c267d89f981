"""Self-checks of the harness (no Envoy): minted tokens verify against the published JWKs with an
independent implementation, so a failing filter test is not a harness bug."""
import json
import time
import urllib.request

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from helpers.http import parse_challenge
from helpers.keys import b64url_decode
from helpers.ports import RESERVED, free_port
from helpers.servers import JwksServer, Upstream
from helpers.tokens import flip_signature, keycloak_claims, mint

HASH = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def public_from_jwk(jwk):
    def num(name):
        return int.from_bytes(b64url_decode(jwk[name]), "big")
    if jwk["kty"] == "RSA":
        return rsa.RSAPublicNumbers(num("e"), num("n")).public_key()
    if jwk["kty"] == "EC":
        curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}[jwk["crv"]]
        return ec.EllipticCurvePublicNumbers(num("x"), num("y"), curve).public_key()
    return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))


def verify(token, jwk):
    h, p, s = token.split(".")
    header = json.loads(b64url_decode(h))
    alg, data, sig = header["alg"], f"{h}.{p}".encode(), b64url_decode(s)
    key = public_from_jwk(jwk)
    if alg.startswith("RS"):
        key.verify(sig, data, padding.PKCS1v15(), HASH[alg[2:]]())
    elif alg.startswith("PS"):
        hh = HASH[alg[2:]]()
        key.verify(sig, data, padding.PSS(mgf=padding.MGF1(hh), salt_length=hh.digest_size), hh)
    elif alg.startswith("ES"):
        n = len(sig) // 2
        der = encode_dss_signature(int.from_bytes(sig[:n], "big"), int.from_bytes(sig[n:], "big"))
        key.verify(der, data, ec.ECDSA(HASH[alg[2:]]()))
    else:
        key.verify(sig, data)
    return json.loads(b64url_decode(p))


@pytest.mark.parametrize("name,alg", [("sig", "RS256"), ("rsa_any", "RS512"), ("rsa_any", "PS256"),
                                      ("rsa_any", "PS384"), ("ec256", "ES256"), ("ec384", "ES384"),
                                      ("ed25519", "EdDSA")])
def test_minted_tokens_verify_against_published_jwk(keys, name, alg):
    key = getattr(keys, name)
    claims = keycloak_claims("http://localhost:1/realms/my-realm")
    token = mint(key, claims, alg=alg)
    assert verify(token, key.jwk()) == claims
    with pytest.raises(InvalidSignature):
        verify(flip_signature(token), key.jwk())


def test_keycloak_shaped_jwks(keys):
    doc = {"keys": [k.jwk() for k in keys.keycloak()]}
    enc, sig = doc["keys"]
    assert enc["use"] == "enc" and enc["alg"] == "RSA-OAEP"
    assert sig["use"] == "sig" and sig["alg"] == "RS256"
    for jwk in (enc, sig):
        assert {"kid", "kty", "n", "e", "x5c", "x5t", "x5t#S256"} <= set(jwk)
    from cryptography import x509
    cert = x509.load_der_x509_certificate(__import__("base64").b64decode(sig["x5c"][0]))
    assert cert.public_key().public_numbers() == public_from_jwk(sig).public_numbers()


def test_claims_are_keycloak_shaped():
    c = keycloak_claims("http://i")
    assert c["aud"] == ["echo-mcp-server", "account"] and c["typ"] == "Bearer" and c["azp"] == "mcp-client"
    assert c["scope"] == "openid mcp:tools email profile" and c["preferred_username"] == "eitan"
    assert c["iat"] <= time.time() < c["exp"]


def test_free_ports_avoid_reference_ports():
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20 and not ports & RESERVED


def test_jwks_server_modes(keys):
    server = JwksServer(free_port(), keys.keycloak(), cache_control="max-age=60").launch()
    url = f"http://127.0.0.1:{server.port}/certs"
    try:
        with urllib.request.urlopen(url) as r:
            assert json.load(r)["keys"][0]["use"] == "enc"
            assert r.headers["Cache-Control"] == "max-age=60"
        server.set_mode("500")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url)
        server.set_mode("oversized")
        with urllib.request.urlopen(url) as r:
            assert len(r.read()) > 262144
        server.set_mode("down")
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(url, timeout=2)
        server.set_mode("ok")
        with urllib.request.urlopen(url) as r:
            assert r.status == 200
        assert server.fetch_count == 4
    finally:
        server.stop()


def test_upstream_records_requests():
    up = Upstream(free_port()).start()
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{up.port}/mcp", headers={"x-test-id": "abc", "x-a": "1"})
        with urllib.request.urlopen(req) as r:
            assert r.status == 200
        seen = up.find("abc")
        assert seen.path == "/mcp" and seen.header("x-a") == "1"
    finally:
        up.stop()


def test_challenge_parser():
    assert parse_challenge('Bearer error="invalid_token", error_description="a \\"b\\"", resource_metadata="u"') == (
        "Bearer", {"error": "invalid_token", "error_description": 'a "b"', "resource_metadata": "u"})
    with pytest.raises(ValueError):
        parse_challenge('Bearer a="1" b="2"')
