"""Signing keys and their JWK form (Keycloak-shaped where it matters).

RSA keys carry an ``x5c`` chain (one self-signed certificate) and the ``x5t`` / ``x5t#S256``
thumbprints, exactly like Keycloak's ``/protocol/openid-connect/certs`` document.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import uuid
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_bytes(n: int, length: int | None = None) -> bytes:
    if length is None:
        length = max(1, (n.bit_length() + 7) // 8)
    return n.to_bytes(length, "big")


def _self_signed_cert(private_key, common_name: str) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    algorithm = None if isinstance(private_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(private_key, algorithm)
    )
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass(repr=False)
class Key:
    """A private key plus the public JWK a JWKS endpoint serves for it."""

    kid: str
    private: object
    kty: str  # RSA | EC | OKP
    alg: str | None  # the JWK "alg" member (None: omitted)
    use: str | None = "sig"
    crv: str | None = None
    x5c: bool = False
    extra: dict = field(default_factory=dict)
    _cert_der: bytes | None = None

    def __repr__(self):
        return f"<Key {self.kty}{'/' + self.crv if self.crv else ''} alg={self.alg} use={self.use} kid={self.kid[:12]}>"

    @property
    def public(self):
        return self.private.public_key()

    def public_pem(self) -> bytes:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict:
        jwk: dict = {"kid": self.kid, "kty": self.kty}
        if self.alg is not None:
            jwk["alg"] = self.alg
        if self.use is not None:
            jwk["use"] = self.use
        numbers = None
        if self.kty == "RSA":
            numbers = self.public.public_numbers()
            jwk["n"] = b64url(_int_bytes(numbers.n))
            jwk["e"] = b64url(_int_bytes(numbers.e))
        elif self.kty == "EC":
            numbers = self.public.public_numbers()
            size = (self.public.curve.key_size + 7) // 8
            jwk["crv"] = self.crv
            jwk["x"] = b64url(_int_bytes(numbers.x, size))
            jwk["y"] = b64url(_int_bytes(numbers.y, size))
        elif self.kty == "OKP":
            raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            jwk["crv"] = self.crv
            jwk["x"] = b64url(raw)
        if self.x5c:
            if self._cert_der is None:
                self._cert_der = _self_signed_cert(self.private, "my-realm")
            der = self._cert_der
            jwk["x5c"] = [base64.b64encode(der).decode("ascii")]
            jwk["x5t"] = b64url(hashlib.sha1(der).digest())
            jwk["x5t#S256"] = b64url(hashlib.sha256(der).digest())
        jwk.update(self.extra)
        return jwk


def _kid() -> str:
    # Keycloak kids look like base64url SHA-256 thumbprints; any opaque string will do.
    return b64url(uuid.uuid4().bytes + uuid.uuid4().bytes)[:43]


def rsa_key(alg: str | None = "RS256", use: str | None = "sig", x5c: bool = True, kid: str | None = None,
            bits: int = 2048) -> Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return Key(kid=kid or _kid(), private=private, kty="RSA", alg=alg, use=use, x5c=x5c)


def ec_key(curve: str = "P-256", kid: str | None = None, alg: str | None = "default") -> Key:
    curves = {"P-256": (ec.SECP256R1(), "ES256"), "P-384": (ec.SECP384R1(), "ES384"),
              "P-521": (ec.SECP521R1(), "ES512")}
    crv, default_alg = curves[curve]
    return Key(kid=kid or _kid(), private=ec.generate_private_key(crv), kty="EC",
               alg=default_alg if alg == "default" else alg, crv=curve)


def ed25519_key(kid: str | None = None, alg: str | None = "EdDSA") -> Key:
    return Key(kid=kid or _kid(), private=ed25519.Ed25519PrivateKey.generate(), kty="OKP",
               alg=alg, crv="Ed25519")


def keycloak_enc_key() -> Key:
    """Keycloak lists an RSA-OAEP encryption key (``use: enc``) before the signing key."""
    return rsa_key(alg="RSA-OAEP", use="enc", x5c=True)


@dataclass(repr=False)
class KeyRing:
    """Every key the suite uses, generated once per session (RSA generation is slow)."""

    enc: Key          # Keycloak's RSA-OAEP "use": "enc" key, listed first
    sig: Key          # Keycloak's RS256 signing key (x5c, x5t, x5t#S256)
    rsa_any: Key      # RSA signing key without an "alg" member: usable for RS*/PS*
    ec256: Key
    ec384: Key
    ed25519: Key
    rotated: Key      # RS256 key introduced by a rotation
    foreign: Key      # RS256 key never published (forged signatures)

    def __repr__(self):
        return "<KeyRing enc sig rsa_any ec256 ec384 ed25519 rotated foreign>"

    def keycloak(self) -> list[Key]:
        """The two keys a stock Keycloak realm publishes, in Keycloak's order."""
        return [self.enc, self.sig]

    def all_published(self) -> list[Key]:
        return [self.enc, self.sig, self.rsa_any, self.ec256, self.ec384, self.ed25519]


@lru_cache(maxsize=1)
def keyring() -> KeyRing:
    return KeyRing(
        enc=keycloak_enc_key(),
        sig=rsa_key("RS256"),
        rsa_any=rsa_key(alg=None, x5c=False),
        ec256=ec_key("P-256"),
        ec384=ec_key("P-384"),
        ed25519=ed25519_key(),
        rotated=rsa_key("RS256"),
        foreign=rsa_key("RS256"),
    )


def jwks_document(keys) -> dict:
    """``{"keys": [...]}`` from Key objects and/or raw JWK dicts, in the given order."""
    return {"keys": [k.jwk() if isinstance(k, Key) else k for k in keys]}
