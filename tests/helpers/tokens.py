"""Hand-rolled compact JWS minting with full control over header, claims, alg and signature bytes."""
from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .keys import Key, b64url

# The shipped envoy.yaml's issuer with the auth port rebased (see envoy_config.render).
REALM_PATH = "/realms/my-realm"
AUDIENCE = "echo-mcp-server"

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_HMAC = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
_EC_SIZES = {"ES256": 32, "ES384": 48, "ES512": 66}


def issuer_for(auth_port: int) -> str:
    return f"http://localhost:{auth_port}{REALM_PATH}"


# The claims fixture shared with the Rust tests, fuzz seeds and perf (src/testkeys.rs).
CLAIMS_FIXTURE = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "keycloak_claims.json").read_text())


def fixture_claims(now: int) -> dict:
    """The shared claims fixture at ``now`` (its relative times added to ``now``)."""
    claims = {name: now + offset for name, offset in CLAIMS_FIXTURE["relative_times"].items()}
    claims.update(copy.deepcopy(CLAIMS_FIXTURE["claims"]))
    return claims


def with_overrides(claims: dict, overrides: dict) -> dict:
    """``claims`` with each override set, or removed where its value is ``DELETE``."""
    for name, value in overrides.items():
        if value is DELETE:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def keycloak_claims(issuer: str, now: int | None = None, lifetime: int = 300, **overrides) -> dict:
    """Claims shaped like a Keycloak access token for the ``mcp-client`` client: the shared
    fixture, issued by ``issuer`` at ``now`` for ``lifetime`` seconds, with a fresh ``jti``,
    ``sub`` and ``sid`` per token (tests tell tokens and users apart by them)."""
    now = int(time.time()) if now is None else now
    claims = fixture_claims(now)
    claims.update({
        "exp": now + lifetime,
        "iss": issuer,
        "jti": str(uuid.uuid4()),
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
    })
    return with_overrides(claims, overrides)


class _Delete:
    def __repr__(self):
        return "DELETE"


DELETE = _Delete()  # pass as a claim/header override value to drop the member


def sign(alg: str, key, data: bytes) -> bytes:
    """Raw JWS signature bytes for ``data`` (ES* as fixed-size r||s, as RFC 7518 requires)."""
    if alg == "none":
        return b""
    family, bits = alg[:2], alg[2:]
    private = key.private if isinstance(key, Key) else key
    if family == "HS":
        secret = private if isinstance(private, (bytes, bytearray)) else bytes(private)
        return hmac.new(secret, data, _HMAC[bits]).digest()
    if family == "RS":
        return private.sign(data, padding.PKCS1v15(), _HASHES[bits]())
    if family == "PS":
        h = _HASHES[bits]()
        return private.sign(data, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    if family == "ES":
        der = private.sign(data, ec.ECDSA(_HASHES["512" if bits == "512" else bits]()))
        r, s = decode_dss_signature(der)
        size = _EC_SIZES[alg]
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg == "EdDSA":
        return private.sign(data)
    raise ValueError(f"unknown alg {alg}")


def default_alg(key: Key) -> str:
    if key.kty == "RSA":
        return key.alg if key.alg and key.alg[:2] in ("RS", "PS") else "RS256"
    if key.kty == "EC":
        return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[key.crv]
    return "EdDSA"


def encode_segment(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return b64url(bytes(value))
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def mint(key, claims: dict, alg: str | None = None, header: dict | None = None, kid="auto",
         raw_header: bytes | None = None, raw_payload: bytes | None = None,
         signing_key=None) -> str:
    """Build a compact JWS.

    ``kid="auto"`` uses the key's kid, ``kid=None`` omits it, any other value is used as is.
    ``header`` members override/add to ``{"alg","typ","kid"}``; a value of DELETE drops a member.
    ``raw_header`` / ``raw_payload`` replace the JSON encoding with exact bytes.
    ``signing_key`` signs with a different key than the one named by the header (forgeries).
    """
    if alg is None:
        alg = default_alg(key)
    hdr = {"alg": alg, "typ": "JWT"}
    if kid == "auto":
        if isinstance(key, Key):
            hdr["kid"] = key.kid
    elif kid is not None:
        hdr["kid"] = kid
    for name, value in (header or {}).items():
        if value is DELETE:
            hdr.pop(name, None)
        else:
            hdr[name] = value
    h = b64url(raw_header) if raw_header is not None else encode_segment(hdr)
    p = b64url(raw_payload) if raw_payload is not None else encode_segment(claims)
    signing_input = f"{h}.{p}".encode()
    signature = sign(alg, signing_key if signing_key is not None else key, signing_input)
    return f"{h}.{p}.{b64url(signature)}"


def hs256_with_public_key(key: Key, claims: dict) -> str:
    """The classic key-confusion attack: HS256 keyed with the RSA public key's PEM."""
    return mint(key.public_pem(), claims, alg="HS256", kid=key.kid)


def tamper_payload(token: str, **changes) -> str:
    """Change claims after signing (signature no longer matches)."""
    import base64
    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims.update(changes)
    return f"{h}.{encode_segment(claims)}.{s}"


def flip_signature(token: str) -> str:
    import base64
    h, p, s = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{h}.{p}.{b64url(bytes(raw))}"
