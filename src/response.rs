//! The responses the filter sends itself: challenges (RFC 6750 section 3, MCP authorization),
//! the RFC 9728 metadata document, and 503 while no keys can be had.

use std::rc::Rc;

use serde_json::json;

use crate::config::FilterConfig;
use crate::error::TokenError;
use crate::extract::InvalidRequest;

/// A response for the glue to send as-is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl LocalResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn error_body(error: &str, description: &str) -> Vec<u8> {
    json!({"error": error, "error_description": description}).to_string().into_bytes()
}

fn json_response(status: u32, extra: Vec<(&'static str, String)>, body: Vec<u8>) -> LocalResponse {
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("cache-control", "no-store".to_string()),
    ];
    headers.extend(extra);
    LocalResponse { status, headers, body }
}

/// `Bearer` challenge attributes; every value is filter-controlled text without quotes.
fn challenge(attrs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("Bearer {}", parts.join(", "))
}

/// 401 for a request without a bearer token: no `error` attribute (RFC 6750 section 3.1).
pub fn missing_token(config: &FilterConfig) -> LocalResponse {
    let scope = config.required_scopes.join(" ");
    let mut attrs = vec![("resource_metadata", config.metadata_url.as_str())];
    if !scope.is_empty() {
        attrs.push(("scope", scope.as_str()));
    }
    json_response(
        401,
        vec![("www-authenticate", challenge(&attrs))],
        error_body("unauthorized", "bearer token required"),
    )
}

/// 400 for a malformed request (two credentials, an empty token).
pub fn invalid_request(config: &FilterConfig, why: InvalidRequest) -> LocalResponse {
    let description = why.description();
    json_response(
        400,
        vec![(
            "www-authenticate",
            challenge(&[
                ("error", "invalid_request"),
                ("error_description", description),
                ("resource_metadata", &config.metadata_url),
            ]),
        )],
        error_body("invalid_request", description),
    )
}

/// 401 for a token that failed a check.
pub fn invalid_token(config: &FilterConfig, error: TokenError) -> LocalResponse {
    json_response(
        401,
        vec![(
            "www-authenticate",
            challenge(&[
                ("error", "invalid_token"),
                ("error_description", error.description()),
                ("resource_metadata", &config.metadata_url),
            ]),
        )],
        error_body("invalid_token", error.description()),
    )
}

/// 403 for a valid token without the required scopes; `scope` lists all required scopes
/// so that the client can ask for them in one step-up.
pub fn insufficient_scope(config: &FilterConfig) -> LocalResponse {
    let scope = config.required_scopes.join(" ");
    json_response(
        403,
        vec![(
            "www-authenticate",
            challenge(&[
                ("error", "insufficient_scope"),
                ("scope", &scope),
                ("error_description", "insufficient scope"),
                ("resource_metadata", &config.metadata_url),
            ]),
        )],
        error_body("insufficient_scope", "insufficient scope"),
    )
}

/// 404 for a session id bound to another user: as a server answers an unknown session, so the
/// client starts a new one. A JSON-RPC error body (the request's id is not read here).
pub fn session_not_found() -> LocalResponse {
    let body = json!({"jsonrpc": "2.0", "id": null,
                      "error": {"code": -32001, "message": "Session not found"}});
    json_response(404, vec![], body.to_string().into_bytes())
}

/// 503 while no key set could be loaded.
pub fn keys_unavailable(retry_after_s: u64) -> LocalResponse {
    json_response(
        503,
        vec![("retry-after", retry_after_s.clamp(1, 300).to_string())],
        error_body("temporarily_unavailable", "signing keys unavailable"),
    )
}

/// The metadata document, serialized once at configuration time.
pub fn metadata_body(config: &FilterConfig) -> Vec<u8> {
    serde_json::to_vec(&config.resource_metadata).unwrap_or_default()
}

/// The metadata response. For HEAD the body is sent too: Envoy strips it from the reply and
/// keeps `content-type` and `content-length`, which it drops from an empty local reply.
pub fn metadata(body: &[u8]) -> LocalResponse {
    LocalResponse {
        status: 200,
        headers: vec![
            ("content-type", "application/json".to_string()),
            ("cache-control", "public, max-age=3600".to_string()),
            ("access-control-allow-origin", "*".to_string()),
        ],
        body: body.to_vec(),
    }
}

pub fn metadata_method_not_allowed() -> LocalResponse {
    json_response(
        405,
        vec![("allow", "GET, HEAD".to_string()), ("access-control-allow-origin", "*".to_string())],
        error_body("invalid_request", "method not allowed"),
    )
}

/// Every response the filter can send, built once per configuration: refusals are on the hot
/// path of a flood of bad requests, and they never change for a given configuration.
#[derive(Debug)]
pub struct Responses {
    metadata: Rc<LocalResponse>,
    metadata_not_allowed: Rc<LocalResponse>,
    missing_token: Rc<LocalResponse>,
    insufficient_scope: Rc<LocalResponse>,
    /// Indexed by [`InvalidRequest::index`].
    invalid_request: Vec<Rc<LocalResponse>>,
    /// Indexed by [`TokenError::index`].
    invalid_token: Vec<Rc<LocalResponse>>,
}

impl Responses {
    pub fn new(config: &FilterConfig) -> Responses {
        Responses {
            metadata: Rc::new(metadata(&metadata_body(config))),
            metadata_not_allowed: Rc::new(metadata_method_not_allowed()),
            missing_token: Rc::new(missing_token(config)),
            insufficient_scope: Rc::new(insufficient_scope(config)),
            invalid_request: InvalidRequest::ALL
                .iter()
                .map(|why| Rc::new(invalid_request(config, *why)))
                .collect(),
            invalid_token: TokenError::ALL
                .iter()
                .map(|e| Rc::new(invalid_token(config, *e)))
                .collect(),
        }
    }

    pub fn metadata(&self) -> Rc<LocalResponse> {
        Rc::clone(&self.metadata)
    }

    pub fn metadata_not_allowed(&self) -> Rc<LocalResponse> {
        Rc::clone(&self.metadata_not_allowed)
    }

    pub fn missing_token(&self) -> Rc<LocalResponse> {
        Rc::clone(&self.missing_token)
    }

    pub fn insufficient_scope(&self) -> Rc<LocalResponse> {
        Rc::clone(&self.insufficient_scope)
    }

    pub fn invalid_request(&self, config: &FilterConfig, why: InvalidRequest) -> Rc<LocalResponse> {
        self.invalid_request
            .get(why.index())
            .map_or_else(|| Rc::new(invalid_request(config, why)), Rc::clone)
    }

    pub fn invalid_token(&self, config: &FilterConfig, error: TokenError) -> Rc<LocalResponse> {
        self.invalid_token
            .get(error.index())
            .map_or_else(|| Rc::new(invalid_token(config, error)), Rc::clone)
    }
}
