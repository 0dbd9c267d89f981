//! Token validation: the fixed check order, one reason per failure.
//!
//! Order: size, JWS shape and header (`jws::decode`: parts, base64url, JSON, `crit`, `alg`),
//! algorithm allowed, key selection, signature, payload, `iss`, `aud`, `exp`, `nbf`, `iat`.
//! Scopes are checked by the caller: a missing scope is a 403, not an invalid token.

use serde_json::{Map, Value};

use crate::config::{FilterConfig, Provider, TokenTypes};
use crate::error::TokenError;
use crate::jws;
use crate::keys::{KeyId, KeyLookup, KeyMatch, KeySet};

/// Latest NumericDate accepted (9999-12-31T23:59:59Z); larger values are treated as invalid.
const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// A token that passed every check, with what the filter needs afterwards.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub claims: Map<String, Value>,
    pub exp: u64,
    /// The key that verified it.
    pub key: KeyId,
    /// That key's `kid`, when it has one (a kid-less token names none: the fuzz oracles
    /// re-verify with the same key).
    pub kid: Option<String>,
    /// How the token named that key.
    pub lookup: KeyLookup,
}

/// Which provider judges `token`, by the `iss` its payload names (read before the signature
/// is checked, to pick the keys and audiences that judge it, and for nothing else):
/// `Ok(index)`, or `Err` when it names no configured issuer. A token whose payload cannot be
/// read goes to the first provider, where it fails as a malformed token always did.
pub fn provider_for(token: &str, config: &FilterConfig) -> Result<usize, TokenError> {
    let payload = token.split('.').nth(1).unwrap_or_default();
    let Ok(claims) = jws::decode_payload(payload) else { return Ok(0) };
    match claims.get("iss") {
        Some(Value::String(iss)) => config.provider_for(iss).ok_or(TokenError::BadIssuer),
        _ => Err(TokenError::BadIssuer),
    }
}

/// [`validate_for`] the first provider: the single-provider form, for tests and fuzz targets.
#[cfg(any(test, feature = "test-fixtures"))]
pub fn validate(
    token: &str,
    keys: &KeySet,
    config: &FilterConfig,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    match config.providers.first() {
        Some(provider) => validate_for(token, keys, config, provider, now),
        None => Err(TokenError::BadIssuer),
    }
}

/// Validates `token` against `provider`'s `keys`, its issuer and audiences, and the global
/// policy of `config` at time `now` (seconds).
pub fn validate_for(
    token: &str,
    keys: &KeySet,
    config: &FilterConfig,
    provider: &Provider,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    if token.len() > config.max_token_bytes {
        return Err(TokenError::TooLarge);
    }
    let jws = jws::decode(token)?;
    if !config.allowed_algorithms.contains(&jws.alg) {
        return Err(TokenError::UnsupportedAlg);
    }
    let jwk = match keys.find(jws.kid.as_deref(), jws.alg) {
        KeyMatch::Found(jwk) => jwk,
        KeyMatch::WrongAlgorithm => return Err(TokenError::UnsupportedAlg),
        KeyMatch::NotFound => return Err(TokenError::UnknownKey),
    };
    jwk.key.verify(jws.alg, jws.signing_input.as_bytes(), &jws.signature)?;

    let claims = jws::decode_payload(jws.payload_b64)?;
    check_type(jws.typ.as_deref(), &claims, &config.token_types)?;
    check_issuer(&claims, &provider.issuer)?;
    check_audience(&claims, &provider.audiences)?;
    let skew = config.clock_skew_s;
    let exp = match claims.get("exp") {
        Some(v) => numeric_date(v).ok_or(TokenError::MissingExp)?,
        None => return Err(TokenError::MissingExp),
    };
    if exp.saturating_add(skew) <= now {
        return Err(TokenError::Expired);
    }
    if let Some(v) = claims.get("nbf") {
        let nbf = numeric_date(v).ok_or(TokenError::Malformed("nbf is not a NumericDate"))?;
        if nbf > now.saturating_add(skew) {
            return Err(TokenError::NotYetValid);
        }
    }
    if let Some(v) = claims.get("iat") {
        let iat = numeric_date(v).ok_or(TokenError::Malformed("iat is not a NumericDate"))?;
        if iat > now.saturating_add(skew) {
            return Err(TokenError::IssuedInFuture);
        }
    }
    Ok(VerifiedToken {
        claims,
        exp,
        key: jwk.id,
        kid: jwk.kid.clone(),
        lookup: KeyLookup { kid: jws.kid, alg: jws.alg },
    })
}

/// A NumericDate as the filter accepts it: a non-negative JSON integer up to year 9999.
/// Strings, fractions and absurd values are refused rather than guessed at.
fn numeric_date(value: &Value) -> Option<u64> {
    value.as_u64().filter(|v| *v <= MAX_NUMERIC_DATE)
}

/// Explicit typing (RFC 8725 3.11, RFC 9068): the header's `typ` and the payload's `typ`
/// (Keycloak's "Bearer" / "ID") must name an access token, so an ID token or another JWT the
/// same issuer signs for the same audience is not taken for one.
fn check_type(
    header_typ: Option<&str>,
    claims: &Map<String, Value>,
    types: &TokenTypes,
) -> Result<(), TokenError> {
    let header_ok = match header_typ {
        None => !types.header_required,
        Some(typ) => types.header.iter().any(|t| t == &TokenTypes::normalise_header(typ)),
    };
    let payload_ok = match claims.get("typ") {
        None => !types.payload_required,
        Some(Value::String(typ)) => types.payload.iter().any(|t| t == typ),
        Some(_) => false,
    };
    if header_ok && payload_ok {
        Ok(())
    } else {
        Err(TokenError::WrongType)
    }
}

fn check_issuer(claims: &Map<String, Value>, issuer: &str) -> Result<(), TokenError> {
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == issuer => Ok(()),
        _ => Err(TokenError::BadIssuer),
    }
}

fn check_audience(claims: &Map<String, Value>, audiences: &[String]) -> Result<(), TokenError> {
    let accepted = |aud: &str| audiences.iter().any(|a| a == aud);
    let ok = match claims.get("aud") {
        Some(Value::String(aud)) => accepted(aud),
        Some(Value::Array(list)) => list.iter().any(|v| v.as_str().is_some_and(accepted)),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(TokenError::BadAudience)
    }
}

/// The required scopes a token lacks. Scopes come from `scope` (space separated, RFC 8693)
/// or `scp` (an array, or a space-separated string, as some providers issue it).
pub fn missing_scopes<'a>(claims: &Map<String, Value>, required: &'a [String]) -> Vec<&'a str> {
    if required.is_empty() {
        return Vec::new();
    }
    let mut granted: Vec<&str> = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => granted.extend(s.split(' ').filter(|s| !s.is_empty())),
            Some(Value::Array(list)) => granted.extend(list.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    required.iter().map(String::as_str).filter(|r| !granted.contains(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys::{self, claims, keycloak_token, mint, NOW, RSA_KID};
    use serde_json::json;

    fn config() -> FilterConfig {
        let v = json!({
            "issuer": testkeys::ISSUER,
            "audiences": [testkeys::AUDIENCE],
            "jwks": {"cluster": "c", "uri": "http://localhost:8080/certs"},
            "resource_metadata": {
                "resource": "http://localhost:9000/mcp",
                "authorization_servers": [testkeys::ISSUER]
            }
        });
        FilterConfig::parse(v.to_string().as_bytes()).unwrap()
    }

    fn keycloak_keys() -> KeySet {
        KeySet::parse(testkeys::keycloak_jwks().to_string().as_bytes()).unwrap()
    }

    fn all_keys() -> KeySet {
        KeySet::parse(testkeys::all_types_jwks().to_string().as_bytes()).unwrap()
    }

    fn check(token: &str) -> Result<VerifiedToken, TokenError> {
        validate(token, &keycloak_keys(), &config(), NOW)
    }

    fn with_claims(patch: serde_json::Value) -> String {
        mint(&json!({"alg": "RS256", "typ": "JWT", "kid": RSA_KID}), &testkeys::claims_with(patch))
    }

    #[test]
    fn keycloak_token_passes() {
        let v = check(&keycloak_token()).unwrap();
        assert_eq!(v.exp, NOW + 300);
        assert_eq!(v.lookup.kid.as_deref(), Some(RSA_KID));
        assert_eq!(v.claims["azp"], "mcp-client");
    }

    #[test]
    fn every_algorithm_passes_with_its_key() {
        for (kid, alg) in [
            (RSA_KID, "RS256"),
            (RSA_KID, "RS384"),
            (RSA_KID, "RS512"),
            (RSA_KID, "PS256"),
            (RSA_KID, "PS384"),
            (RSA_KID, "PS512"),
            ("ec256", "ES256"),
            ("ec384", "ES384"),
            ("ed", "EdDSA"),
        ] {
            let t = mint(&json!({"alg": alg, "kid": kid}), &claims());
            assert!(validate(&t, &all_keys(), &config(), NOW).is_ok(), "{alg}");
        }
    }

    #[test]
    fn disallowed_algorithm_is_refused_before_the_key() {
        let mut c = config();
        c.allowed_algorithms = vec![crate::jws::Algorithm::ES256];
        assert_eq!(
            validate(&keycloak_token(), &keycloak_keys(), &c, NOW).unwrap_err(),
            TokenError::UnsupportedAlg
        );
    }

    #[test]
    fn alg_key_type_mismatch() {
        // An ES256 header naming the RSA key.
        let t = mint(&json!({"alg": "ES256", "kid": RSA_KID}), &claims());
        assert_eq!(check(&t).unwrap_err(), TokenError::UnsupportedAlg);
    }

    #[test]
    fn hs256_with_public_key_as_secret_is_refused() {
        use base64::Engine;
        let header = testkeys::b64(br#"{"alg":"HS256","kid":"kc-rs256-Xq3"}"#);
        let payload = testkeys::b64(claims().to_string().as_bytes());
        let fake_sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([1u8; 32]);
        assert_eq!(
            check(&format!("{header}.{payload}.{fake_sig}")).unwrap_err(),
            TokenError::UnsupportedAlg
        );
    }

    #[test]
    fn unknown_kid_and_missing_kid() {
        let t = mint(&json!({"alg": "RS256", "kid": "../../etc/passwd"}), &claims());
        // Signed by the right key but naming another: no fallback to other keys.
        assert_eq!(check(&t).unwrap_err(), TokenError::UnknownKey);
        let t = mint(&json!({"alg": "RS256"}), &claims());
        assert!(check(&t).is_ok(), "a single suitable key may serve a token without kid");
    }

    #[test]
    fn tampered_payload_fails_signature() {
        let t = keycloak_token();
        let parts: Vec<&str> = t.split('.').collect();
        let mut c = claims();
        c["sub"] = json!("admin");
        let forged =
            format!("{}.{}.{}", parts[0], testkeys::b64(c.to_string().as_bytes()), parts[2]);
        assert_eq!(check(&forged).unwrap_err(), TokenError::BadSignature);
    }

    #[test]
    fn claims_in_order() {
        let cases = [
            (json!({"iss": "http://evil/realms/my-realm"}), TokenError::BadIssuer),
            (json!({"iss": null}), TokenError::BadIssuer),
            (json!({"iss": 5}), TokenError::BadIssuer),
            (json!({"aud": "account"}), TokenError::BadAudience),
            (json!({"aud": []}), TokenError::BadAudience),
            (json!({"aud": ""}), TokenError::BadAudience),
            (json!({"aud": null}), TokenError::BadAudience),
            (json!({"aud": [5, {"a": 1}]}), TokenError::BadAudience),
            (json!({"exp": null}), TokenError::MissingExp),
            (json!({"exp": "1795687500"}), TokenError::MissingExp),
            (json!({"exp": 1795687500.5}), TokenError::MissingExp),
            (json!({"exp": -1}), TokenError::MissingExp),
            (json!({"exp": 1e300}), TokenError::MissingExp),
            (json!({"exp": u64::MAX}), TokenError::MissingExp),
            (json!({"exp": NOW - 61}), TokenError::Expired),
            (json!({"exp": NOW - 60}), TokenError::Expired),
            (json!({"nbf": NOW + 61}), TokenError::NotYetValid),
            (json!({"iat": NOW + 61}), TokenError::IssuedInFuture),
            (json!({"iat": "x"}), TokenError::Malformed("iat is not a NumericDate")),
            (json!({"nbf": 1.5}), TokenError::Malformed("nbf is not a NumericDate")),
            // Two failures: the earlier check names the reason.
            (json!({"iss": "x", "exp": 1}), TokenError::BadIssuer),
            (json!({"aud": "x", "exp": 1}), TokenError::BadAudience),
        ];
        for (patch, want) in cases {
            assert_eq!(check(&with_claims(patch.clone())).unwrap_err(), want, "{patch}");
        }
    }

    #[test]
    fn skew_is_honoured() {
        assert!(check(&with_claims(json!({"exp": NOW - 59}))).is_ok());
        assert!(check(&with_claims(json!({"nbf": NOW + 60, "iat": NOW + 60}))).is_ok());
        let mut c = config();
        c.clock_skew_s = 0;
        let t = with_claims(json!({"exp": NOW}));
        assert_eq!(validate(&t, &keycloak_keys(), &c, NOW).unwrap_err(), TokenError::Expired);
        let t = with_claims(json!({"exp": NOW + 1}));
        assert!(validate(&t, &keycloak_keys(), &c, NOW).is_ok());
    }

    #[test]
    fn aud_as_string() {
        assert!(check(&with_claims(json!({"aud": "echo-mcp-server"}))).is_ok());
    }

    #[test]
    fn too_large_is_refused_before_parsing() {
        let t = "x".repeat(8193);
        assert_eq!(check(&t).unwrap_err(), TokenError::TooLarge);
        let big = with_claims(json!({"pad": "y".repeat(9000)}));
        assert_eq!(check(&big).unwrap_err(), TokenError::TooLarge);
    }

    #[test]
    fn payload_not_an_object_after_valid_signature() {
        let header = json!({"alg": "RS256", "kid": RSA_KID});
        let t = mint(&header, &json!([1, 2]));
        assert!(matches!(check(&t).unwrap_err(), TokenError::Malformed(_)));
        let t = mint(&header, &json!("claims"));
        assert!(matches!(check(&t).unwrap_err(), TokenError::Malformed(_)));
    }

    #[test]
    fn scopes() {
        let required = vec!["mcp:tools".to_string(), "mcp:admin".to_string()];
        let c = claims();
        let map = c.as_object().unwrap();
        assert_eq!(missing_scopes(map, &required), vec!["mcp:admin"]);
        assert!(missing_scopes(map, &[]).is_empty());
        let scp = json!({"scp": ["mcp:tools", "mcp:admin"]});
        assert!(missing_scopes(scp.as_object().unwrap(), &required).is_empty());
        let none = json!({});
        assert_eq!(missing_scopes(none.as_object().unwrap(), &required).len(), 2);
        // A scope that is a prefix of a granted one is not granted.
        let prefix = json!({"scope": "mcp:toolsX"});
        assert_eq!(missing_scopes(prefix.as_object().unwrap(), &required[..1]), vec!["mcp:tools"]);
    }

    #[test]
    fn only_access_tokens_pass_the_type_check() {
        let claims = testkeys::claims;
        let header = |typ: Option<&str>| match typ {
            Some(t) => json!({"alg": "RS256", "typ": t, "kid": RSA_KID}),
            None => json!({"alg": "RS256", "kid": RSA_KID}),
        };
        for typ in [None, Some("JWT"), Some("jwt"), Some("at+jwt"), Some("application/at+JWT")] {
            assert!(check(&mint(&header(typ), &claims())).is_ok(), "{typ:?}");
        }
        for typ in ["JOSE", "id+jwt", "application/jose", ""] {
            assert_eq!(
                check(&mint(&header(Some(typ)), &claims())).unwrap_err(),
                TokenError::WrongType
            );
        }
        // Keycloak's ID token: payload typ "ID"; a refresh token "Refresh"; a non-string typ.
        for typ in [json!("ID"), json!("Refresh"), json!("bearer"), json!(1), json!(null)] {
            let token =
                mint(&header(Some("JWT")), &testkeys::claims_with(json!({"typ": typ.clone()})));
            let result = check(&token);
            if typ.is_null() {
                assert!(result.is_ok(), "an absent payload typ passes by default");
            } else {
                assert_eq!(result.unwrap_err(), TokenError::WrongType, "{typ}");
            }
        }
        // A non-string header typ is a malformed header.
        let bad = mint(&json!({"alg": "RS256", "typ": 7, "kid": RSA_KID}), &claims());
        assert!(matches!(check(&bad), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn token_types_can_require_and_replace() {
        let mut v: serde_json::Value = json!({
            "issuer": testkeys::ISSUER,
            "audiences": [testkeys::AUDIENCE],
            "jwks": {"cluster": "c", "uri": "http://localhost:8080/certs"},
            "resource_metadata": {
                "resource": "http://localhost:9000/mcp",
                "authorization_servers": [testkeys::ISSUER]
            },
            "token_types": {"header": ["at+jwt"], "header_required": true, "payload_required": true}
        });
        let cfg = FilterConfig::parse(v.to_string().as_bytes()).unwrap();
        let run = |t: &str| validate(t, &keycloak_keys(), &cfg, NOW);
        let rfc9068 =
            mint(&json!({"alg": "RS256", "typ": "at+jwt", "kid": RSA_KID}), &testkeys::claims());
        assert!(run(&rfc9068).is_ok());
        let plain =
            mint(&json!({"alg": "RS256", "typ": "JWT", "kid": RSA_KID}), &testkeys::claims());
        assert_eq!(run(&plain).unwrap_err(), TokenError::WrongType);
        let untyped = mint(
            &json!({"alg": "RS256", "typ": "at+jwt", "kid": RSA_KID}),
            &testkeys::claims_with(json!({"typ": null})),
        );
        assert_eq!(run(&untyped).unwrap_err(), TokenError::WrongType);
        v["token_types"] = json!({"header": []});
        let err = FilterConfig::parse(v.to_string().as_bytes()).unwrap_err();
        assert!(err.0.contains("token_types.header"), "{err}");
    }
}
