//! The per-request decision: serve metadata, deny with a response, wait for keys, or allow
//! with header changes. Pure: the glue gathers the request's facts, calls [`decide`], and
//! carries the decision out.

use serde_json::Value;

use crate::config::FilterConfig;
use crate::error::{DenyReason, TokenError};
use crate::extract::{bearer_candidate, bearer_token, Credential};
use crate::keys::KeySet;
use crate::mcp::policy::Caller;
use crate::response::{LocalResponse, Responses};
use crate::sessions::{subject_digest, Digest16};
use std::rc::Rc;

use crate::token::{self, VerifiedToken};
use crate::token_cache::{Access, TokenCache, Verdict};

/// The verdict cache as the filter uses it: accepted tokens remember their header changes.
pub type VerdictCache = TokenCache<UpstreamChanges>;

/// The request facts the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    /// `:path`, query included.
    pub path: &'a str,
    pub authorization: &'a [&'a str],
    /// Seconds since the epoch.
    pub now_s: u64,
    /// Whether an unknown `kid` may still wait for a refetch (false once it has waited).
    pub may_refetch: bool,
}

/// The current key set of each provider, by its index in `FilterConfig::providers`.
pub trait ProviderKeys {
    /// `None` until one was loaded.
    fn keys(&self, provider: usize) -> Option<&KeySet>;
    /// Whether any provider has one.
    fn any(&self) -> bool;
}

/// A single provider's set (the first provider; any other has none).
impl ProviderKeys for Option<&KeySet> {
    fn keys(&self, provider: usize) -> Option<&KeySet> {
        if provider == 0 {
            *self
        } else {
            None
        }
    }
    fn any(&self) -> bool {
        self.is_some()
    }
}

/// What the filter knows beyond the request: its configuration and the providers' current
/// key sets.
#[derive(Clone, Copy)]
pub struct Policy<'a> {
    pub config: &'a FilterConfig,
    pub responses: &'a Responses,
    pub keys: &'a dyn ProviderKeys,
}

/// Why a request waits instead of being decided now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// No key set was ever loaded in this process yet.
    NoKeys,
    /// The token names a key the current set lacks: one refetch may bring it.
    UnknownKid,
}

/// What the stats and the log record about a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Metadata,
    Denied(DenyReason),
    /// A token that failed a check; its reason and, for the log, its detail.
    Rejected(TokenError),
}

impl Outcome {
    /// The stats name of a refusal.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Outcome::Allowed | Outcome::Metadata => None,
            Outcome::Denied(reason) => Some(reason.reason()),
            Outcome::Rejected(error) => Some(error.reason()),
        }
    }
}

#[derive(Debug)]
pub enum Decision {
    Allow(Rc<UpstreamChanges>),
    Respond(Rc<LocalResponse>, Outcome),
    /// Wait for the key set of the provider at this index.
    Wait(WaitReason, usize),
}

/// What an allowed token gets: header changes for the upstream (remove these, then set
/// those) and, with an `mcp` policy, the caller that policy judges (built once per token).
#[derive(Debug, Default)]
pub struct UpstreamChanges {
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
    pub caller: Option<Caller>,
    /// A digest of the token's (`iss`, `sub`), for binding sessions to it.
    pub subject: Option<Digest16>,
}

/// Equal when they change the same headers; the caller follows from the same claims.
impl PartialEq for UpstreamChanges {
    fn eq(&self, other: &UpstreamChanges) -> bool {
        self.remove == other.remove && self.set == other.set
    }
}

impl Eq for UpstreamChanges {}

/// Decides one request. `cache` holds earlier verdicts; the caller empties it of stale keys
/// when keys change.
pub fn decide(req: &RequestFacts<'_>, policy: &Policy<'_>, cache: &mut VerdictCache) -> Decision {
    let Policy { config, responses, keys } = *policy;
    let now_s = req.now_s;
    if config.is_metadata_path(req.path) {
        return match req.method {
            "GET" | "HEAD" => Decision::Respond(responses.metadata(), Outcome::Metadata),
            _ => Decision::Respond(
                responses.metadata_not_allowed(),
                Outcome::Denied(DenyReason::MethodNotAllowed),
            ),
        };
    }
    // A token seen before is decided by its cached verdict alone. The candidate skips the
    // scans `bearer_token` makes over a kilobyte of token: a cached token passed them when it
    // was first seen (see `bearer_candidate`). Without keys nothing was ever cached.
    let candidate = if keys.any() { bearer_candidate(req.authorization) } else { None };
    if let Some(candidate) = candidate {
        if let Some(decision) = cached(config, responses, cache, candidate, now_s) {
            return decision;
        }
    }
    let token = match bearer_token(req.authorization) {
        Credential::Absent => {
            return Decision::Respond(
                responses.missing_token(),
                Outcome::Denied(DenyReason::MissingToken),
            )
        }
        Credential::Invalid(why) => {
            return Decision::Respond(
                responses.invalid_request(config, why),
                Outcome::Denied(DenyReason::InvalidRequest),
            )
        }
        Credential::Bearer(token) => token,
    };
    if token.len() > config.max_token_bytes {
        return deny_token(config, responses, TokenError::TooLarge);
    }
    // The provider the token names judges it, with its keys only: a token naming none is
    // refused before any key lookup or fetch.
    let index = match token::provider_for(token, config) {
        Ok(index) => index,
        Err(e) => return deny_token(config, responses, e),
    };
    let Some(provider) = config.providers.get(index) else {
        return deny_token(config, responses, TokenError::BadIssuer);
    };
    let Some(keys) = keys.keys(index) else {
        return Decision::Wait(WaitReason::NoKeys, index);
    };
    // Every token `bearer_token` accepts is its value's candidate, already looked up above.
    if candidate.is_none() {
        if let Some(decision) = cached(config, responses, cache, token, now_s) {
            return decision;
        }
    }
    match token::validate_for(token, keys, config, provider, now_s) {
        Ok(verified) => {
            let access = access(config, &verified);
            let decision = grant(responses, &access);
            cache.put(
                token,
                Verdict::Valid {
                    exp: verified.exp,
                    provider: index,
                    key: verified.key,
                    lookup: verified.lookup,
                    access,
                },
                now_s,
            );
            decision
        }
        Err(TokenError::UnknownKey) if req.may_refetch => {
            Decision::Wait(WaitReason::UnknownKid, index)
        }
        Err(e) => {
            cache.put(token, Verdict::Refused(e), now_s);
            deny_token(config, responses, e)
        }
    }
}

fn cached(
    config: &FilterConfig,
    responses: &Responses,
    cache: &mut VerdictCache,
    token: &str,
    now_s: u64,
) -> Option<Decision> {
    match cache.get(token, now_s, config.clock_skew_s)? {
        Verdict::Valid { access, .. } => Some(grant(responses, access)),
        Verdict::Refused(error) => Some(deny_token(config, responses, *error)),
    }
}

fn deny_token(config: &FilterConfig, responses: &Responses, error: TokenError) -> Decision {
    Decision::Respond(responses.invalid_token(config, error), Outcome::Rejected(error))
}

fn grant(responses: &Responses, access: &Access<UpstreamChanges>) -> Decision {
    match access {
        Access::Granted(changes) => Decision::Allow(Rc::clone(changes)),
        Access::InsufficientScope => Decision::Respond(
            responses.insufficient_scope(),
            Outcome::Denied(DenyReason::InsufficientScope),
        ),
    }
}

/// Checks scopes and builds the upstream header changes for a verified token.
pub fn access(config: &FilterConfig, verified: &VerifiedToken) -> Access<UpstreamChanges> {
    if !token::missing_scopes(&verified.claims, &config.required_scopes).is_empty() {
        return Access::InsufficientScope;
    }
    let mut changes = UpstreamChanges::default();
    if !config.forward_token {
        changes.remove.push("authorization".to_string());
    }
    for (claim, header) in &config.claims_to_headers {
        // The client's own copy never reaches the upstream: replaced when the claim exists,
        // removed when it does not.
        match verified.claims.get(claim).and_then(header_value) {
            Some(value) => changes.set.push((header.clone(), value)),
            None => changes.remove.push(header.clone()),
        }
    }
    changes.caller = config.mcp.as_ref().map(|mcp| mcp.0.caller(&verified.claims));
    let claim = |name: &str| verified.claims.get(name).and_then(Value::as_str);
    changes.subject = claim("iss").zip(claim("sub")).map(|(iss, sub)| subject_digest(iss, sub));
    Access::Granted(Rc::new(changes))
}

/// A claim as a header value; `None` when it cannot be one safely.
fn header_value(claim: &Value) -> Option<String> {
    let text = match claim {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => claim.to_string(),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
        }
        other => other.to_string(),
    };
    // Control characters (CR, LF, NUL) would corrupt or split the header.
    if text.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        return None;
    }
    Some(text)
}

/// [`decide`] with the request's clock and refetch permission given apart, for the tests,
/// fuzz targets and micro-benchmarks.
#[cfg(any(test, feature = "test-fixtures"))]
#[allow(clippy::too_many_arguments)]
pub fn decide_at(
    req: &RequestFacts<'_>,
    config: &FilterConfig,
    responses: &Responses,
    keys: Option<&KeySet>,
    now_s: u64,
    may_refetch: bool,
    cache: &mut VerdictCache,
) -> Decision {
    let req = RequestFacts { now_s, may_refetch, ..*req };
    decide(&req, &Policy { config, responses, keys: &keys }, cache)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys::{self, keycloak_token, NOW};
    use serde_json::json;

    fn config(patch: Value) -> FilterConfig {
        let mut v = json!({
            "issuer": testkeys::ISSUER,
            "audiences": [testkeys::AUDIENCE],
            "jwks": {"cluster": "c", "uri": "http://localhost:8080/certs"},
            "resource_metadata": {
                "resource": "http://localhost:9000/mcp",
                "authorization_servers": [testkeys::ISSUER],
                "scopes_supported": ["mcp:tools"]
            },
            "claims_to_headers": {"sub": "x-mcp-subject", "aud": "x-mcp-aud", "realm_access": "x-roles", "missing": "x-missing"}
        });
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        FilterConfig::parse(v.to_string().as_bytes()).unwrap()
    }

    fn keys() -> KeySet {
        KeySet::parse(testkeys::keycloak_jwks().to_string().as_bytes()).unwrap()
    }

    fn run(cfg: &FilterConfig, method: &str, path: &str, auth: &[&str]) -> Decision {
        let req = RequestFacts { method, path, authorization: auth, now_s: 0, may_refetch: false };
        decide_at(
            &req,
            cfg,
            &Responses::new(cfg),
            Some(&keys()),
            NOW,
            true,
            &mut TokenCache::new(0, 0),
        )
    }

    fn responded(d: Decision) -> (Rc<LocalResponse>, Outcome) {
        match d {
            Decision::Respond(r, o) => (r, o),
            other => panic!("expected a response, got {other:?}"),
        }
    }

    fn body(r: &LocalResponse) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn metadata_on_both_paths_get_and_head() {
        let cfg = config(json!({}));
        for path in [
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource?x=1",
        ] {
            let (r, o) = responded(run(&cfg, "GET", path, &[]));
            assert_eq!((r.status, o), (200, Outcome::Metadata), "{path}");
            let doc = body(&r);
            assert_eq!(doc["resource"], "http://localhost:9000/mcp");
            assert_eq!(doc["authorization_servers"], json!([testkeys::ISSUER]));
            assert_eq!(doc["scopes_supported"], json!(["mcp:tools"]));
            assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
            assert!(doc.get("resource_name").is_none());
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert!(r.header("cache-control").unwrap().contains("max-age"));
            assert_eq!(r.header("access-control-allow-origin"), Some("*"));
            let (r, _) = responded(run(&cfg, "HEAD", path, &[]));
            assert_eq!(r.status, 200);
        }
        let (r, _) = responded(run(&cfg, "POST", "/.well-known/oauth-protected-resource/mcp", &[]));
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        // Other well-known paths are protected like everything else.
        let (r, _) =
            responded(run(&cfg, "GET", "/.well-known/oauth-protected-resource/other", &[]));
        assert_eq!(r.status, 401);
    }

    #[test]
    fn no_token_challenge_has_no_error() {
        let cfg = config(json!({}));
        for auth in [&[][..], &["Basic dXNlcjpwYXNz"][..]] {
            let (r, o) = responded(run(&cfg, "POST", "/mcp", auth));
            assert_eq!((r.status, o), (401, Outcome::Denied(DenyReason::MissingToken)));
            assert_eq!(
                r.header("www-authenticate"),
                Some(
                    r#"Bearer resource_metadata="http://localhost:9000/.well-known/oauth-protected-resource/mcp""#
                )
            );
            assert_eq!(body(&r)["error"], "unauthorized");
            assert_eq!(r.header("cache-control"), Some("no-store"));
        }
        let cfg = config(json!({"required_scopes": ["mcp:tools", "mcp:write"]}));
        let (r, _) = responded(run(&cfg, "POST", "/mcp", &[]));
        assert_eq!(
            r.header("www-authenticate"),
            Some(
                r#"Bearer resource_metadata="http://localhost:9000/.well-known/oauth-protected-resource/mcp", scope="mcp:tools mcp:write""#
            )
        );
    }

    #[test]
    fn malformed_request_is_400() {
        let cfg = config(json!({}));
        let t = keycloak_token();
        let two = [format!("Bearer {t}"), format!("Bearer {t}")];
        let two: Vec<&str> = two.iter().map(String::as_str).collect();
        for auth in [vec!["Bearer"], vec!["Bearer "], two] {
            let (r, o) = responded(run(&cfg, "POST", "/mcp", &auth));
            assert_eq!((r.status, o), (400, Outcome::Denied(DenyReason::InvalidRequest)));
            let h = r.header("www-authenticate").unwrap();
            assert!(h.starts_with(r#"Bearer error="invalid_request", error_description=""#), "{h}");
            assert!(h.ends_with(r#"resource_metadata="http://localhost:9000/.well-known/oauth-protected-resource/mcp""#));
            assert_eq!(body(&r)["error"], "invalid_request");
        }
    }

    #[test]
    fn bad_token_is_401_with_reason() {
        let cfg = config(json!({"audiences": ["someone-else"]}));
        let auth = format!("Bearer {}", keycloak_token());
        let (r, o) = responded(run(&cfg, "POST", "/mcp", &[&auth]));
        assert_eq!((r.status, o), (401, Outcome::Rejected(TokenError::BadAudience)));
        assert_eq!(
            r.header("www-authenticate"),
            Some(
                r#"Bearer error="invalid_token", error_description="invalid audience", resource_metadata="http://localhost:9000/.well-known/oauth-protected-resource/mcp""#
            )
        );
        assert_eq!(
            body(&r),
            json!({"error": "invalid_token", "error_description": "invalid audience"})
        );
    }

    #[test]
    fn too_large_is_refused_even_without_keys() {
        let cfg = config(json!({}));
        let auth = format!("Bearer {}", "a".repeat(9000));
        let req = RequestFacts {
            method: "POST",
            path: "/mcp",
            authorization: &[&auth],
            now_s: 0,
            may_refetch: false,
        };
        let (r, o) = responded(decide_at(
            &req,
            &cfg,
            &Responses::new(&cfg),
            None,
            NOW,
            true,
            &mut TokenCache::new(0, 0),
        ));
        assert_eq!((r.status, o), (401, Outcome::Rejected(TokenError::TooLarge)));
    }

    /// A cached token is found again whatever the spelling of its header, and the cache never
    /// lets through a header `bearer_token` refuses.
    #[test]
    fn cached_token_any_spelling_and_no_bypass() {
        let cfg = config(json!({}));
        let responses = Responses::new(&cfg);
        let keys = keys();
        let token = keycloak_token();
        let mut cache = TokenCache::new(16, 1 << 20);
        let mut decide_with = |auth: &[&str]| {
            let req = RequestFacts {
                method: "POST",
                path: "/mcp",
                authorization: auth,
                now_s: 0,
                may_refetch: false,
            };
            decide_at(&req, &cfg, &responses, Some(&keys), NOW, true, &mut cache)
        };
        assert!(matches!(decide_with(&[&format!("Bearer {token}")]), Decision::Allow(_)));
        for spelling in [
            format!("bearer\t{token} "),
            format!("  BEARER   {token}"),
            format!("Bearer {token}\t"),
        ] {
            assert!(matches!(decide_with(&[&spelling]), Decision::Allow(_)), "{spelling:?}");
        }
        for refused in [
            format!("Bearer {token}, Basic abc"),
            format!("Bearer {token},Bearer x"),
            format!("Bearer {token} x"),
        ] {
            let (r, o) = responded(decide_with(&[&refused]));
            assert_eq!(
                (r.status, o),
                (400, Outcome::Denied(DenyReason::InvalidRequest)),
                "{refused:?}"
            );
        }
        let (r, _) =
            responded(decide_with(&[&format!("Bearer {token}"), &format!("Bearer {token}")]));
        assert_eq!(r.status, 400);
        // Three hits after the miss that verified the token; the refused values' candidates
        // (the token with a suffix) were looked up and missed.
        assert_eq!(cache.stats(), (3, 4));
    }

    #[test]
    fn waits() {
        let cfg = config(json!({}));
        let auth = format!("Bearer {}", keycloak_token());
        let req = RequestFacts {
            method: "POST",
            path: "/mcp",
            authorization: &[&auth],
            now_s: 0,
            may_refetch: false,
        };
        assert!(matches!(
            decide_at(
                &req,
                &cfg,
                &Responses::new(&cfg),
                None,
                NOW,
                true,
                &mut TokenCache::new(0, 0)
            ),
            Decision::Wait(WaitReason::NoKeys, 0)
        ));
        let other = testkeys::mint_rotated(&testkeys::claims());
        let auth = format!("Bearer {other}");
        let req = RequestFacts {
            method: "POST",
            path: "/mcp",
            authorization: &[&auth],
            now_s: 0,
            may_refetch: false,
        };
        assert!(matches!(
            decide_at(
                &req,
                &cfg,
                &Responses::new(&cfg),
                Some(&keys()),
                NOW,
                true,
                &mut TokenCache::new(0, 0)
            ),
            Decision::Wait(WaitReason::UnknownKid, 0)
        ));
        let (r, o) = responded(decide_at(
            &req,
            &cfg,
            &Responses::new(&cfg),
            Some(&keys()),
            NOW,
            false,
            &mut TokenCache::new(0, 0),
        ));
        assert_eq!((r.status, o), (401, Outcome::Rejected(TokenError::UnknownKey)));
    }

    #[test]
    fn insufficient_scope_is_403() {
        let cfg = config(json!({"required_scopes": ["mcp:tools", "mcp:admin"]}));
        let auth = format!("Bearer {}", keycloak_token());
        let (r, o) = responded(run(&cfg, "POST", "/mcp", &[&auth]));
        assert_eq!((r.status, o), (403, Outcome::Denied(DenyReason::InsufficientScope)));
        assert_eq!(
            r.header("www-authenticate"),
            Some(
                r#"Bearer error="insufficient_scope", scope="mcp:tools mcp:admin", error_description="insufficient scope", resource_metadata="http://localhost:9000/.well-known/oauth-protected-resource/mcp""#
            )
        );
        let cfg = config(json!({"required_scopes": ["mcp:tools"]}));
        assert!(matches!(run(&cfg, "POST", "/mcp", &[&auth]), Decision::Allow(_)));
    }

    #[test]
    fn allowed_request_changes() {
        let cfg = config(json!({}));
        let auth = format!("Bearer {}", keycloak_token());
        let Decision::Allow(changes) = run(&cfg, "POST", "/mcp", &[&auth]) else { panic!() };
        assert_eq!(changes.remove, vec!["authorization", "x-missing"]);
        assert_eq!(
            changes.set,
            vec![
                ("x-mcp-aud".to_string(), "echo-mcp-server,account".to_string()),
                ("x-roles".to_string(), r#"{"roles":["default-roles-my-realm"]}"#.to_string()),
                ("x-mcp-subject".to_string(), "5c0b0a42-user".to_string()),
            ]
        );
        let cfg = config(json!({"forward_token": true, "claims_to_headers": {}}));
        let Decision::Allow(changes) = run(&cfg, "POST", "/mcp", &[&auth]) else { panic!() };
        assert_eq!(*changes, UpstreamChanges::default());
    }

    #[test]
    fn cached_verdicts_follow_the_key_set() {
        let cfg = config(json!({}));
        let auth = format!("Bearer {}", keycloak_token());
        let req = RequestFacts {
            method: "POST",
            path: "/mcp",
            authorization: &[&auth],
            now_s: 0,
            may_refetch: false,
        };
        let mut cache = TokenCache::new(16, 1 << 20);
        assert!(matches!(
            decide_at(&req, &cfg, &Responses::new(&cfg), Some(&keys()), NOW, true, &mut cache),
            Decision::Allow(_)
        ));
        assert_eq!(cache.len(), 1);
        // Rotated: only the new key is published. Until the glue drops stale entries the
        // verdict stands; afterwards the token's key is unknown.
        let rotated =
            KeySet::parse(json!({"keys": [testkeys::rotated_jwk()]}).to_string().as_bytes())
                .unwrap();
        assert!(matches!(
            decide_at(&req, &cfg, &Responses::new(&cfg), Some(&rotated), NOW, true, &mut cache),
            Decision::Allow(_)
        ));
        cache.retain_keys(0, &rotated);
        assert!(matches!(
            decide_at(&req, &cfg, &Responses::new(&cfg), Some(&rotated), NOW, true, &mut cache),
            Decision::Wait(WaitReason::UnknownKid, 0)
        ));
        // Past exp + skew a cached token is checked again, and refused as expired.
        let mut cache = TokenCache::new(16, 1 << 20);
        decide_at(&req, &cfg, &Responses::new(&cfg), Some(&keys()), NOW, true, &mut cache);
        let (r, o) = responded(decide_at(
            &req,
            &cfg,
            &Responses::new(&cfg),
            Some(&keys()),
            NOW + 360,
            true,
            &mut cache,
        ));
        assert_eq!((r.status, o), (401, Outcome::Rejected(TokenError::Expired)));
        // A bad signature is remembered.
        let mut forged = keycloak_token();
        forged.pop();
        forged.push('A');
        let auth = format!("Bearer {forged}");
        let req = RequestFacts {
            method: "POST",
            path: "/mcp",
            authorization: &[&auth],
            now_s: 0,
            may_refetch: false,
        };
        let mut cache = TokenCache::new(16, 1 << 20);
        for _ in 0..2 {
            let (r, _) = responded(decide_at(
                &req,
                &cfg,
                &Responses::new(&cfg),
                Some(&keys()),
                NOW,
                true,
                &mut cache,
            ));
            assert_eq!(r.status, 401);
        }
        assert_eq!(cache.stats(), (1, 1));
    }

    #[test]
    fn header_values_refuse_control_characters() {
        assert_eq!(header_value(&json!("a\r\nb")), None);
        assert_eq!(header_value(&json!(null)), None);
        assert_eq!(header_value(&json!(true)).as_deref(), Some("true"));
        assert_eq!(header_value(&json!(12)).as_deref(), Some("12"));
        assert_eq!(header_value(&json!([1, "a"])).as_deref(), Some(r#"[1,"a"]"#));
    }
}
