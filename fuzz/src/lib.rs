//! Shared fixtures for the fuzz targets: the fixed configuration, Keycloak-shaped key sets,
//! signers for the fixed test keys (the same keys as the crate's `src/testkeys.rs`), and the
//! invariants several targets check.
//!
//! Everything expensive is built once per process (`OnceLock`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use mcp_auth_filter::config::FilterConfig;
use mcp_auth_filter::jws::Algorithm;
use mcp_auth_filter::keys::KeySet;
use mcp_auth_filter::response::LocalResponse;
use serde_json::{json, Map, Value};

pub mod lists;
pub mod mcp_model;
pub mod model;
pub mod structured;

pub const RSA_KID: &str = "kc-rs256-Xq3";
pub const ENC_KID: &str = "kc-rsa-oaep";
pub const ROTATED_KID: &str = "kc-rs256-rotated";
pub const EC256_KID: &str = "ec256";
pub const EC384_KID: &str = "ec384";
pub const ED_KID: &str = "ed";
pub const ISSUER: &str = "http://localhost:8080/realms/my-realm";
pub const AUDIENCE: &str = "echo-mcp-server";
pub const REQUIRED_SCOPE: &str = "mcp:tools";
/// The fixed "now" of every target: 2026-11-26T10:00:00Z (as in the unit tests).
pub const NOW: u64 = 1_795_687_200;
/// Latest NumericDate the filter accepts (9999-12-31T23:59:59Z).
pub const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

const RSA_PEM: &str = include_str!("../../src/testdata/rsa-test-key.pem");
const RSA2_PEM: &str = include_str!("../../src/testdata/rsa-test-key2.pem");
const RSA_N: &str = include_str!("../../src/testdata/rsa-test-n.b64url");
pub const RSA2_N: &str = include_str!("../../src/testdata/rsa-test-n2.b64url");
const CERT: &str = include_str!("../../src/testdata/rsa-test-cert.b64");

/// Every status `authorize::decide` may answer with.
pub const STATUSES: [u32; 6] = [200, 400, 401, 403, 405, 503];

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The fixed filter configuration: Keycloak realm, one audience, one required scope, claims
/// copied to headers (including an object-valued and an array-valued claim).
pub fn config_json() -> Value {
    json!({
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "jwks": {"cluster": "authorization_server", "uri": "http://localhost:8080/realms/my-realm/protocol/openid-connect/certs"},
        "clock_skew_s": 60,
        "required_scopes": [REQUIRED_SCOPE],
        "resource_metadata": {
            "resource": "http://localhost:9000/mcp",
            "authorization_servers": [ISSUER],
            "scopes_supported": [REQUIRED_SCOPE]
        },
        "claims_to_headers": {"sub": "x-mcp-subject", "aud": "x-mcp-aud", "realm_access": "x-roles", "email": "x-mcp-email"}
    })
}

pub fn config() -> &'static FilterConfig {
    static CONFIG: OnceLock<FilterConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        FilterConfig::parse(config_json().to_string().as_bytes()).expect("fixed config parses")
    })
}

/// The responses of the fixed configuration, built once per thread.
pub fn responses() -> &'static mcp_auth_filter::response::Responses {
    thread_local! {
        static RESPONSES: &'static mcp_auth_filter::response::Responses =
            Box::leak(Box::new(mcp_auth_filter::response::Responses::new(config())));
    }
    RESPONSES.with(|r| *r)
}

/// Keycloak's shape: the RSA-OAEP encryption key first (skipped), then the RS256 signing key.
pub fn keycloak_jwks() -> Value {
    json!({"keys": [
        {"kid": ENC_KID, "kty": "RSA", "alg": "RSA-OAEP", "use": "enc",
         "n": RSA2_N.trim(), "e": "AQAB", "x5c": [CERT.trim()], "x5t": "abc", "x5t#S256": "def"},
        {"kid": RSA_KID, "kty": "RSA", "alg": "RS256", "use": "sig",
         "n": RSA_N.trim(), "e": "AQAB", "x5c": [CERT.trim()], "x5t": "abc", "x5t#S256": "def"}
    ]})
}

/// One key of every type, none restricted by `alg`.
pub fn all_types_jwks() -> Value {
    let p256 = p256_key().verifying_key().to_encoded_point(false);
    let p384 = p384_key().verifying_key().to_encoded_point(false);
    json!({"keys": [
        {"kid": RSA_KID, "kty": "RSA", "n": RSA_N.trim(), "e": "AQAB"},
        {"kid": EC256_KID, "kty": "EC", "crv": "P-256",
         "x": b64(p256.x().unwrap()), "y": b64(p256.y().unwrap())},
        {"kid": EC384_KID, "kty": "EC", "crv": "P-384",
         "x": b64(p384.x().unwrap()), "y": b64(p384.y().unwrap())},
        {"kid": ED_KID, "kty": "OKP", "crv": "Ed25519", "x": b64(ed_key().pk.as_ref())}
    ]})
}

pub fn keycloak_keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        KeySet::parse(keycloak_jwks().to_string().as_bytes()).expect("keycloak set parses")
    })
}

pub fn all_keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        KeySet::parse(all_types_jwks().to_string().as_bytes()).expect("all-types set parses")
    })
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::engine::general_purpose::STANDARD;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("PEM body")
}

fn rsa_key() -> &'static ring::rsa::KeyPair {
    static KEY: OnceLock<ring::rsa::KeyPair> = OnceLock::new();
    KEY.get_or_init(|| ring::rsa::KeyPair::from_pkcs8(&pem_der(RSA_PEM)).expect("test key"))
}

fn rsa2_key() -> &'static ring::rsa::KeyPair {
    static KEY: OnceLock<ring::rsa::KeyPair> = OnceLock::new();
    KEY.get_or_init(|| ring::rsa::KeyPair::from_pkcs8(&pem_der(RSA2_PEM)).expect("test key 2"))
}

fn ring_sign(
    key: &ring::rsa::KeyPair,
    scheme: &'static dyn ring::signature::RsaEncoding,
    msg: &[u8],
) -> Vec<u8> {
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(scheme, &ring::rand::SystemRandom::new(), msg, &mut sig).expect("RSA signing");
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

/// The deterministic signature of `msg` by the fixed key for `alg`; `None` for PS* (PSS is
/// randomised, so a signature cannot be recomputed for comparison).
pub fn sign(alg: Algorithm, msg: &[u8]) -> Option<Vec<u8>> {
    use ring::signature::{RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512};
    use Algorithm::*;
    Some(match alg {
        RS256 => ring_sign(rsa_key(), &RSA_PKCS1_SHA256, msg),
        RS384 => ring_sign(rsa_key(), &RSA_PKCS1_SHA384, msg),
        RS512 => ring_sign(rsa_key(), &RSA_PKCS1_SHA512, msg),
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

/// A signature of `msg` by the fixed key for `alg`, PS* included (randomised).
pub fn sign_any(alg: Algorithm, msg: &[u8]) -> Vec<u8> {
    use ring::signature::{RSA_PSS_SHA256, RSA_PSS_SHA384, RSA_PSS_SHA512};
    match alg {
        Algorithm::PS256 => ring_sign(rsa_key(), &RSA_PSS_SHA256, msg),
        Algorithm::PS384 => ring_sign(rsa_key(), &RSA_PSS_SHA384, msg),
        Algorithm::PS512 => ring_sign(rsa_key(), &RSA_PSS_SHA512, msg),
        other => sign(other, msg).expect("deterministic algorithm"),
    }
}

/// RS256 with the second (rotated, not in any fixed set) RSA key.
pub fn sign_rotated(msg: &[u8]) -> Vec<u8> {
    ring_sign(rsa2_key(), &ring::signature::RSA_PKCS1_SHA256, msg)
}

/// Keycloak-shaped access-token claims, valid at [`NOW`] and carrying the required scope.
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

/// A compact JWS of `header` and `claims` signed for the header's `alg` (not PS*).
pub fn mint(header: &Value, claims: &Value) -> String {
    let alg = Algorithm::from_name(header["alg"].as_str().unwrap()).unwrap();
    let input =
        format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let sig = sign(alg, input.as_bytes()).expect("deterministic algorithm");
    format!("{input}.{}", b64(&sig))
}

/// A key set of the Keycloak shape after a rotation: the old signing key and the new one.
pub fn rotated_keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut doc = keycloak_jwks();
        doc["keys"].as_array_mut().unwrap().push(
            json!({"kid": ROTATED_KID, "kty": "RSA", "alg": "RS256", "use": "sig", "n": RSA2_N.trim(), "e": "AQAB"}),
        );
        KeySet::parse(doc.to_string().as_bytes()).expect("rotated set parses")
    })
}

/// [`claims`] with `patch` applied: each member replaced, or removed when the patch says null.
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

/// Tokens whose verdict depends on the time around [`NOW`]: they expire, become valid, or
/// stop being "issued in the future" as the clock moves.
pub fn timed_tokens() -> &'static [String] {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let h = json!({"alg": "RS256", "typ": "JWT", "kid": RSA_KID});
        vec![
            mint(&h, &claims_with(json!({"exp": NOW + 5}))),
            mint(&h, &claims_with(json!({"exp": NOW + 600, "nbf": NOW + 90}))),
            mint(&h, &claims_with(json!({"exp": NOW + 600, "iat": NOW + 120}))),
            mint(&h, &claims_with(json!({"exp": NOW - 59}))),
            mint(
                &json!({"alg": "ES256", "kid": EC256_KID}),
                &claims_with(json!({"exp": NOW + 30})),
            ),
        ]
    })
}

/// Tokens signed by the fixed keys, for targets that need real ones: index 0 is valid and
/// authorized, the others each fail one way after the signature.
pub fn minted_tokens() -> &'static [String] {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let h = json!({"alg": "RS256", "typ": "JWT", "kid": RSA_KID});
        let rotated = {
            let header = json!({"alg": "RS256", "typ": "JWT", "kid": ROTATED_KID});
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims().to_string().as_bytes())
            );
            format!("{input}.{}", b64(&sign_rotated(input.as_bytes())))
        };
        vec![
            mint(&h, &claims()),
            mint(&h, &claims_with(json!({"scope": "openid email"}))),
            mint(&h, &claims_with(json!({"exp": NOW - 61}))),
            mint(&h, &claims_with(json!({"aud": "account"}))),
            mint(&h, &claims_with(json!({"sub": "a\r\nx-injected: 1", "email": ["a", "b\n"]}))),
            mint(&json!({"alg": "RS256"}), &claims()),
            rotated,
        ]
    })
}

/// The seed tokens of the `token_validate` corpus that were signed outside this crate
/// (PS256 is randomised, so "Ok means genuine" is checked against this list for them).
pub const SEED_TOKENS: &[&str] = &[include_str!("../corpus/token_validate/keycloak-ps256.jwt")];

/// Whether `token` carries a signature that the fixed keys made over its signing input: a
/// deterministic re-signature matches, or it is one of the externally signed seeds.
pub fn is_genuine(token: &str) -> bool {
    if SEED_TOKENS.iter().any(|t| t.trim() == token)
        || minted_tokens().iter().chain(timed_tokens()).any(|t| t == token)
    {
        return true;
    }
    let Some((input, sig_b64)) = token.rsplit_once('.') else { return false };
    let Some((header_b64, _)) = input.split_once('.') else { return false };
    let Ok(header) = URL_SAFE_NO_PAD.decode(header_b64) else { return false };
    let Ok(header) = serde_json::from_slice::<Value>(&header) else { return false };
    let Some(alg) = header.get("alg").and_then(Value::as_str).and_then(Algorithm::from_name) else {
        return false;
    };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig_b64) else { return false };
    match sign(alg, input.as_bytes()) {
        Some(expected) => expected == sig,
        None => false,
    }
}

/// Checks a response the filter would send: an allowed status, header values that cannot
/// split or corrupt a header, a well-formed `Bearer` challenge, a JSON body.
pub fn check_response(r: &LocalResponse) {
    assert!(STATUSES.contains(&r.status), "status {} not in {STATUSES:?}", r.status);
    for (name, value) in &r.headers {
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "header name {name:?}"
        );
        assert!(
            !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
            "header {name} has CR/LF/NUL: {value:?}"
        );
        if *name == "www-authenticate" {
            check_challenge(value);
        }
    }
    if !r.body.is_empty() {
        let body: Value = serde_json::from_slice(&r.body).expect("response body is JSON");
        assert!(body.is_object(), "response body is not an object");
    }
}

/// A `Bearer` challenge: `Bearer k="v", k="v"` with token-char names and quoted values that
/// hold no quote or backslash (so nothing needs escaping and nothing can end the string early).
pub fn check_challenge(value: &str) {
    let rest = value
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("challenge {value:?} is not Bearer"));
    for attr in rest.split(", ") {
        let (k, v) = attr
            .split_once('=')
            .unwrap_or_else(|| panic!("challenge attribute {attr:?} in {value:?}"));
        assert!(
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "attribute name {k:?}"
        );
        let inner = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("attribute value {v:?} not quoted in {value:?}"));
        assert!(!inner.contains(['"', '\\']), "quoted value {inner:?} needs escaping in {value:?}");
        assert!(!inner.bytes().any(|b| b.is_ascii_control()), "control byte in {value:?}");
    }
}

/// Claims of a token that `validate` accepted must satisfy the policy on their own.
pub fn check_accepted_claims(claims: &Map<String, Value>, exp: u64, cfg: &FilterConfig, now: u64) {
    assert_eq!(
        claims.get("iss").and_then(Value::as_str),
        Some(cfg.issuer.as_str()),
        "accepted iss"
    );
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => cfg.audiences.contains(a),
        Some(Value::Array(l)) => {
            l.iter().filter_map(Value::as_str).any(|a| cfg.audiences.iter().any(|c| c == a))
        }
        _ => false,
    };
    assert!(aud_ok, "accepted aud {:?}", claims.get("aud"));
    assert_eq!(claims.get("exp").and_then(Value::as_u64), Some(exp), "accepted exp");
    assert!(exp <= MAX_NUMERIC_DATE && exp + cfg.clock_skew_s > now, "accepted exp {exp}");
    for name in ["nbf", "iat"] {
        if let Some(v) = claims.get(name) {
            let t = v.as_u64().unwrap_or_else(|| panic!("accepted non-integer {name} {v}"));
            assert!(t <= MAX_NUMERIC_DATE && t <= now + cfg.clock_skew_s, "accepted {name} {t}");
        }
    }
}

/// Header changes for an allowed request: `authorization` removed unless forwarded, each
/// configured header either set (replacing the client's copy) or removed, never both, and
/// values that cannot split or corrupt a header.
pub fn check_upstream_changes(
    changes: &mcp_auth_filter::authorize::UpstreamChanges,
    cfg: &FilterConfig,
) {
    assert_eq!(
        changes.remove.iter().any(|h| h == "authorization"),
        !cfg.forward_token,
        "authorization header handling: {changes:?}"
    );
    for (_, header) in &cfg.claims_to_headers {
        let set = changes.set.iter().filter(|(h, _)| h == header).count();
        let removed = changes.remove.iter().filter(|h| *h == header).count();
        assert_eq!(set + removed, 1, "configured header {header}: {changes:?}");
    }
    for (name, value) in &changes.set {
        assert!(cfg.claims_to_headers.iter().any(|(_, h)| h == name), "unconfigured header {name}");
        assert!(
            !value.bytes().any(|b| b.is_ascii_control() && b != b'\t'),
            "control byte in upstream header {name}: {value:?}"
        );
    }
}

/// Whether two decisions are the same (response, outcome, header changes or wait reason).
pub fn same_decision(
    a: &mcp_auth_filter::authorize::Decision,
    b: &mcp_auth_filter::authorize::Decision,
) -> bool {
    use mcp_auth_filter::authorize::Decision::*;
    match (a, b) {
        (Allow(x), Allow(y)) => x == y,
        (Respond(r1, o1), Respond(r2, o2)) => **r1 == **r2 && o1 == o2,
        (Wait(w1), Wait(w2)) => w1 == w2,
        _ => false,
    }
}

/// A verdict cache sized as the fixed configuration says.
pub fn new_cache() -> mcp_auth_filter::authorize::VerdictCache {
    mcp_auth_filter::token_cache::TokenCache::new(
        config().token_cache_capacity,
        config().token_cache_max_bytes,
    )
}

/// Lossy UTF-8, so that every input reaches the code under test.
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Prints per-input detail when FUZZ_VERBOSE is set (for checking seeds by hand).
pub fn verbose() -> bool {
    static V: OnceLock<bool> = OnceLock::new();
    *V.get_or_init(|| std::env::var_os("FUZZ_VERBOSE").is_some())
}

/// [`mcp_auth_filter::authorize::decide`] with the request's clock and refetch permission given apart.
#[allow(clippy::too_many_arguments)]
pub fn decide_at(
    req: &mcp_auth_filter::authorize::RequestFacts<'_>,
    config: &FilterConfig,
    responses: &mcp_auth_filter::response::Responses,
    keys: Option<&KeySet>,
    now_s: u64,
    may_refetch: bool,
    cache: &mut mcp_auth_filter::authorize::VerdictCache,
) -> mcp_auth_filter::authorize::Decision {
    let req = mcp_auth_filter::authorize::RequestFacts { now_s, may_refetch, ..*req };
    mcp_auth_filter::authorize::decide(
        &req,
        &mcp_auth_filter::authorize::Policy { config, responses, keys },
        cache,
    )
}
