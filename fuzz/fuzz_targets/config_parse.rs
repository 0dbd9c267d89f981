//! `FilterConfig::parse` on arbitrary bytes.
//!
//! Invariants on an accepted configuration: the values that end up in responses (metadata
//! URL, scopes) are safe in a quoted-string; header names are lower-case tokens and never
//! hop-by-hop or `authorization`; the bounds hold; every response built from it is
//! well-formed. A refusal always has a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_filter::config::FilterConfig;
use mcp_auth_filter::error::TokenError;
use mcp_auth_filter::response::{self, Responses};
use mcp_auth_filter::url::HttpUrl;
use mcp_auth_filter_fuzz::{check_response, verbose};
use serde_json::Value;

/// The URL splitter on its own: an accepted URL is http(s) with a host and nothing that could
/// break a quoted-string, and splits into pieces that put back together give the input.
fn check_url(input: &str) {
    let Ok(u) = HttpUrl::parse(input) else { return };
    assert!(u.scheme == "http" || u.scheme == "https", "scheme {}", u.scheme);
    assert!(
        !u.authority.is_empty() && !u.authority.contains(['@', '/', '?', '#']),
        "authority {:?}",
        u.authority
    );
    assert!(u.path_and_query.starts_with('/') && !u.path_and_query.contains('#'));
    assert!(!input
        .bytes()
        .any(|b| b.is_ascii_control() || b.is_ascii_whitespace() || b == b'"' || b == b'\\'));
    let (scheme, rest) = input.split_once("://").expect("accepted URL has ://");
    assert!(scheme.eq_ignore_ascii_case(&u.scheme));
    let whole = format!("{}{}", u.authority, u.path_and_query);
    let short = format!("{}{}", u.authority, &u.path_and_query[1..]);
    assert!(rest == whole || rest == short, "{input:?} split into {u:?}");
}

fuzz_target!(|data: &[u8]| {
    check_url(&String::from_utf8_lossy(data));
    let cfg = match FilterConfig::parse(data) {
        Ok(cfg) => cfg,
        Err(e) => {
            let msg = e.to_string();
            if verbose() {
                eprintln!("config_parse: {msg}");
            }
            assert!(msg.starts_with("invalid mcp_auth configuration: ") && msg.len() > 32);
            return;
        }
    };
    if verbose() {
        eprintln!("config_parse: ok {cfg:?}");
    }
    assert!(!cfg.providers.is_empty());
    for (i, p) in cfg.providers.iter().enumerate() {
        assert!(!p.issuer.trim().is_empty());
        assert!(!p.audiences.is_empty());
        // One provider per issuer, each in the metadata document, each with its own record.
        assert_eq!(cfg.provider_for(&p.issuer), Some(i));
        assert!(cfg.resource_metadata.authorization_servers.contains(&p.issuer));
        let others = cfg.providers.iter().filter(|q| q.jwks.shared_key == p.jwks.shared_key);
        assert_eq!(others.count(), 1);
        let j = &p.jwks;
        assert!(
            j.min_cache_duration_s <= j.max_cache_duration_s
                && j.retry_initial_ms <= j.retry_max_ms
        );
        assert!(j.path.starts_with('/') && !j.authority.is_empty());
    }
    let servers = &cfg.resource_metadata.authorization_servers;
    assert!(servers.iter().enumerate().all(|(i, s)| !servers[..i].contains(s)));
    assert!(!cfg.allowed_algorithms.is_empty());
    assert!(cfg.clock_skew_s <= 600);
    assert!((256..=65_536).contains(&cfg.max_token_bytes));
    assert!(cfg.metadata_url.starts_with("http://") || cfg.metadata_url.starts_with("https://"));
    assert!(!cfg
        .metadata_url
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'"' || b == b'\\'));
    assert!(!cfg.metadata_paths.is_empty());
    // The metadata URL that challenges advertise is one the filter serves, on the resource's host.
    let url = HttpUrl::parse(&cfg.metadata_url).expect("metadata URL parses");
    let resource = HttpUrl::parse(&cfg.resource_metadata.resource).expect("resource parses");
    assert_eq!(
        (url.scheme.as_str(), url.authority.as_str()),
        (resource.scheme.as_str(), resource.authority.as_str())
    );
    assert!(cfg.is_metadata_path(&url.path_and_query), "{} is not served", cfg.metadata_url);
    assert_eq!(url.path_and_query, cfg.metadata_paths[0]);
    for p in &cfg.metadata_paths {
        assert!(p.starts_with("/.well-known/oauth-protected-resource"), "metadata path {p}");
        assert!(!p.contains(['?', '#']), "metadata path {p} can never match a request path");
    }
    for s in &cfg.required_scopes {
        assert!(
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'),
            "scope {s:?}"
        );
    }
    for (claim, header) in &cfg.claims_to_headers {
        assert!(!claim.is_empty());
        assert!(
            !header.is_empty()
                && header.bytes().all(|b| b.is_ascii_graphic()
                    && !b.is_ascii_uppercase()
                    && !b"()<>@,;:\\\"/[]?={}".contains(&b)),
            "header name {header:?}"
        );
        assert!(!matches!(
            header.as_str(),
            "authorization" | "host" | "content-length" | "transfer-encoding" | "connection"
        ));
    }

    check_response(&response::missing_token(&cfg));
    check_response(&response::insufficient_scope(&cfg));
    for why in mcp_auth_filter::extract::InvalidRequest::ALL {
        check_response(&response::invalid_request(&cfg, why));
    }
    // The responses built once per configuration are the ones built per request.
    let built = Responses::new(&cfg);
    for e in TokenError::ALL.into_iter().chain([TokenError::Malformed("x")]) {
        let r = response::invalid_token(&cfg, e);
        check_response(&r);
        assert_eq!(*built.invalid_token(&cfg, e), r, "precomputed response for {e:?}");
    }
    assert_eq!(*built.missing_token(), response::missing_token(&cfg));
    assert_eq!(*built.insufficient_scope(), response::insufficient_scope(&cfg));
    let body = response::metadata_body(&cfg);
    let doc: Value = serde_json::from_slice(&body).expect("metadata body is JSON");
    assert_eq!(doc["resource"].as_str(), Some(cfg.resource_metadata.resource.as_str()));
    assert_eq!(*built.metadata(), response::metadata(&body));
    check_response(&built.metadata());
    for path in &cfg.metadata_paths {
        assert!(cfg.is_metadata_path(path) && cfg.is_metadata_path(&format!("{path}?a=b")));
    }
});
