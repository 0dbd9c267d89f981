//! Differential oracles for the token targets: whatever the filter accepts, two independent
//! verifiers accept too, with the same claims, under the filter's clock and skew.
//!
//! - `ring`'s RSA verification (RS*/PS*, 2048-8192-bit keys; the filter uses its own
//!   `rsa_verify` for RSA, so this is a second implementation of the same check).
//! - `jwt-simple` (pure Rust: the `rsa` crate, RustCrypto's ECDSA, `ed25519-compact`) for every
//!   algorithm, with the configured issuer, audiences, clock skew and the targets' NOW.
//!
//! Known gaps: `jwt-simple` holds times in 32.32 fixed point, so NumericDates from 2^32
//! (year 2106) on do not fit; the filter accepts them up to 9999. It also types some header
//! members the filter ignores (`salt`, which it base64-decodes; `jwk` as a string) and accepts
//! a header `typ` only as `JWT` or `*+JWT`, where the filter also takes `application/jwt`.
//! Such tokens, and tokens whose registered claims have JSON types `jwt-simple` does not model
//! (a non-string `sub`, an `aud` array with non-strings), are checked by `ring` only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude as js;
use mcp_auth_filter::config::FilterConfig;
use mcp_auth_filter::jws::Algorithm;
use mcp_auth_filter::token::VerifiedToken;
use serde_json::{Map, Value};

/// The JWK (from the fixed documents) that verified a token: same `kid`, a type that fits.
fn jwk_for(verified: &VerifiedToken) -> Value {
    let kid = verified.kid.as_deref().expect("every fixed key has a kid");
    let kty = match verified.lookup.alg {
        Algorithm::ES256 | Algorithm::ES384 => "EC",
        Algorithm::EdDSA => "OKP",
        _ => "RSA",
    };
    let docs = [crate::keycloak_jwks(), crate::all_types_jwks()];
    docs.iter()
        .flat_map(|d| d["keys"].as_array().unwrap().clone())
        .chain([crate::rotated_jwk()])
        .find(|k| k["kid"] == kid && k["kty"] == kty && k["use"] != "enc")
        .unwrap_or_else(|| panic!("no fixed JWK {kid} {kty}"))
}

fn member(jwk: &Value, name: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap()
}

/// Checks a token the filter accepted against both oracles.
pub fn check_accepted(token: &str, verified: &VerifiedToken, cfg: &FilterConfig, now: u64) {
    let jwk = jwk_for(verified);
    let alg = verified.lookup.alg;
    if jwk["kty"] == "RSA" {
        check_ring_rsa(token, alg, &member(&jwk, "n"), &member(&jwk, "e"));
    }
    check_jwt_simple(token, verified, &jwk, cfg, now);
}

fn check_ring_rsa(token: &str, alg: Algorithm, n: &[u8], e: &[u8]) {
    use ring::signature as rs;
    let params: &rs::RsaParameters = match alg {
        Algorithm::RS256 => &rs::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &rs::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &rs::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &rs::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &rs::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &rs::RSA_PSS_2048_8192_SHA512,
        other => panic!("an RSA key verified {other:?}"),
    };
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let verdict = rs::RsaPublicKeyComponents { n, e }.verify(params, input.as_bytes(), &sig);
    assert!(verdict.is_ok(), "ring refuses an {alg:?} token the filter accepted: {token}");
}

/// Whether `jwt-simple` models these claims (see the module comment).
fn jwt_simple_models(claims: &Map<String, Value>) -> bool {
    let time_fits = |name| claims.get(name).is_none_or(|v| v.as_u64().is_some_and(|t| t < 1 << 32));
    let string = |name| claims.get(name).is_none_or(Value::is_string);
    let aud = match claims.get("aud") {
        None | Some(Value::String(_)) => true,
        Some(Value::Array(list)) => list.iter().all(Value::is_string),
        Some(_) => false,
    };
    ["exp", "nbf", "iat"].into_iter().all(time_fits)
        && ["iss", "sub", "jti", "nonce"].into_iter().all(string)
        && aud
}

/// Whether `jwt-simple` models this header: its typed members hold the types it declares,
/// no `salt` (its own extension), and a `typ` it takes for a JWT.
fn jwt_simple_models_header(token: &str) -> bool {
    let Some(header) = token
        .split('.')
        .next()
        .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
    else {
        return false;
    };
    let string = |name| header.get(name).is_none_or(|v| v.is_null() || v.is_string());
    let strings = |name| {
        header.get(name).is_none_or(|v| match v {
            Value::Null => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            _ => false,
        })
    };
    let typ_is_jwt = header.get("typ").and_then(Value::as_str).is_none_or(|t| {
        let upper = t.to_uppercase();
        upper == "JWT" || upper.ends_with("+JWT")
    });
    ["cty", "kid", "typ", "jku", "jwk", "x5u", "x5t", "x5t#S256"].into_iter().all(string)
        && ["crit", "x5c"].into_iter().all(strings)
        && !header.contains_key("salt")
        && typ_is_jwt
}

fn check_jwt_simple(
    token: &str,
    verified: &VerifiedToken,
    jwk: &Value,
    cfg: &FilterConfig,
    now: u64,
) {
    if !jwt_simple_models(&verified.claims) || !jwt_simple_models_header(token) {
        return;
    }
    let options = js::VerificationOptions {
        artificial_time: Some(js::UnixTimeStamp::from_secs(now)),
        time_tolerance: Some(js::Duration::from_secs(cfg.clock_skew_s)),
        allowed_issuers: Some(HashSet::from([cfg.providers[0].issuer.clone()])),
        allowed_audiences: Some(cfg.providers[0].audiences.iter().cloned().collect()),
        max_token_length: Some(cfg.max_token_bytes),
        ..Default::default()
    };
    let o = Some(options);
    type C = js::JWTClaims<Map<String, Value>>;
    let alg = verified.lookup.alg;
    let result: Result<C, _> = {
        use js::{ECDSAP256PublicKeyLike as _, ECDSAP384PublicKeyLike as _};
        use js::{EdDSAPublicKeyLike as _, RSAPublicKeyLike as _};
        let rsa = || (member(jwk, "n"), member(jwk, "e"));
        let point = || [vec![4u8], member(jwk, "x"), member(jwk, "y")].concat();
        match alg {
            Algorithm::RS256 => {
                let (n, e) = rsa();
                js::RS256PublicKey::from_components(&n, &e).unwrap().verify_token(token, o)
            }
            Algorithm::RS384 => {
                let (n, e) = rsa();
                js::RS384PublicKey::from_components(&n, &e).unwrap().verify_token(token, o)
            }
            Algorithm::RS512 => {
                let (n, e) = rsa();
                js::RS512PublicKey::from_components(&n, &e).unwrap().verify_token(token, o)
            }
            Algorithm::PS256 => {
                let (n, e) = rsa();
                js::PS256PublicKey::from_components(&n, &e).unwrap().verify_token(token, o)
            }
            Algorithm::PS384 => {
                let (n, e) = rsa();
                js::PS384PublicKey::from_components(&n, &e).unwrap().verify_token(token, o)
            }
            Algorithm::PS512 => {
                let (n, e) = rsa();
                js::PS512PublicKey::from_components(&n, &e).unwrap().verify_token(token, o)
            }
            Algorithm::ES256 => {
                js::ES256PublicKey::from_bytes(&point()).unwrap().verify_token(token, o)
            }
            Algorithm::ES384 => {
                js::ES384PublicKey::from_bytes(&point()).unwrap().verify_token(token, o)
            }
            Algorithm::EdDSA => {
                js::Ed25519PublicKey::from_bytes(&member(jwk, "x")).unwrap().verify_token(token, o)
            }
        }
    };
    let theirs = match result {
        Ok(claims) => claims,
        Err(err) => {
            panic!("jwt-simple refuses an {alg:?} token the filter accepted ({err}): {token}")
        }
    };
    // The same claims: the registered ones jwt-simple parses, and every other member.
    let ours = &verified.claims;
    assert_eq!(theirs.expires_at.map(|t| t.as_secs()), Some(verified.exp), "exp");
    for (name, t) in [("nbf", theirs.invalid_before), ("iat", theirs.issued_at)] {
        assert_eq!(t.map(|t| t.as_secs()), ours.get(name).and_then(Value::as_u64), "{name}");
    }
    for (name, v) in [("iss", &theirs.issuer), ("sub", &theirs.subject), ("jti", &theirs.jwt_id)] {
        assert_eq!(v.as_deref(), ours.get(name).and_then(Value::as_str), "{name}");
    }
    let registered = ["exp", "nbf", "iat", "iss", "sub", "jti", "aud", "nonce"];
    let rest: Map<String, Value> = ours
        .iter()
        .filter(|(k, _)| !registered.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(theirs.custom, rest, "custom claims");
}
