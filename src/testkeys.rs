//! Test fixtures: fixed keys, Keycloak-shaped key sets and a token minter. Test builds only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs8::DecodePrivateKey;
use serde_json::{json, Value};

use crate::jws::Algorithm;

pub const RSA_KID: &str = "kc-rs256-Xq3";
pub const RSA2_KID: &str = "kc-rs256-rotated";
pub const ENC_KID: &str = "kc-rsa-oaep";
pub const ISSUER: &str = "http://localhost:8080/realms/my-realm";
pub const AUDIENCE: &str = "echo-mcp-server";
/// A fixed "now" for tests: 2026-11-26T10:00:00Z.
pub const NOW: u64 = 1_795_687_200;

const RSA_PEM: &str = include_str!("testdata/rsa-test-key.pem");
const RSA2_PEM: &str = include_str!("testdata/rsa-test-key2.pem");

pub fn rsa_n() -> &'static str {
    include_str!("testdata/rsa-test-n.b64url").trim()
}

pub fn rsa2_n() -> &'static str {
    include_str!("testdata/rsa-test-n2.b64url").trim()
}

fn rsa_private(pem: &str) -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap()
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
        {"kid": "ec256", "kty": "EC", "crv": "P-256",
         "x": URL_SAFE_NO_PAD.encode(p256.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(p256.y().unwrap())},
        {"kid": "ec384", "kty": "EC", "crv": "P-384",
         "x": URL_SAFE_NO_PAD.encode(p384.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(p384.y().unwrap())},
        {"kid": "ed", "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(ed_key().pk.as_ref())}
    ]})
}

/// Signs with the fixed key for `alg` (RSA key 1 for RS*/PS*).
pub fn sign(alg: Algorithm, msg: &[u8]) -> Vec<u8> {
    sign_with(alg, msg, RSA_PEM)
}

pub fn sign_with_rotated(msg: &[u8]) -> Vec<u8> {
    sign_with(Algorithm::RS256, msg, RSA2_PEM)
}

fn sign_with(alg: Algorithm, msg: &[u8], rsa_pem: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256, Sha384, Sha512};
    use Algorithm::*;
    let mut rng = rand_core::OsRng;
    match alg {
        RS256 => rsa_private(rsa_pem)
            .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg))
            .unwrap(),
        RS384 => rsa_private(rsa_pem)
            .sign(rsa::Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(msg))
            .unwrap(),
        RS512 => rsa_private(rsa_pem)
            .sign(rsa::Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(msg))
            .unwrap(),
        PS256 => rsa_private(rsa_pem)
            .sign_with_rng(&mut rng, rsa::Pss::new::<Sha256>(), &Sha256::digest(msg))
            .unwrap(),
        PS384 => rsa_private(rsa_pem)
            .sign_with_rng(&mut rng, rsa::Pss::new::<Sha384>(), &Sha384::digest(msg))
            .unwrap(),
        PS512 => rsa_private(rsa_pem)
            .sign_with_rng(&mut rng, rsa::Pss::new::<Sha512>(), &Sha512::digest(msg))
            .unwrap(),
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
    }
}

/// Keycloak-shaped access-token claims, valid at [`NOW`].
pub fn claims() -> Value {
    json!({
        "exp": NOW + 300, "iat": NOW - 10, "auth_time": NOW - 20,
        "jti": "onrtac:6f1c", "iss": ISSUER, "aud": [AUDIENCE, "account"],
        "sub": "5c0b0a42-user", "typ": "Bearer", "azp": "mcp-client", "sid": "s-1",
        "acr": "1", "allowed-origins": ["http://localhost:6274"],
        "realm_access": {"roles": ["default-roles-my-realm"]},
        "scope": "openid mcp:tools email profile", "email_verified": true,
        "name": "Eitan Test", "preferred_username": "eitan", "email": "eitan@example.com"
    })
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
