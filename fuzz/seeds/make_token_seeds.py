#!/usr/bin/env python3
"""Writes the token seed corpus (fuzz/corpus/token_validate/) with real signed tokens.

Keys: the crate's RSA test key (src/testdata/rsa-test-key.pem) and the fixed EC/Ed keys of
src/testkeys.rs (P-256 scalar 07*32, P-384 scalar 09*48, Ed25519 seed 05*32). Claims are
Keycloak-shaped and valid at the targets' fixed NOW. RS*, ES* (RFC 6979) and EdDSA are
deterministic, so rerunning reproduces the same files; the PS256 seed changes each run (the
fuzz crate reads it back with include_str!, so keep it in the corpus).

Needs the Python `cryptography` package (>= 44; the repo's .venv has it):
    .venv/bin/python fuzz/seeds/make_token_seeds.py
"""
import base64
import json
import pathlib
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.helpers.tokens import DELETE, fixture_claims, with_overrides  # noqa: E402
OUT = ROOT / "fuzz" / "corpus" / "token_validate"
NOW = 1_795_687_200
ISSUER = "http://localhost:8080/realms/my-realm"
RSA_KID = "kc-rs256-Xq3"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


rsa_key = serialization.load_pem_private_key((ROOT / "src/testdata/rsa-test-key.pem").read_bytes(), None)
p256 = ec.derive_private_key(int.from_bytes(b"\x07" * 32, "big"), ec.SECP256R1())
p384 = ec.derive_private_key(int.from_bytes(b"\x09" * 48, "big"), ec.SECP384R1())
ed = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x05" * 32)
HASH = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def sign(alg: str, msg: bytes) -> bytes:
    if alg.startswith("RS"):
        return rsa_key.sign(msg, padding.PKCS1v15(), HASH[alg[2:]]())
    if alg.startswith("PS"):
        h = HASH[alg[2:]]()
        return rsa_key.sign(msg, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    if alg in ("ES256", "ES384"):
        key, size = (p256, 32) if alg == "ES256" else (p384, 48)
        der = key.sign(msg, ec.ECDSA(HASH[alg[2:]](), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg == "EdDSA":
        return ed.sign(msg)
    raise ValueError(alg)


def claims(**patch):
    """The claims fixture shared with the Rust tests (src/testkeys.rs) at the targets' NOW;
    a patch value of None removes the member."""
    return with_overrides(fixture_claims(NOW), {k: DELETE if v is None else v for k, v in patch.items()})


def token(header, payload, alg=None) -> str:
    inp = f"{b64(compact(header))}.{b64(compact(payload))}"
    return f"{inp}.{b64(sign(alg or header['alg'], inp.encode()))}"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    kc = {"alg": "RS256", "typ": "JWT", "kid": RSA_KID}
    unsigned = f"{b64(compact({'alg': 'none', 'typ': 'JWT'}))}.{b64(compact(claims()))}."
    hs = f"{b64(compact({'alg': 'HS256', 'kid': RSA_KID}))}.{b64(compact(claims()))}.{b64(bytes(32))}"
    seeds = {
        "keycloak-rs256.jwt": token(kc, claims()),
        "keycloak-ps256.jwt": token({"alg": "PS256", "typ": "JWT", "kid": RSA_KID}, claims()),
        "rs512-nokid.jwt": token({"alg": "RS512"}, claims()),
        "es256.jwt": token({"alg": "ES256", "kid": "ec256"}, claims()),
        "es384.jwt": token({"alg": "ES384", "kid": "ec384"}, claims(aud="echo-mcp-server")),
        "eddsa.jwt": token({"alg": "EdDSA", "kid": "ed", "typ": "at+jwt"}, claims(nbf=NOW - 5)),
        "expired.jwt": token(kc, claims(exp=NOW - 61)),
        "bad-audience.jwt": token(kc, claims(aud="account")),
        "no-scope.jwt": token(kc, claims(scope="openid")),
        "crit.jwt": token({"alg": "RS256", "kid": RSA_KID, "crit": ["exp"]}, claims()),
        "alg-none.jwt": unsigned + "AA",
        "hs256-confusion.jwt": hs,
    }
    for name, tok in seeds.items():
        (OUT / name).write_text(tok)
    print(f"wrote {len(seeds)} seeds to {OUT}")


if __name__ == "__main__":
    main()
