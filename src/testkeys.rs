//! Test fixtures: fixed keys, Keycloak-shaped key sets, the claims fixture and a token
//! minter. Built for the crate's tests, and with the `test-fixtures` feature for `fuzz/` and
//! `perf/` (one copy of every fixture: issue 9); never part of the filter.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::jws::Algorithm;

pub const RSA_KID: &str = "kc-rs256-Xq3";
/// The second RSA key as a signing key (rotation); Keycloak's encryption key otherwise.
pub const RSA2_KID: &str = "kc-rs256-rotated";
pub const ENC_KID: &str = "kc-rsa-oaep";
pub const EC256_KID: &str = "ec256";
pub const EC384_KID: &str = "ec384";
pub const ED_KID: &str = "ed";
pub const ISSUER: &str = "http://localhost:8080/realms/my-realm";
pub const AUDIENCE: &str = "echo-mcp-server";
/// A fixed "now" for tests: 2026-11-26T10:00:00Z.
pub const NOW: u64 = 1_795_687_200;

const RSA_PEM: &str = include_str!("testdata/rsa-test-key.pem");
const RSA2_PEM: &str = include_str!("testdata/rsa-test-key2.pem");
/// The claims every test starts from, shared with the Python helpers.
const CLAIMS_FIXTURE: &str = include_str!("../tests/fixtures/keycloak_claims.json");

pub fn rsa_n() -> &'static str {
    include_str!("testdata/rsa-test-n.b64url").trim()
}

pub fn rsa2_n() -> &'static str {
    include_str!("testdata/rsa-test-n2.b64url").trim()
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::engine::general_purpose::STANDARD;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

/// The RSA test keys as `ring` signers (parsed once): `ring`'s RSA shares no code with the
/// filter's verifier (`rsa_verify`), and signs fast enough for fuzzing.
fn rsa_key(rotated: bool) -> &'static ring::rsa::KeyPair {
    static KEYS: OnceLock<[ring::rsa::KeyPair; 2]> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        [RSA_PEM, RSA2_PEM].map(|pem| ring::rsa::KeyPair::from_pkcs8(&pem_der(pem)).unwrap())
    });
    &keys[usize::from(rotated)]
}

fn ring_sign(
    key: &ring::rsa::KeyPair,
    scheme: &'static dyn ring::signature::RsaEncoding,
    msg: &[u8],
) -> Vec<u8> {
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(scheme, &ring::rand::SystemRandom::new(), msg, &mut sig).unwrap();
    sig
}

fn p256_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap()
}

fn p384_key() -> p384::ecdsa::SigningKey {
    p384::ecdsa::SigningKey::from_slice(&[9u8; 48]).unwrap()
}

fn ed_key() -> ed25519_compact::KeyPair {
    ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([5u8; 32]))
}

/// Keycloak's shape: the RSA-OAEP encryption key first, then the RS256 signing key with x5c.
pub fn keycloak_jwks() -> Value {
    let cert = include_str!("testdata/rsa-test-cert.b64").trim();
    json!({"keys": [
        {"kid": ENC_KID, "kty": "RSA", "alg": "RSA-OAEP", "use": "enc",
         "n": rsa2_n(), "e": "AQAB", "x5c": [cert], "x5t": "abc", "x5t#S256": "def"},
        {"kid": RSA_KID, "kty": "RSA", "alg": "RS256", "use": "sig",
         "n": rsa_n(), "e": "AQAB", "x5c": [cert], "x5t": "abc", "x5t#S256": "def"}
    ]})
}

/// The second RSA key as a signing key, for rotation tests.
pub fn rotated_jwk() -> Value {
    json!({"kid": RSA2_KID, "kty": "RSA", "alg": "RS256", "use": "sig", "n": rsa2_n(), "e": "AQAB"})
}

pub fn all_types_jwks() -> Value {
    let p256 = p256_key().verifying_key().to_encoded_point(false);
    let p384 = p384_key().verifying_key().to_encoded_point(false);
    json!({"keys": [
        {"kid": RSA_KID, "kty": "RSA", "n": rsa_n(), "e": "AQAB"},
        {"kid": EC256_KID, "kty": "EC", "crv": "P-256",
         "x": URL_SAFE_NO_PAD.encode(p256.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(p256.y().unwrap())},
        {"kid": EC384_KID, "kty": "EC", "crv": "P-384",
         "x": URL_SAFE_NO_PAD.encode(p384.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(p384.y().unwrap())},
        {"kid": ED_KID, "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(ed_key().pk.as_ref())}
    ]})
}

/// Signs with the fixed key for `alg` (RSA key 1 for RS*/PS*; PS* is randomised).
pub fn sign(alg: Algorithm, msg: &[u8]) -> Vec<u8> {
    use ring::signature::{RSA_PSS_SHA256, RSA_PSS_SHA384, RSA_PSS_SHA512};
    match alg {
        Algorithm::PS256 => ring_sign(rsa_key(false), &RSA_PSS_SHA256, msg),
        Algorithm::PS384 => ring_sign(rsa_key(false), &RSA_PSS_SHA384, msg),
        Algorithm::PS512 => ring_sign(rsa_key(false), &RSA_PSS_SHA512, msg),
        other => sign_deterministic(other, msg).unwrap(),
    }
}

/// The one signature of `msg` by the fixed key for `alg` (ECDSA per RFC 6979); `None` for
/// PS*, whose signatures are randomised: so a token's genuineness can be checked by signing
/// its input again.
pub fn sign_deterministic(alg: Algorithm, msg: &[u8]) -> Option<Vec<u8>> {
    use ring::signature::{RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512};
    use Algorithm::*;
    Some(match alg {
        RS256 => ring_sign(rsa_key(false), &RSA_PKCS1_SHA256, msg),
        RS384 => ring_sign(rsa_key(false), &RSA_PKCS1_SHA384, msg),
        RS512 => ring_sign(rsa_key(false), &RSA_PKCS1_SHA512, msg),
        PS256 | PS384 | PS512 => return None,
        ES256 => {
            use p256::ecdsa::signature::Signer;
            let sig: p256::ecdsa::Signature = p256_key().sign(msg);
            sig.to_bytes().to_vec()
        }
        ES384 => {
            use p384::ecdsa::signature::Signer;
            let sig: p384::ecdsa::Signature = p384_key().sign(msg);
            sig.to_bytes().to_vec()
        }
        EdDSA => ed_key().sk.sign(msg, None).to_vec(),
    })
}

/// RS256 with the second RSA key ([`rotated_jwk`]).
pub fn sign_with_rotated(msg: &[u8]) -> Vec<u8> {
    ring_sign(rsa_key(true), &ring::signature::RSA_PKCS1_SHA256, msg)
}

/// The claims fixture (`tests/fixtures/keycloak_claims.json`) at `now`: its claims, and its
/// relative times added to `now`.
pub fn claims_at(now: u64) -> Value {
    let fixture: Value = serde_json::from_str(CLAIMS_FIXTURE).unwrap();
    let mut claims = fixture["claims"].clone();
    for (name, offset) in fixture["relative_times"].as_object().unwrap() {
        claims[name] = now.checked_add_signed(offset.as_i64().unwrap()).unwrap().into();
    }
    claims
}

/// Keycloak-shaped access-token claims, valid at [`NOW`] (expiring 300 s later).
pub fn claims() -> Value {
    claims_at(NOW)
}

/// [`claims`] with members replaced, or removed where the patch says `null`.
pub fn claims_with(patch: Value) -> Value {
    let mut c = claims();
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS of `header` and `claims`, signed for the header's own `alg`.
pub fn mint(header: &Value, claims: &Value) -> String {
    let alg = Algorithm::from_name(header["alg"].as_str().unwrap()).unwrap();
    let input =
        format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let sig = sign(alg, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

pub fn mint_rotated(claims: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": RSA2_KID});
    let input =
        format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    format!("{input}.{}", b64(&sign_with_rotated(input.as_bytes())))
}

/// The usual token: RS256, Keycloak's kid, Keycloak's claims.
pub fn keycloak_token() -> String {
    mint(&json!({"alg": "RS256", "typ": "JWT", "kid": RSA_KID}), &claims())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claims_fixture_is_keycloak_shaped_and_valid_at_now() {
        let c = claims();
        assert_eq!((c["exp"].as_u64(), c["iat"].as_u64()), (Some(NOW + 300), Some(NOW - 10)));
        assert_eq!(c["iss"], ISSUER);
        assert_eq!(c["aud"][0], AUDIENCE);
        assert_eq!(c["typ"], "Bearer");
    }
}
