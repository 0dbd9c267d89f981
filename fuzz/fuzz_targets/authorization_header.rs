//! `extract::bearer_token` on 0..3 fuzzed Authorization values, and `authorize::decide` on a
//! fuzzed method, path and Authorization with the fixed configuration and keys.
//!
//! Invariants: a Bearer token is non-empty, has no space, tab or comma, and is a slice of
//! the one value; several values are always a 400; every response has a status in
//! {200,400,401,403,405,503}, header values without CR/LF, a well-formed challenge and a
//! JSON body; Allow happens only for a genuinely signed token, with safe upstream headers;
//! Wait only when keys are missing or a refetch may still happen.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mcp_auth_filter::authorize::{Decision, Outcome, RequestFacts, WaitReason};
use mcp_auth_filter::error::DenyReason;
use mcp_auth_filter::extract::{bearer_token, Credential, InvalidRequest};
use mcp_auth_filter::response;
use mcp_auth_filter::token_cache::TokenCache;
use mcp_auth_filter_fuzz::*;

const METHODS: &[&str] = &["GET", "HEAD", "POST", "DELETE", "OPTIONS", "get", ""];
const PATHS: &[&str] = &[
    "/mcp",
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp?x=1",
    "/.well-known/oauth-protected-resource/mcp#f",
    "/.well-known/oauth-protected-resource/mcp/",
    "/.well-known/oauth-protected-resource/other",
    "",
];
const SCHEMES: &[&str] = &["Bearer", "bearer", "BEARER", "Basic", "DPoP", "Bearer:", ""];
const SEPARATORS: &[&str] = &[" ", "\t", "  ", " \t ", "", ","];

#[derive(Arbitrary, Debug)]
enum Pick {
    Known(u8),
    Raw(String),
}

impl Pick {
    fn get(&self, known: &[&str]) -> String {
        match self {
            Pick::Known(i) => known[*i as usize % known.len()].to_string(),
            Pick::Raw(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum TokenPick {
    /// One of the minted tokens (valid, no scope, expired, wrong audience, header-injecting
    /// claims, no kid, rotated key).
    Minted(u8),
    /// A minted token with one byte replaced.
    Mutated(u8, u16, u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum AuthValue {
    Parts { lead: u8, scheme: Pick, sep: Pick, token: TokenPick, trail: Pick },
    Raw(String),
}

impl AuthValue {
    fn render(&self) -> String {
        match self {
            AuthValue::Raw(s) => s.clone(),
            AuthValue::Parts { lead, scheme, sep, token, trail } => {
                let token = match token {
                    TokenPick::Minted(i) => {
                        minted_tokens()[*i as usize % minted_tokens().len()].clone()
                    }
                    TokenPick::Mutated(i, pos, b) => {
                        let mut t = minted_tokens()[*i as usize % minted_tokens().len()]
                            .clone()
                            .into_bytes();
                        let p = *pos as usize % t.len();
                        t[p] = *b;
                        String::from_utf8_lossy(&t).into_owned()
                    }
                    TokenPick::Raw(s) => s.clone(),
                };
                let lead = [" ", "\t", ""][*lead as usize % 3];
                format!(
                    "{lead}{}{}{token}{}",
                    scheme.get(SCHEMES),
                    sep.get(SEPARATORS),
                    trail.get(&["", " ", "\t", ",", ", Bearer x"])
                )
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: Pick,
    path: Pick,
    auth: Vec<AuthValue>,
    keys_loaded: bool,
    keycloak_set: bool,
    may_refetch: bool,
    retry_after: u64,
}

fuzz_target!(|input: Input| {
    let cfg = config();
    let values: Vec<String> = input.auth.iter().take(3).map(AuthValue::render).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();

    let credential = bearer_token(&refs);
    match (&credential, refs.as_slice()) {
        (Credential::Absent, []) => {}
        (_, []) => panic!("no value but {credential:?}"),
        (Credential::Invalid(InvalidRequest::MultipleCredentials), [_, _, ..]) => {}
        (_, [_, _, ..]) => panic!("several values but {credential:?}"),
        (Credential::Bearer(t), [one]) => {
            assert!(!t.is_empty() && !t.contains([' ', '\t', ',']), "bearer token {t:?}");
            let start = (t.as_ptr() as usize).wrapping_sub(one.as_ptr() as usize);
            assert!(start + t.len() <= one.len(), "token is not a slice of the header");
            let scheme = one.trim_start_matches([' ', '\t']).get(..6).unwrap_or("");
            assert!(scheme.eq_ignore_ascii_case("bearer"), "scheme of {one:?}");
        }
        (Credential::Absent, [one]) => {
            let v = one.trim_matches([' ', '\t']);
            let scheme = v.split([' ', '\t']).next().unwrap_or("");
            assert!(!scheme.eq_ignore_ascii_case("bearer"), "Bearer value read as absent: {one:?}");
        }
        (Credential::Invalid(why), [_]) => {
            let why = why.description();
            assert!(!why.is_empty() && !why.contains(['"', '\\', '\r', '\n']))
        }
    }

    let method = input.method.get(METHODS);
    let path = input.path.get(PATHS);
    let req = RequestFacts {
        method: &method,
        path: &path,
        authorization: &refs,
        now_s: 0,
        may_refetch: false,
    };
    let keys = if input.keycloak_set { keycloak_keys() } else { all_keys() };
    let keys = input.keys_loaded.then_some(keys);
    let mut cache = new_cache();
    let decision = decide_at(&req, cfg, responses(), keys, NOW, input.may_refetch, &mut cache);
    if verbose() {
        eprintln!("authorization_header: {refs:?} -> {decision:?}");
    }
    // The same request again (now possibly from the verdict cache) decides the same way, and
    // so does a decision without any cache.
    let again = decide_at(&req, cfg, responses(), keys, NOW, input.may_refetch, &mut cache);
    assert!(
        same_decision(&decision, &again),
        "cached decision differs: {decision:?} then {again:?}"
    );
    let uncached =
        decide_at(&req, cfg, responses(), keys, NOW, input.may_refetch, &mut TokenCache::new(0, 0));
    assert!(
        same_decision(&decision, &uncached),
        "cache changed the decision: {decision:?} vs {uncached:?}"
    );
    let is_metadata_path =
        cfg.metadata_paths.iter().any(|p| path.split(['?', '#']).next() == Some(p.as_str()));
    match decision {
        Decision::Respond(r, outcome) => {
            check_response(&r);
            match outcome {
                Outcome::Metadata => {
                    assert!(is_metadata_path && (method == "GET" || method == "HEAD"));
                    assert_eq!(r.status, 200);
                }
                Outcome::Denied(DenyReason::MethodNotAllowed) => assert_eq!(r.status, 405),
                Outcome::Denied(DenyReason::MissingToken) => {
                    assert_eq!(r.status, 401);
                    assert_eq!(credential, Credential::Absent);
                }
                Outcome::Denied(DenyReason::InvalidRequest) => {
                    assert_eq!(r.status, 400);
                    assert!(matches!(credential, Credential::Invalid(_)));
                }
                Outcome::Denied(DenyReason::InsufficientScope) => assert_eq!(r.status, 403),
                Outcome::Rejected(e) => {
                    assert_eq!(r.status, 401);
                    let want = format!("error_description=\"{}\"", e.description());
                    assert!(r.header("www-authenticate").is_some_and(|h| h.contains(&want)));
                }
                other => panic!("unexpected outcome {other:?} for {}", r.status),
            }
            if !is_metadata_path {
                assert!(r.header("www-authenticate").is_some(), "{} without a challenge", r.status);
            }
        }
        Decision::Allow(changes) => {
            assert!(!is_metadata_path);
            let Credential::Bearer(t) = credential else { panic!("allowed with {credential:?}") };
            assert!(is_genuine(t), "allowed a token no fixed key signed: {t:?}");
            check_upstream_changes(&changes, cfg);
        }
        Decision::Wait(WaitReason::NoKeys, _) => assert!(keys.is_none()),
        Decision::Wait(WaitReason::UnknownKid, _) => assert!(keys.is_some() && input.may_refetch),
    }

    let r = response::keys_unavailable(input.retry_after);
    check_response(&r);
    let retry: u64 =
        r.header("retry-after").and_then(|v| v.parse().ok()).expect("retry-after is a number");
    assert!((1..=300).contains(&retry));
});
