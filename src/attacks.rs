//! The attack catalogue, decided end to end by the pure logic (`authorize::decide` with the
//! verdict cache on, as in the filter). The same catalogue runs through a real Envoy in
//! `tests/test_attacks.py`. Every case must be refused; none may panic.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::authorize::{decide_at, Decision, Outcome, RequestFacts, VerdictCache};
use crate::config::FilterConfig;
use crate::keys::KeySet;
use crate::response::Responses;
use crate::testkeys::{self, b64, claims, keycloak_token, mint, NOW, RSA_KID};

fn config() -> FilterConfig {
    FilterConfig::parse(config_json().to_string().as_bytes()).unwrap()
}

fn config_json() -> Value {
    json!({
        "issuer": testkeys::ISSUER,
        "audiences": [testkeys::AUDIENCE],
        "jwks": {"cluster": "c", "uri": "http://localhost:8080/certs"},
        "resource_metadata": {"resource": "http://localhost:9000/mcp", "authorization_servers": [testkeys::ISSUER]}
    })
}

fn keys() -> KeySet {
    KeySet::parse(keys_doc().to_string().as_bytes()).unwrap()
}

/// Weak RSA key shapes an attacker who controls (or imitates) the key set may publish, with
/// their private keys: outside the default key policy, so skipped when the set loads, and a
/// token naming them finds no key. (kid, PKCS#8 PEM.)
const WEAK_KEYS: [(&str, &str); 3] = [
    ("weak-rsa-1024", include_str!("testdata/rsa-1024-weak.pem")),
    ("weak-rsa-2048-e3", include_str!("testdata/rsa-2048-e3.pem")),
    ("weak-rsa-4096-e2^32-1", include_str!("testdata/rsa-4096-emax.pem")),
];

fn weak_private(pem: &str) -> rsa::RsaPrivateKey {
    use rsa::pkcs8::DecodePrivateKey;
    rsa::RsaPrivateKey::from_pkcs8_pem(pem).unwrap()
}

fn weak_jwks() -> Vec<Value> {
    use rsa::traits::PublicKeyParts;
    WEAK_KEYS
        .iter()
        .map(|(kid, pem)| {
            let key = weak_private(pem);
            json!({"kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig",
                   "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())})
        })
        .collect()
}

/// A Keycloak-shaped token, RS256-signed by the weak key `kid` names.
fn weak_signed(kid: &str) -> String {
    use sha2::Digest as _;
    let pem = WEAK_KEYS.iter().find(|(k, _)| *k == kid).unwrap().1;
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let input =
        format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims().to_string().as_bytes()));
    let digest = sha2::Sha256::digest(input.as_bytes());
    let sig = weak_private(pem).sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest).unwrap();
    format!("{input}.{}", b64(&sig))
}

fn raw(header: &str, payload: &str, sig: &[u8]) -> String {
    format!("{}.{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()), b64(sig))
}

fn with_claims(patch: Value) -> String {
    mint(&json!({"alg": "RS256", "typ": "JWT", "kid": RSA_KID}), &testkeys::claims_with(patch))
}

/// A token signed by a key the filter does not trust (the second test RSA key), whatever the
/// header claims about where the key is.
fn attacker_signed(header: Value) -> String {
    let input =
        format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims().to_string().as_bytes()));
    format!("{input}.{}", b64(&testkeys::sign_with_rotated(input.as_bytes())))
}

/// Every case of the catalogue: (name, Authorization values, expected status, expected reason).
pub fn catalogue() -> Vec<(&'static str, Vec<String>, u32, &'static str)> {
    let good = keycloak_token();
    let parts: Vec<&str> = good.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    let claims_json = claims().to_string();
    let public_pem = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n";
    let hs256 = {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": RSA_KID});
        let input =
            format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims_json.as_bytes()));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(public_pem.as_bytes()).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    };
    let tampered = {
        let mut c = claims();
        c["sub"] = json!("admin");
        c["scope"] = json!("openid mcp:tools mcp:admin");
        format!("{h}.{}.{s}", b64(c.to_string().as_bytes()))
    };
    let dup_exp_payload = {
        // Signed correctly, but `exp` appears twice: parsers disagree on which one wins.
        let payload = claims_json.replacen('{', &format!("{{\"exp\":{},", NOW - 1000), 1);
        let header = json!({"alg": "RS256", "kid": RSA_KID}).to_string();
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        format!("{input}.{}", b64(&testkeys::sign(crate::jws::Algorithm::RS256, input.as_bytes())))
    };
    let bearer = |t: &str| vec![format!("Bearer {t}")];
    let mut cases: Vec<(&'static str, Vec<String>, u32, &'static str)> = vec![
        (
            "alg none, empty signature",
            bearer(&format!("{}.{}.", b64(br#"{"alg":"none"}"#), p)),
            401,
            "unsupported_alg",
        ),
        ("RS256, empty signature", bearer(&format!("{h}.{p}.")), 401, "bad_signature"),
        (
            "alg none, with signature",
            bearer(&raw(r#"{"alg":"none","kid":"kc-rs256-Xq3"}"#, &claims_json, b"x")),
            401,
            "unsupported_alg",
        ),
        (
            "alg None (case)",
            bearer(&raw(r#"{"alg":"None"}"#, &claims_json, b"x")),
            401,
            "unsupported_alg",
        ),
        ("HS256 signed with the RSA public key as secret", bearer(&hs256), 401, "unsupported_alg"),
        (
            "ES256 header naming the RSA key",
            bearer(&raw(&json!({"alg":"ES256","kid":RSA_KID}).to_string(), &claims_json, &[1; 64])),
            401,
            "unsupported_alg",
        ),
        (
            "RS256 header naming the EC key",
            bearer(&raw(r#"{"alg":"RS256","kid":"ec256"}"#, &claims_json, &[1; 256])),
            401,
            "unsupported_alg",
        ),
        (
            "EdDSA header naming the RSA key",
            bearer(&raw(&json!({"alg":"EdDSA","kid":RSA_KID}).to_string(), &claims_json, &[1; 64])),
            401,
            "unsupported_alg",
        ),
        (
            "PS256 with a key marked RS256",
            bearer(&raw(
                &json!({"alg":"PS256","kid":RSA_KID}).to_string(),
                &claims_json,
                &[1; 256],
            )),
            401,
            "unsupported_alg",
        ),
        (
            "kid naming no key",
            bearer(&raw(r#"{"alg":"RS256","kid":"no-such-key"}"#, &claims_json, &[1; 256])),
            401,
            "unknown_key",
        ),
        (
            "kid with an injection string",
            bearer(&raw(r#"{"alg":"RS256","kid":"' OR '1'='1"}"#, &claims_json, &[1; 256])),
            401,
            "unknown_key",
        ),
        (
            "kid with a path",
            bearer(&raw(
                r#"{"alg":"RS256","kid":"../../../../dev/null"}"#,
                &claims_json,
                &[1; 256],
            )),
            401,
            "unknown_key",
        ),
        (
            "kid with a NUL byte",
            bearer(&raw(
                "{\"alg\":\"RS256\",\"kid\":\"kc-rs256-Xq3\\u0000\"}",
                &claims_json,
                &[1; 256],
            )),
            401,
            "unknown_key",
        ),
        (
            "jku pointing at the attacker's key set",
            bearer(&attacker_signed(
                json!({"alg":"RS256","kid":RSA_KID,"jku":"https://attacker.example/jwks.json"}),
            )),
            401,
            "bad_signature",
        ),
        (
            "x5u pointing at the attacker's certificate",
            bearer(&attacker_signed(
                json!({"alg":"RS256","kid":RSA_KID,"x5u":"https://attacker.example/cert.pem"}),
            )),
            401,
            "bad_signature",
        ),
        (
            "jwk embedding the attacker's key, no kid",
            bearer(&attacker_signed(json!({"alg":"RS256","jwk":testkeys::rotated_jwk()}))),
            401,
            "bad_signature",
        ),
        (
            "jwk embedding the attacker's key, legit kid",
            bearer(&attacker_signed(
                json!({"alg":"RS256","kid":RSA_KID,"jwk":testkeys::rotated_jwk()}),
            )),
            401,
            "bad_signature",
        ),
        (
            "x5c with the attacker's certificate",
            bearer(&attacker_signed(json!({"alg":"RS256","kid":RSA_KID,"x5c":["MIIBattacker"]}))),
            401,
            "bad_signature",
        ),
        (
            "unknown crit",
            bearer(&raw(
                &json!({"alg":"RS256","kid":RSA_KID,"crit":["x-custom"],"x-custom":1}).to_string(),
                &claims_json,
                &[1; 256],
            )),
            401,
            "unsupported_crit",
        ),
        ("JWE, five parts", bearer(&format!("{h}.{p}.{s}.{s}.{s}")), 401, "malformed_token"),
        ("two parts", bearer(&format!("{h}.{p}")), 401, "malformed_token"),
        ("four parts", bearer(&format!("{h}.{p}.{s}.{s}")), 401, "malformed_token"),
        ("one part", bearer(h), 401, "malformed_token"),
        ("empty parts", bearer(".."), 401, "malformed_token"),
        ("base64 padding", bearer(&format!("{h}=.{p}.{s}")), 401, "malformed_token"),
        (
            "standard base64 alphabet",
            bearer(&format!("{h}.{p}.{}", s.replace('-', "+").replace('_', "/") + "+/")),
            401,
            "malformed_token",
        ),
        ("non-ASCII in the payload", bearer(&format!("{h}.{p}é.{s}")), 401, "malformed_token"),
        (
            "control character in the signature",
            bearer(&format!("{h}.{p}.{s}\u{1}")),
            401,
            "malformed_token",
        ),
        (
            "whitespace inside the token",
            vec![format!("Bearer {h}. {p}.{s}")],
            400,
            "invalid_request",
        ),
        (
            "duplicate alg in the header",
            bearer(&raw(
                &format!("{{\"alg\":\"RS256\",\"kid\":\"{RSA_KID}\",\"alg\":\"none\"}}"),
                &claims_json,
                &[1; 256],
            )),
            401,
            "malformed_token",
        ),
        (
            "duplicate exp in the payload, validly signed",
            bearer(&dup_exp_payload),
            401,
            "malformed_token",
        ),
        (
            "exp as a string",
            bearer(&with_claims(json!({"exp": (NOW + 300).to_string()}))),
            401,
            "missing_exp",
        ),
        (
            "exp as a float",
            bearer(&with_claims(json!({"exp": NOW as f64 + 300.5}))),
            401,
            "missing_exp",
        ),
        ("exp huge", bearer(&with_claims(json!({"exp": 1e40}))), 401, "missing_exp"),
        (
            "exp beyond year 9999",
            bearer(&with_claims(json!({"exp": 253_402_300_800u64}))),
            401,
            "missing_exp",
        ),
        ("exp negative", bearer(&with_claims(json!({"exp": -1}))), 401, "missing_exp"),
        (
            "exp null",
            bearer(&mint(&json!({"alg": "RS256", "kid": RSA_KID}), &{
                let mut c = claims();
                c["exp"] = Value::Null;
                c
            })),
            401,
            "missing_exp",
        ),
        ("aud empty string", bearer(&with_claims(json!({"aud": ""}))), 401, "bad_audience"),
        ("aud empty array", bearer(&with_claims(json!({"aud": []}))), 401, "bad_audience"),
        (
            "aud an object",
            bearer(&with_claims(json!({"aud": {"echo-mcp-server": true}}))),
            401,
            "bad_audience",
        ),
        (
            "iss with a trailing slash",
            bearer(&with_claims(json!({"iss": format!("{}/", testkeys::ISSUER)}))),
            401,
            "bad_issuer",
        ),
        (
            "payload an array",
            bearer(&mint(&json!({"alg":"RS256","kid":RSA_KID}), &json!([claims()]))),
            401,
            "malformed_token",
        ),
        (
            "payload a string",
            bearer(&mint(&json!({"alg":"RS256","kid":RSA_KID}), &json!("claims"))),
            401,
            "malformed_token",
        ),
        (
            "payload not JSON",
            bearer(&raw(&json!({"alg":"RS256","kid":RSA_KID}).to_string(), "not json", &[1; 256])),
            401,
            "bad_signature",
        ),
        (
            "oversized header",
            bearer(&raw(
                &json!({"alg":"RS256","kid":RSA_KID,"pad":"x".repeat(9000)}).to_string(),
                &claims_json,
                &[1; 256],
            )),
            401,
            "token_too_large",
        ),
        (
            "oversized payload",
            bearer(&with_claims(json!({"pad": "x".repeat(9000)}))),
            401,
            "token_too_large",
        ),
        ("oversized token", bearer(&"a".repeat(20_000)), 401, "token_too_large"),
        ("tampered payload, original signature", bearer(&tampered), 401, "bad_signature"),
        (
            "signature of another token",
            bearer(&format!(
                "{h}.{}.{s}",
                b64(json!({"iss": testkeys::ISSUER}).to_string().as_bytes())
            )),
            401,
            "bad_signature",
        ),
        (
            // Refused for its issuer before any key is looked up or fetched.
            "unconfigured issuer, signature of another token",
            bearer(&format!("{h}.{}.{s}", b64(br#"{"iss":"x"}"#))),
            401,
            "bad_issuer",
        ),
        (
            "truncated signature",
            bearer(&format!("{h}.{p}.{}", b64(&URL_SAFE_NO_PAD.decode(s).unwrap()[..253]))),
            401,
            "bad_signature",
        ),
        (
            "non-canonical base64 tail",
            bearer(&format!("{h}.{p}.{}", &s[..s.len() - 4])),
            401,
            "malformed_token",
        ),
        ("expired", bearer(&with_claims(json!({"exp": NOW - 3600}))), 401, "expired"),
        (
            "ID token (payload typ ID), validly signed",
            bearer(&with_claims(json!({"typ": "ID", "nonce": "n-0S6", "at_hash": "x4Yp"}))),
            401,
            "wrong_token_type",
        ),
        (
            "untyped ID token for the client's audience",
            bearer(&mint(
                &json!({"alg": "RS256", "kid": RSA_KID}),
                &testkeys::claims_with(json!({"typ": null, "aud": "mcp-client", "nonce": "n-0S6"})),
            )),
            401,
            "bad_audience",
        ),
        (
            "foreign header typ JOSE",
            bearer(&mint(&json!({"alg": "RS256", "typ": "JOSE", "kid": RSA_KID}), &claims())),
            401,
            "wrong_token_type",
        ),
        (
            "foreign header typ logout+jwt",
            bearer(&mint(&json!({"alg": "RS256", "typ": "logout+jwt", "kid": RSA_KID}), &claims())),
            401,
            "wrong_token_type",
        ),
        (
            "payload typ Refresh",
            bearer(&with_claims(json!({"typ": "Refresh"}))),
            401,
            "wrong_token_type",
        ),
        (
            "payload typ not a string",
            bearer(&with_claims(json!({"typ": ["Bearer"]}))),
            401,
            "wrong_token_type",
        ),
        (
            "two Authorization headers",
            vec![format!("Bearer {good}"), format!("Bearer {good}")],
            400,
            "invalid_request",
        ),
        (
            "two tokens folded into one header",
            vec![format!("Bearer {good},Bearer {good}")],
            400,
            "invalid_request",
        ),
        ("Bearer without a token", vec!["Bearer ".to_string()], 400, "invalid_request"),
        ("Basic credentials", vec!["Basic ZWl0YW46dGVzdA==".to_string()], 401, "missing_token"),
    ];
    // Weak key shapes published in the key set: refused when the set loads, so no key is found.
    cases.push((
        "token signed by a 1024-bit RSA key in the set",
        bearer(&weak_signed("weak-rsa-1024")),
        401,
        "unknown_key",
    ));
    cases.push((
        "token signed by an e = 3 RSA key in the set",
        bearer(&weak_signed("weak-rsa-2048-e3")),
        401,
        "unknown_key",
    ));
    cases.push((
        "token signed by an e = 2^32 - 1 RSA key in the set",
        bearer(&weak_signed("weak-rsa-4096-e2^32-1")),
        401,
        "unknown_key",
    ));
    // The token only in the query string: no Authorization header at all.
    cases.push(("token in the query string only", vec![], 401, "missing_token"));
    cases
}

/// Session attacks, which need a session bound first: (name, expected status, expected reason).
/// The owner's request starts a session the server hands out as `s-owner`; then the intruder,
/// with its own valid token, presents that session id.
pub fn session_catalogue() -> Vec<(&'static str, u32, &'static str)> {
    vec![(
        "hijacked session: another user's valid token with a bound session id",
        404,
        "session_mismatch",
    )]
}

#[test]
fn every_session_attack_is_refused_before_the_server() {
    use crate::host::MemoryHost;
    use crate::worker::{Flow, Worker};

    let v = config_json();
    for (name, status, reason) in session_catalogue() {
        let host = MemoryHost::new(NOW * 1000);
        let mut worker = Worker::configure(&host, v.to_string().as_bytes()).unwrap();
        let owner = format!("Bearer {}", with_claims(json!({"sub": "owner"})));
        let intruder = format!("Bearer {}", with_claims(json!({"sub": "intruder"})));
        let arrive = |id: u32, auth: &str, session: Option<&str>| {
            let mut headers = vec![(":path", "/mcp"), (":method", "POST"), ("authorization", auth)];
            headers.extend(session.map(|s| ("mcp-session-id", s)));
            host.arrive(id, &headers);
        };
        arrive(1, &owner, None);
        assert_eq!(worker.on_request_headers(&host, 1, false), Flow::Pause, "{name}: keys");
        let call = host.calls.borrow().last().unwrap().token;
        let keys = keys_doc().to_string().into_bytes();
        host.respond_to_call(&[(":status", "200")], &keys);
        worker.on_call_response(&host, call, keys.len());
        host.set_response_headers(1, &[("mcp-session-id", "s-owner")]);
        worker.on_response_headers(&host, 1);
        arrive(2, &owner, Some("s-owner"));
        assert_eq!(worker.on_request_headers(&host, 2, false), Flow::Continue, "{name}: owner");
        arrive(3, &intruder, Some("s-owner"));
        assert_eq!(worker.on_request_headers(&host, 3, false), Flow::Pause, "{name}");
        assert_eq!(host.request(3).sent.map(|r| r.status), Some(status), "{name}");
        worker.on_tick(&host);
        assert_eq!(host.counter(&format!("mcp_auth.denied.{reason}")), 1, "{name}");
    }
}

fn status_and_reason(decision: &Decision) -> (u32, &'static str) {
    match decision {
        Decision::Respond(r, o) => (r.status, o.reason().unwrap_or("none")),
        Decision::Allow(_) => (200, "allowed"),
        Decision::Wait(..) => (0, "wait"),
    }
}

#[test]
fn every_attack_is_refused_for_the_right_reason() {
    let cfg = config();
    let body = Responses::new(&cfg);
    let keys = keys();
    let mut cache = VerdictCache::new(64, 1 << 20);
    let path = format!("/mcp?access_token={}", keycloak_token());
    for (name, auth, status, reason) in catalogue() {
        let values: Vec<&str> = auth.iter().map(String::as_str).collect();
        let req = RequestFacts {
            method: "POST",
            path: &path,
            authorization: &values,
            now_s: 0,
            may_refetch: false,
        };
        // Twice: the second answer may come from the verdict cache and must be the same.
        for round in 0..2 {
            let d = decide_at(&req, &cfg, &body, Some(&keys), NOW, false, &mut cache);
            assert_eq!(status_and_reason(&d), (status, reason), "{name} (round {round})");
            if let Decision::Respond(r, _) = &d {
                let challenge = r.header("www-authenticate").unwrap_or("");
                assert!(!challenge.contains('\n') && !challenge.contains('\r'), "{name}");
                assert!(!matches!(r.status, 200), "{name}");
            }
        }
    }
    // The genuine token still passes afterwards: the catalogue did not poison the cache.
    let auth = format!("Bearer {}", keycloak_token());
    let req = RequestFacts {
        method: "POST",
        path: "/mcp",
        authorization: &[&auth],
        now_s: 0,
        may_refetch: false,
    };
    assert!(matches!(
        decide_at(&req, &cfg, &body, Some(&keys), NOW, false, &mut cache),
        Decision::Allow(_)
    ));
    assert!(Outcome::Allowed.reason().is_none());
}

#[test]
fn catalogue_is_exported_for_the_envoy_tests() {
    // `tests/attack_catalogue.json` is what the Envoy-level test sends; it must list the same
    // cases as this module, with the same expectations (regenerate with
    // `MCP_AUTH_WRITE_CATALOGUE=1 cargo test attacks`).
    let cases: Vec<Value> = catalogue()
        .into_iter()
        .map(|(name, auth, status, reason)| json!({"name": name, "authorization": auth, "status": status, "reason": reason}))
        .collect();
    let doc = serde_json::to_string_pretty(&json!({
        "comment": "Generated from src/attacks.rs at the fixed time NOW; tokens are signed by src/testdata keys.",
        "now": NOW,
        "jwks": keys_doc(),
        "cases": cases,
        "sessions": session_catalogue().into_iter()
            .map(|(name, status, reason)| json!({"name": name, "status": status, "reason": reason}))
            .collect::<Vec<_>>(),
    }))
    .unwrap()
        + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/attack_catalogue.json");
    if std::env::var_os("MCP_AUTH_WRITE_CATALOGUE").is_some() {
        std::fs::write(path, &doc).unwrap();
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    let parsed_disk: Value = serde_json::from_str(&on_disk).unwrap_or(Value::Null);
    let names_disk: Vec<&str> = parsed_disk["cases"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let names_now: Vec<String> = catalogue().into_iter().map(|c| c.0.to_string()).collect();
    assert_eq!(names_disk, names_now, "tests/attack_catalogue.json is stale: regenerate it");
}

/// Keycloak's set plus EC and Ed25519 keys, so that key-type confusion has targets, and the
/// weak RSA keys, so that the key policy has something to refuse.
fn keys_doc() -> Value {
    let mut doc = testkeys::keycloak_jwks();
    let extra = testkeys::all_types_jwks();
    let keys = doc["keys"].as_array_mut().unwrap();
    keys.extend(extra["keys"].as_array().unwrap().iter().skip(1).cloned());
    keys.extend(weak_jwks());
    doc
}

#[test]
fn the_weak_keys_are_what_their_names_say_and_are_skipped() {
    use crate::keys::SkipReason;
    use crate::rsa_verify::RsaKeyError;
    let set = keys();
    let refused: Vec<_> = set
        .skipped
        .iter()
        .filter_map(|s| match s.reason {
            SkipReason::RsaKey(e) => Some((s.kid.as_deref().unwrap(), e)),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        [
            ("weak-rsa-1024", RsaKeyError::ModulusTooShort { bits: 1024 }),
            ("weak-rsa-2048-e3", RsaKeyError::ExponentNotAllowed),
            ("weak-rsa-4096-e2^32-1", RsaKeyError::ExponentNotAllowed),
        ]
    );
    // Under a policy that took them, the tokens would verify: the cases test the policy.
    let wide = crate::rsa_verify::RsaKeyPolicy {
        min_bits: 2048,
        max_bits: 4096,
        allow_any_exponent: true,
    };
    let widened = KeySet::parse_with(keys_doc().to_string().as_bytes(), &wide).unwrap();
    for kid in ["weak-rsa-2048-e3", "weak-rsa-4096-e2^32-1"] {
        let token = weak_signed(kid);
        assert!(crate::token::validate(&token, &widened, &config(), NOW).is_ok(), "{kid}");
    }
}

#[test]
fn url_safe_alphabet_sanity() {
    assert!(URL_SAFE_NO_PAD.decode("+/").is_err());
}
