//! `mcp::McpPolicy::judge` on arbitrary bodies, differential against a reference model
//! (`src/mcp_model.rs`) that judges serde_json's parse of the same bytes.
//!
//! Input: byte 0 picks the caller (four claim sets), byte 1 the routing headers (none,
//! agreeing with the body, naming another item, a fixed `tools/call echo` pair, a gzip
//! Content-Encoding, `Mcp-Name` only, `Mcp-Method` only), the rest is the body.
//!
//! Invariants: the filter's verdict equals the model's: the same list requests to filter,
//! the same step-up scopes and ids, the same refusals by rule; a body the model refuses
//! (serde_json cannot parse it, it is no JSON-RPC message or batch, a duplicate member,
//! nesting past the bound, an unnamed item) is refused by the filter, and a body the filter
//! refuses is one the model refuses: no refused body is ever forwarded. Every refusal has a
//! well-formed local response.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_auth_filter::mcp::{self, McpHeaders, McpPolicy, McpVerdict};
use mcp_auth_filter_fuzz::mcp_model::{self, Expect, Headers};
use mcp_auth_filter_fuzz::verbose;
use serde_json::Value;

fn policy() -> &'static McpPolicy {
    static POLICY: OnceLock<McpPolicy> = OnceLock::new();
    POLICY.get_or_init(|| {
        mcp::compile_value(mcp_model::policy_json(), "/mcp").expect("the fixed policy compiles")
    })
}

/// The method and item as a lenient reader sees them, to build agreeing headers.
fn lenient(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) else { return (None, None) };
    let method = m.get("method").and_then(Value::as_str).map(str::to_string);
    let params = m.get("params").and_then(Value::as_object);
    let item = params
        .and_then(|p| p.get("name").or_else(|| p.get("uri")))
        .and_then(Value::as_str)
        .map(str::to_string);
    (method, item)
}

fn headers(mode: u8, body: &[u8]) -> Headers {
    let (method, item) = lenient(body);
    let none = Headers { encoding: None, method: None, name: None };
    match mode % 8 {
        1 => {
            let named = method.as_deref().is_some_and(|m| {
                m == "tools/call" || m == "prompts/get" || m.starts_with("resources/")
            });
            Headers { encoding: None, name: if named { item } else { None }, method }
        }
        2 => Headers { encoding: None, method, name: Some(item.unwrap_or_default() + "x") },
        3 => {
            Headers { encoding: None, method: Some("tools/call".into()), name: Some("echo".into()) }
        }
        4 => Headers { encoding: Some("gzip".into()), ..none },
        5 => Headers { name: item, ..none },
        6 => Headers { method, ..none },
        7 => Headers { encoding: Some(" Identity ".into()), ..none },
        _ => none,
    }
}

fn agrees(verdict: &McpVerdict, expect: &Expect) -> bool {
    let id = |id: &Option<mcp::RequestId>| id.as_ref().map(|i| i.0.clone());
    match (verdict, expect) {
        (McpVerdict::Forward { lists, .. }, Expect::Forward { lists: want }) => {
            lists.len() == want.len()
                && lists
                    .iter()
                    .zip(want)
                    .all(|(l, (wid, method))| l.id.0 == *wid && l.kind.method() == *method)
        }
        (
            McpVerdict::InsufficientScope { scopes, id: got, .. },
            Expect::Scope { scopes: want, id: wid },
        ) => scopes == want && id(got) == *wid,
        (McpVerdict::Forbidden { id: got, .. }, Expect::Forbid { id: wid }) => id(got) == *wid,
        (McpVerdict::HeaderMismatch { id: got }, Expect::Mismatch { id: wid }) => id(got) == *wid,
        // Which refusal a body gets first depends on member order; that it is refused does not.
        (McpVerdict::BadBody { reason, .. }, Expect::Bad(why)) => match *why {
            "Encoding" => *reason == mcp::BadBody::Encoding,
            "TooLarge" => *reason == mcp::BadBody::TooLarge,
            _ => !matches!(reason, mcp::BadBody::Encoding | mcp::BadBody::TooLarge),
        },
        // serde_json refused the bytes; the filter may have stopped earlier, at a message
        // that was already wrong before the syntax error.
        (McpVerdict::BadBody { reason, .. }, Expect::Unparsable) => {
            !matches!(reason, mcp::BadBody::Encoding | mcp::BadBody::TooLarge)
        }
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let (caller_choice, mode, body) = match data {
        [c, m, rest @ ..] => (*c, *m, rest),
        _ => return,
    };
    let p = policy();
    let claims = mcp_model::claims(caller_choice);
    let caller = p.caller(claims.as_object().expect("claims are an object"));
    let h = headers(mode, body);
    let mh = McpHeaders {
        content_encoding: h.encoding.as_deref(),
        mcp_method: h.method.as_deref(),
        mcp_name: h.name.as_deref(),
    };
    let verdict = p.judge(&mh, Some(body), &caller);
    let expect = mcp_model::expect(body, &h, caller_choice);
    if verbose() {
        eprintln!(
            "mcp_judge: {:?} {mh:?} -> {verdict:?} / model {expect:?}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(
        agrees(&verdict, &expect),
        "filter {verdict:?} vs model {expect:?} on {:?} with {mh:?}",
        String::from_utf8_lossy(body)
    );
    // Judging is deterministic.
    assert_eq!(p.judge(&mh, Some(body), &caller), verdict);
    match mcp::response(&verdict, "https://rs.example/.well-known/oauth-protected-resource/mcp") {
        None => assert!(matches!(verdict, McpVerdict::Forward { .. })),
        Some(r) => {
            assert!(matches!(r.status, 400 | 403 | 413 | 415), "{}", r.status);
            let b: Value = serde_json::from_slice(&r.body).expect("a JSON body");
            assert_eq!(b["jsonrpc"], "2.0");
            assert!(b["error"]["code"].is_i64());
            assert!(b.get("id").is_some());
            for (_, v) in &r.headers {
                assert!(!v.contains(['\r', '\n']), "header value {v:?}");
            }
            let challenge = r.header("www-authenticate");
            assert_eq!(
                challenge.is_some(),
                matches!(verdict, McpVerdict::InsufficientScope { .. })
            );
        }
    }
});
