//! Shared fixtures for the fuzz targets: the fixed configuration, key sets and tokens built
//! once, and the invariants several targets check. Keys, key sets, claims and signers are the
//! unit tests' own (`mcp_auth_filter::testkeys`, the `test-fixtures` feature): RSA signing
//! there uses `ring`, so the oracle shares no code with the filter's verifier.
//!
//! Everything expensive is built once per process (`OnceLock`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
pub use mcp_auth_filter::authorize::decide_at;
use mcp_auth_filter::config::FilterConfig;
use mcp_auth_filter::jws::Algorithm;
use mcp_auth_filter::keys::KeySet;
use mcp_auth_filter::response::LocalResponse;
pub use mcp_auth_filter::testkeys::{
    all_types_jwks, b64, claims, claims_with, keycloak_jwks, mint, mint_rotated, rotated_jwk,
    sign as sign_any, sign_deterministic as sign, sign_with_rotated as sign_rotated, AUDIENCE,
    EC256_KID, EC384_KID, ED_KID, ENC_KID, ISSUER, NOW, RSA2_KID as ROTATED_KID, RSA_KID,
};
use serde_json::{json, Map, Value};

pub mod lists;
pub mod mcp_model;
pub mod model;
pub mod oracles;
pub mod structured;

pub const REQUIRED_SCOPE: &str = "mcp:tools";
/// Latest NumericDate the filter accepts (9999-12-31T23:59:59Z).
pub const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// Every status `authorize::decide` may answer with.
pub const STATUSES: [u32; 6] = [200, 400, 401, 403, 405, 503];

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

/// A key set of the Keycloak shape after a rotation: the old signing key and the new one.
pub fn rotated_keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut doc = keycloak_jwks();
        doc["keys"].as_array_mut().unwrap().push(rotated_jwk());
        KeySet::parse(doc.to_string().as_bytes()).expect("rotated set parses")
    })
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
        let rotated = mint_rotated(&claims());
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
        Some(cfg.providers[0].issuer.as_str()),
        "accepted iss"
    );
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => cfg.providers[0].audiences.contains(a),
        Some(Value::Array(l)) => l
            .iter()
            .filter_map(Value::as_str)
            .any(|a| cfg.providers[0].audiences.iter().any(|c| c == a)),
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
        (Wait(w1, p1), Wait(w2, p2)) => (w1, p1) == (w2, p2),
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
