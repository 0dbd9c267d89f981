//! Plugin configuration: parsed and validated once, in `on_configure`.
//!
//! Every problem names the field it is about, so an operator reading Envoy's log knows what
//! to fix; the glue refuses the filter (returns `false`) rather than running open.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use std::sync::Arc;

use crate::jws::Algorithm;
use crate::mcp::policy::McpPolicy;
use crate::rsa_verify::RsaKeyPolicy;
use crate::sessions::SessionConfig;
use crate::url::HttpUrl;

/// A configuration error, worded for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid mcp_auth configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

fn invalid(field: &str, why: impl fmt::Display) -> ConfigError {
    ConfigError(format!("field `{field}`: {why}"))
}

/// The validated configuration the filter runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterConfig {
    /// The authorization servers whose tokens are accepted, never empty: the top-level
    /// single-provider form is a list of one.
    pub providers: Vec<Provider>,
    pub clock_skew_s: u64,
    pub max_token_bytes: usize,
    pub required_scopes: Vec<String>,
    pub allowed_algorithms: Vec<Algorithm>,
    pub resource_metadata: ResourceMetadata,
    /// Absolute URL of the metadata document, built from `resource` (never from a request).
    pub metadata_url: String,
    /// The request paths the metadata document is served on.
    pub metadata_paths: Vec<String>,
    pub forward_token: bool,
    /// Claim name to lower-case request header name, in a stable order.
    pub claims_to_headers: Vec<(String, String)>,
    pub token_cache_capacity: usize,
    pub token_cache_max_bytes: usize,
    /// Which JWTs count as access tokens.
    pub token_types: TokenTypes,
    /// Sessions bound to their user; `None` when `session_binding.enabled` is false.
    pub session_binding: Option<SessionConfig>,
    /// The MCP endpoint's path: the `mcp` section's endpoint, else the resource's path.
    pub mcp_path: String,
    /// MCP-aware authorization (the `mcp` section), compiled; `None` without the section.
    pub mcp: Option<McpSection>,
}

/// One authorization server whose tokens are accepted. A token is matched to it by its
/// `iss` and checked with its keys and audiences only.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks: JwksConfig,
}

/// The JWT types accepted as access tokens (`token_types`). By default: a header `typ` that
/// is absent, `JWT` or `at+jwt`, and a payload `typ`, when present, of `Bearer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTypes {
    /// Accepted header `typ` values, normalised (see [`TokenTypes::normalise_header`]).
    pub header: Vec<String>,
    /// Whether a token without a header `typ` is refused.
    pub header_required: bool,
    /// Accepted payload `typ` values, compared exactly.
    pub payload: Vec<String>,
    /// Whether a token without a payload `typ` is refused.
    pub payload_required: bool,
}

impl TokenTypes {
    /// A header `typ` is a media type: compared without case and without its optional
    /// `application/` prefix (RFC 7515 4.1.9).
    pub fn normalise_header(typ: &str) -> String {
        let lower = typ.to_ascii_lowercase();
        lower.strip_prefix("application/").map_or(lower.clone(), str::to_string)
    }
}

impl Default for TokenTypes {
    fn default() -> TokenTypes {
        TokenTypes {
            header: vec!["jwt".into(), "at+jwt".into()],
            header_required: false,
            payload: vec!["Bearer".into()],
            payload_required: false,
        }
    }
}

/// The compiled `mcp` policy. Compared by identity: compiled CEL programs have no equality.
#[derive(Debug, Clone)]
pub struct McpSection(pub Arc<McpPolicy>);

impl PartialEq for McpSection {
    fn eq(&self, other: &McpSection) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JwksConfig {
    /// The key of this provider's record in the host's shared data: by cluster, URL and
    /// issuer, so providers (and filters) never share a record.
    pub shared_key: String,
    /// Which RSA keys of a key set are used.
    pub rsa_key_policy: RsaKeyPolicy,
    pub cluster: String,
    /// The configured key-set URL; with discovery, the discovery document's URL instead.
    pub uri: String,
    /// `:authority` and `:path` for the callout, derived from `uri`. With discovery, the
    /// issuer's authority and the openid-configuration path; the key-set path is discovered.
    pub authority: String,
    pub path: String,
    /// Set when `jwks.uri` is absent: the key set's URL comes from the issuer's metadata.
    pub discovery: Option<Discovery>,
    pub timeout_ms: u64,
    pub cache_duration_s: u64,
    pub min_cache_duration_s: u64,
    pub max_cache_duration_s: u64,
    pub min_refetch_interval_s: u64,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    pub max_body_bytes: usize,
}

impl JwksConfig {
    /// How long one whole fetch may take: with discovery, up to three callouts in a row
    /// (openid-configuration, the RFC 8414 form after a 404, the key set).
    pub fn fetch_budget_ms(&self) -> u64 {
        let callouts = if self.discovery.is_some() { 3 } else { 1 };
        self.timeout_ms.saturating_mul(callouts)
    }
}

/// Where the issuer's metadata is looked up, in order: OpenID Connect Discovery's
/// `<issuer>/.well-known/openid-configuration`, then (after a 404) RFC 8414's
/// `/.well-known/oauth-authorization-server<issuer path>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// The configured issuer, which the document's `issuer` must equal exactly.
    pub issuer: String,
    /// The issuer's scheme and authority: a discovered `jwks_uri` must share them, because
    /// the callout goes through `jwks.cluster`, which points at the issuer's host.
    pub scheme: String,
    pub authority: String,
    pub openid_path: String,
    pub oauth_path: String,
}

/// RFC 9728 Protected Resource Metadata, as configured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResourceMetadata {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    pub bearer_methods_supported: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// The single-provider form: `issuer`, `audiences` and `jwks` or `discovery`.
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    audiences: Option<Vec<String>>,
    #[serde(default)]
    jwks: Option<RawJwks>,
    #[serde(default)]
    discovery: Option<RawJwks>,
    /// The several-provider form, instead of the four above.
    #[serde(default)]
    providers: Option<Vec<RawProvider>>,
    #[serde(default = "default_clock_skew")]
    clock_skew_s: u64,
    #[serde(default = "default_max_token_bytes")]
    max_token_bytes: usize,
    #[serde(default)]
    required_scopes: Vec<String>,
    #[serde(default)]
    allowed_algorithms: Option<Vec<String>>,
    resource_metadata: RawMetadata,
    #[serde(default)]
    forward_token: bool,
    #[serde(default)]
    claims_to_headers: BTreeMap<String, String>,
    #[serde(default)]
    token_cache: Option<RawTokenCache>,
    #[serde(default)]
    token_types: Option<RawTokenTypes>,
    #[serde(default)]
    session_binding: Option<RawSessionBinding>,
    #[serde(default)]
    mcp: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    issuer: String,
    audiences: Vec<String>,
    #[serde(default)]
    jwks: Option<RawJwks>,
    /// `jwks` without `uri`, spelt as what it does.
    #[serde(default)]
    discovery: Option<RawJwks>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSessionBinding {
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default = "default_max_sessions")]
    max_sessions: u64,
    #[serde(default = "default_session_idle_timeout")]
    idle_timeout_s: u64,
}

fn default_true() -> bool {
    true
}
fn default_max_sessions() -> u64 {
    DEFAULT_MAX_SESSIONS
}
fn default_session_idle_timeout() -> u64 {
    DEFAULT_SESSION_IDLE_TIMEOUT_S
}

pub const DEFAULT_MAX_SESSIONS: u64 = 16_384;
pub const DEFAULT_SESSION_IDLE_TIMEOUT_S: u64 = 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokenTypes {
    #[serde(default)]
    header: Option<Vec<String>>,
    #[serde(default)]
    header_required: bool,
    #[serde(default)]
    payload: Option<Vec<String>>,
    #[serde(default)]
    payload_required: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwks {
    cluster: String,
    /// Absent: discovered from the issuer's metadata.
    #[serde(default)]
    uri: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_cache_duration")]
    cache_duration_s: u64,
    #[serde(default = "default_min_cache_duration")]
    min_cache_duration_s: u64,
    #[serde(default = "default_max_cache_duration")]
    max_cache_duration_s: u64,
    #[serde(default = "default_min_refetch_interval")]
    min_refetch_interval_s: u64,
    #[serde(default = "default_retry_initial_ms")]
    retry_initial_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    retry_max_ms: u64,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: usize,
    #[serde(default)]
    rsa_key_policy: Option<RawRsaKeyPolicy>,
}

/// `jwks.rsa_key_policy`: which RSA keys of a key set are used (default 2048 to 4096 bits,
/// e = 65537); the rest are skipped, logged and counted when the set loads.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRsaKeyPolicy {
    #[serde(default)]
    min_bits: Option<usize>,
    #[serde(default)]
    max_bits: Option<usize>,
    #[serde(default)]
    allow_any_exponent: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetadata {
    resource: String,
    /// Optional: every provider's issuer is added to it.
    #[serde(default)]
    authorization_servers: Option<Vec<String>>,
    #[serde(default)]
    scopes_supported: Option<Vec<String>>,
    #[serde(default)]
    bearer_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    resource_name: Option<String>,
    #[serde(default)]
    resource_documentation: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokenCache {
    #[serde(default = "default_token_cache_capacity")]
    capacity: usize,
    #[serde(default = "default_token_cache_max_bytes")]
    max_bytes: usize,
}

// Defaults, named once: the serde defaults, the reference configuration and the docs use these.
pub const DEFAULT_CLOCK_SKEW_S: u64 = 60;
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8192;
pub const DEFAULT_JWKS_TIMEOUT_MS: u64 = 5000;
pub const DEFAULT_JWKS_CACHE_DURATION_S: u64 = 300;
pub const DEFAULT_JWKS_MIN_CACHE_DURATION_S: u64 = 30;
pub const DEFAULT_JWKS_MAX_CACHE_DURATION_S: u64 = 86_400;
pub const DEFAULT_JWKS_MIN_REFETCH_INTERVAL_S: u64 = 30;
pub const DEFAULT_JWKS_RETRY_INITIAL_MS: u64 = 1000;
pub const DEFAULT_JWKS_RETRY_MAX_MS: u64 = 60_000;
pub const DEFAULT_JWKS_MAX_BODY_BYTES: usize = 256 * 1024;
pub const DEFAULT_TOKEN_CACHE_CAPACITY: usize = 4096;
pub const DEFAULT_TOKEN_CACHE_MAX_BYTES: usize = 8 * 1024 * 1024;
pub const MAX_CLOCK_SKEW_S: u64 = 600;
pub const MIN_TOKEN_BYTES: usize = 256;
pub const MAX_TOKEN_BYTES: usize = 65_536;

fn default_clock_skew() -> u64 {
    DEFAULT_CLOCK_SKEW_S
}
fn default_max_token_bytes() -> usize {
    DEFAULT_MAX_TOKEN_BYTES
}
fn default_timeout_ms() -> u64 {
    DEFAULT_JWKS_TIMEOUT_MS
}
fn default_cache_duration() -> u64 {
    DEFAULT_JWKS_CACHE_DURATION_S
}
fn default_min_cache_duration() -> u64 {
    DEFAULT_JWKS_MIN_CACHE_DURATION_S
}
fn default_max_cache_duration() -> u64 {
    DEFAULT_JWKS_MAX_CACHE_DURATION_S
}
fn default_min_refetch_interval() -> u64 {
    DEFAULT_JWKS_MIN_REFETCH_INTERVAL_S
}
fn default_retry_initial_ms() -> u64 {
    DEFAULT_JWKS_RETRY_INITIAL_MS
}
fn default_retry_max_ms() -> u64 {
    DEFAULT_JWKS_RETRY_MAX_MS
}
fn default_max_body_bytes() -> usize {
    DEFAULT_JWKS_MAX_BODY_BYTES
}
fn default_token_cache_capacity() -> usize {
    DEFAULT_TOKEN_CACHE_CAPACITY
}
fn default_token_cache_max_bytes() -> usize {
    DEFAULT_TOKEN_CACHE_MAX_BYTES
}

/// Upper bound for any configured duration: a typo of many zeros should not silently mean "never".
const MAX_SECONDS: u64 = 7 * 86_400;

impl FilterConfig {
    /// Whether `path` (query ignored) is one the metadata document is served on.
    pub fn is_metadata_path(&self, path: &str) -> bool {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        self.metadata_paths.iter().any(|p| p == path)
    }

    /// Parses and validates the plugin configuration bytes.
    pub fn parse(bytes: &[u8]) -> Result<FilterConfig, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError("no configuration given (expected a JSON object)".into()));
        }
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path.is_empty() {
                ConfigError(inner.to_string())
            } else {
                invalid(&path, inner)
            }
        })?;
        Self::validate(raw)
    }

    /// Checks each section on its own; every error names its field.
    fn validate(mut raw: RawConfig) -> Result<FilterConfig, ConfigError> {
        validate_token_checks(&raw)?;
        let providers = validate_providers(&mut raw)?;
        let allowed_algorithms = validate_algorithms(raw.allowed_algorithms)?;
        let resource_path = HttpUrl::parse(&raw.resource_metadata.resource)
            .map(|url| url.path_and_query)
            .unwrap_or_default();
        let (mut resource_metadata, metadata_url, metadata_paths) =
            validate_metadata(raw.resource_metadata, &providers)?;
        let mcp = validate_mcp(raw.mcp, &resource_path, &mut resource_metadata)?;
        let token_types = validate_token_types(raw.token_types)?;
        let session_binding = validate_session_binding(raw.session_binding)?;
        let claims_to_headers = validate_claims_to_headers(raw.claims_to_headers)?;
        let (token_cache_capacity, token_cache_max_bytes) = validate_token_cache(raw.token_cache)?;
        Ok(FilterConfig {
            providers,
            clock_skew_s: raw.clock_skew_s,
            max_token_bytes: raw.max_token_bytes,
            required_scopes: raw.required_scopes,
            allowed_algorithms,
            resource_metadata,
            metadata_url,
            metadata_paths,
            forward_token: raw.forward_token,
            claims_to_headers,
            token_cache_capacity,
            token_cache_max_bytes,
            token_types,
            session_binding,
            mcp_path: mcp.as_ref().map_or_else(
                || if resource_path.is_empty() { "/".to_string() } else { resource_path.clone() },
                |m| m.0.endpoint().to_string(),
            ),
            mcp,
        })
    }

    /// The index of the provider whose issuer is exactly `iss`.
    pub fn provider_for(&self, iss: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.issuer == iss)
    }

    /// Whether `path` (query ignored) is the MCP endpoint the `mcp` policy applies to.
    /// Spellings a server may route to the endpoint count as the endpoint (see
    /// [`same_path`]): `/%6Dcp`, `//mcp` and `/mcp/` must not skip the policy.
    pub fn mcp_policy_for(&self, path: &str) -> Option<&McpPolicy> {
        let policy = &self.mcp.as_ref()?.0;
        let path = path.split(['?', '#']).next().unwrap_or_default();
        (path == policy.endpoint() || same_path(path, policy.endpoint())).then_some(&**policy)
    }
}

/// Whether two paths name the same resource to a lenient server: percent-escapes decoded
/// (Starlette routes on the decoded path), runs of `/` merged, a trailing `/` ignored,
/// ASCII case ignored. Judging a path the server would 404 costs little; skipping one it
/// serves as the endpoint lets a body through unjudged.
fn same_path(path: &str, endpoint: &str) -> bool {
    fn canonical(path: &str) -> Vec<u8> {
        let bytes = path.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(value) if b == b'%' => {
                    decoded.push(value);
                    i += 3;
                }
                _ => {
                    decoded.push(b);
                    i += 1;
                }
            }
        }
        let mut out: Vec<u8> = Vec::with_capacity(decoded.len());
        for b in decoded {
            if !(b == b'/' && out.last() == Some(&b'/')) {
                out.push(b.to_ascii_lowercase());
            }
        }
        while out.len() > 1 && out.last() == Some(&b'/') {
            out.pop();
        }
        out
    }
    canonical(path) == canonical(endpoint)
}

/// `session_binding`: on unless disabled; bounded table, idle expiry.
fn validate_session_binding(
    raw: Option<RawSessionBinding>,
) -> Result<Option<SessionConfig>, ConfigError> {
    let raw = raw.unwrap_or(RawSessionBinding {
        enabled: true,
        max_sessions: DEFAULT_MAX_SESSIONS,
        idle_timeout_s: DEFAULT_SESSION_IDLE_TIMEOUT_S,
    });
    if !raw.enabled {
        return Ok(None);
    }
    if !(1..=1_000_000).contains(&raw.max_sessions) {
        return Err(invalid("session_binding.max_sessions", "must be between 1 and 1000000"));
    }
    if !(1..=MAX_SECONDS).contains(&raw.idle_timeout_s) {
        return Err(invalid(
            "session_binding.idle_timeout_s",
            format!("must be between 1 and {MAX_SECONDS}"),
        ));
    }
    Ok(Some(SessionConfig {
        max_sessions: raw.max_sessions,
        idle_timeout_ms: raw.idle_timeout_s * 1000,
    }))
}

/// `token_types`: the accepted header and payload `typ` values; a list given replaces the
/// default one, and must not be empty.
fn validate_token_types(raw: Option<RawTokenTypes>) -> Result<TokenTypes, ConfigError> {
    let defaults = TokenTypes::default();
    let Some(raw) = raw else { return Ok(defaults) };
    let list = |field: &str, values: Option<Vec<String>>, default: Vec<String>| match values {
        None => Ok(default),
        Some(values) if values.is_empty() => Err(invalid(field, "must not be empty")),
        Some(values) => {
            for (i, v) in values.iter().enumerate() {
                non_empty(&format!("{field}[{i}]"), v)?;
            }
            Ok(values)
        }
    };
    let header = list("token_types.header", raw.header, defaults.header)?;
    Ok(TokenTypes {
        header: header.iter().map(|t| TokenTypes::normalise_header(t)).collect(),
        header_required: raw.header_required,
        payload: list("token_types.payload", raw.payload, defaults.payload)?,
        payload_required: raw.payload_required,
    })
}

/// The `mcp` section: compiled, its endpoint defaulting to the resource's path; every scope it
/// names is added to the metadata's `scopes_supported`, so a client can learn and request it.
fn validate_mcp(
    raw: Option<serde_json::Value>,
    resource_path: &str,
    metadata: &mut ResourceMetadata,
) -> Result<Option<McpSection>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let default_endpoint = if resource_path.is_empty() { "/" } else { resource_path };
    let policy = crate::mcp::config::compile_value(raw, default_endpoint).map_err(ConfigError)?;
    let supported = metadata.scopes_supported.get_or_insert_with(Vec::new);
    for scope in policy.scopes_named() {
        if !supported.iter().any(|s| s == scope) {
            supported.push(scope.to_string());
        }
    }
    Ok(Some(McpSection(Arc::new(policy))))
}

/// The providers: `providers`, or the top-level single-provider form as a list of one.
fn validate_providers(raw: &mut RawConfig) -> Result<Vec<Provider>, ConfigError> {
    let Some(list) = raw.providers.take() else {
        let issuer = raw.issuer.take().ok_or_else(|| {
            invalid("issuer", "missing (give `issuer`, `audiences` and `jwks`, or `providers`)")
        })?;
        let audiences = raw.audiences.take().ok_or_else(|| {
            invalid("audiences", "missing (give `issuer`, `audiences` and `jwks`, or `providers`)")
        })?;
        let provider =
            validate_provider("", issuer, audiences, raw.jwks.take(), raw.discovery.take())?;
        return Ok(vec![provider]);
    };
    let single_form = [
        ("issuer", raw.issuer.is_some()),
        ("audiences", raw.audiences.is_some()),
        ("jwks", raw.jwks.is_some()),
        ("discovery", raw.discovery.is_some()),
    ];
    if let Some((field, _)) = single_form.iter().find(|(_, given)| *given) {
        return Err(invalid(
            field,
            "not allowed beside `providers` (give it inside each provider instead)",
        ));
    }
    if list.is_empty() {
        return Err(invalid("providers", "must list at least one provider"));
    }
    let mut providers: Vec<Provider> = Vec::with_capacity(list.len());
    for (i, p) in list.into_iter().enumerate() {
        let prefix = format!("providers[{i}].");
        let provider = validate_provider(&prefix, p.issuer, p.audiences, p.jwks, p.discovery)?;
        if let Some(first) = providers.iter().position(|q| q.issuer == provider.issuer) {
            return Err(invalid(
                &format!("{prefix}issuer"),
                format!("the same issuer as providers[{first}]: a token must name one provider"),
            ));
        }
        providers.push(provider);
    }
    Ok(providers)
}

/// One provider; `prefix` is its path in the configuration (`""` or `providers[1].`).
fn validate_provider(
    prefix: &str,
    issuer: String,
    audiences: Vec<String>,
    jwks: Option<RawJwks>,
    discovery: Option<RawJwks>,
) -> Result<Provider, ConfigError> {
    non_empty(&format!("{prefix}issuer"), &issuer)?;
    if audiences.is_empty() {
        return Err(invalid(&format!("{prefix}audiences"), "must list at least one audience"));
    }
    for (i, aud) in audiences.iter().enumerate() {
        non_empty(&format!("{prefix}audiences[{i}]"), aud)?;
    }
    let jwks = match (jwks, discovery) {
        (Some(jwks), None) => validate_jwks(jwks, &issuer, prefix, "jwks")?,
        (None, Some(discovery)) if discovery.uri.is_some() => {
            return Err(invalid(
                &format!("{prefix}discovery.uri"),
                "not allowed: discovery finds the key set through the issuer's metadata                  (give `jwks` with `uri` instead)",
            ))
        }
        (None, Some(discovery)) => validate_jwks(discovery, &issuer, prefix, "discovery")?,
        (Some(_), Some(_)) => {
            return Err(invalid(
                &format!("{prefix}discovery"),
                "give `jwks` or `discovery`, not both",
            ))
        }
        (None, None) => {
            return Err(invalid(
                &format!("{prefix}jwks"),
                "missing (give `jwks`, with or without `uri`, or `discovery`)",
            ))
        }
    };
    Ok(Provider { issuer, audiences, jwks })
}

/// The required scopes, skew and token size.
fn validate_token_checks(raw: &RawConfig) -> Result<(), ConfigError> {
    for (i, scope) in raw.required_scopes.iter().enumerate() {
        scope_token(&format!("required_scopes[{i}]"), scope)?;
    }
    if raw.clock_skew_s > MAX_CLOCK_SKEW_S {
        return Err(invalid("clock_skew_s", format!("must be at most {MAX_CLOCK_SKEW_S}")));
    }
    if !(MIN_TOKEN_BYTES..=MAX_TOKEN_BYTES).contains(&raw.max_token_bytes) {
        return Err(invalid(
            "max_token_bytes",
            format!("must be between {MIN_TOKEN_BYTES} and {MAX_TOKEN_BYTES}"),
        ));
    }
    Ok(())
}

/// `allowed_algorithms`: every algorithm when absent, else a non-empty list of known names.
fn validate_algorithms(names: Option<Vec<String>>) -> Result<Vec<Algorithm>, ConfigError> {
    let Some(names) = names else {
        return Ok(Algorithm::ALL.to_vec());
    };
    if names.is_empty() {
        return Err(invalid("allowed_algorithms", "must not be empty"));
    }
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            Algorithm::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
                invalid(
                    &format!("allowed_algorithms[{i}]"),
                    format!("`{name}` is not an accepted algorithm (one of {})", known.join(", ")),
                )
            })
        })
        .collect()
}

/// `claims_to_headers`: claim name to a header name a claim may safely set.
fn validate_claims_to_headers(
    raw: BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut claims_to_headers = Vec::with_capacity(raw.len());
    for (claim, header) in raw {
        let field = format!("claims_to_headers.{claim}");
        non_empty(&field, &claim)?;
        let header = header.to_ascii_lowercase();
        if header.is_empty() || !header.bytes().all(is_header_name_byte) {
            return Err(invalid(&field, "must name a valid HTTP header"));
        }
        // Headers that carry credentials or steer the connection or message framing: a
        // claim must not be able to set them.
        if matches!(
            header.as_str(),
            "authorization"
                | "proxy-authorization"
                | "cookie"
                | "host"
                | "content-length"
                | "transfer-encoding"
                | "te"
                | "connection"
                | "keep-alive"
                | "proxy-connection"
                | "upgrade"
                | "expect"
        ) {
            return Err(invalid(&field, format!("may not set `{header}`")));
        }
        claims_to_headers.push((claim, header));
    }
    Ok(claims_to_headers)
}

/// `token_cache`: (capacity, max_bytes).
fn validate_token_cache(raw: Option<RawTokenCache>) -> Result<(usize, usize), ConfigError> {
    match raw {
        None => Ok((DEFAULT_TOKEN_CACHE_CAPACITY, DEFAULT_TOKEN_CACHE_MAX_BYTES)),
        Some(c) if c.capacity > 1_000_000 => {
            Err(invalid("token_cache.capacity", "must be at most 1000000"))
        }
        Some(c) if c.max_bytes > 1 << 30 => {
            Err(invalid("token_cache.max_bytes", "must be at most 1073741824"))
        }
        Some(c) => Ok((c.capacity, c.max_bytes)),
    }
}

/// A provider's `jwks` (or `discovery`, `section`); `prefix` is the provider's path.
fn validate_jwks(
    raw: RawJwks,
    issuer: &str,
    prefix: &str,
    section: &str,
) -> Result<JwksConfig, ConfigError> {
    let field = |name: &str| format!("{prefix}{section}.{name}");
    non_empty(&field("cluster"), &raw.cluster)?;
    let (uri, url, discovery) = match raw.uri {
        Some(uri) => {
            let url = HttpUrl::parse(&uri).map_err(|why| invalid(&field("uri"), why))?;
            (uri, url, None)
        }
        None => {
            let discovery = discovery_for(issuer, prefix)?;
            let uri =
                format!("{}://{}{}", discovery.scheme, discovery.authority, discovery.openid_path);
            let url =
                HttpUrl::parse(&uri).map_err(|why| invalid(&format!("{prefix}issuer"), why))?;
            (uri, url, Some(discovery))
        }
    };
    let in_range = |field: &str, value: u64, lo: u64, hi: u64| {
        if (lo..=hi).contains(&value) {
            Ok(())
        } else {
            Err(invalid(field, format!("must be between {lo} and {hi}")))
        }
    };
    in_range(&field("timeout_ms"), raw.timeout_ms, 100, 60_000)?;
    in_range(&field("cache_duration_s"), raw.cache_duration_s, 1, MAX_SECONDS)?;
    in_range(&field("min_cache_duration_s"), raw.min_cache_duration_s, 1, MAX_SECONDS)?;
    in_range(&field("max_cache_duration_s"), raw.max_cache_duration_s, 1, MAX_SECONDS)?;
    if raw.min_cache_duration_s > raw.max_cache_duration_s {
        return Err(invalid(
            &field("min_cache_duration_s"),
            format!("must not exceed {}", field("max_cache_duration_s")),
        ));
    }
    in_range(&field("min_refetch_interval_s"), raw.min_refetch_interval_s, 1, MAX_SECONDS)?;
    in_range(&field("retry_initial_ms"), raw.retry_initial_ms, 10, 3_600_000)?;
    in_range(&field("retry_max_ms"), raw.retry_max_ms, 10, 3_600_000)?;
    if raw.retry_initial_ms > raw.retry_max_ms {
        return Err(invalid(
            &field("retry_initial_ms"),
            format!("must not exceed {}", field("retry_max_ms")),
        ));
    }
    if !(1024..=16 * 1024 * 1024).contains(&raw.max_body_bytes) {
        return Err(invalid(&field("max_body_bytes"), "must be between 1024 and 16777216"));
    }
    let defaults = RsaKeyPolicy::default();
    let rsa_key_policy = match raw.rsa_key_policy {
        None => defaults,
        Some(p) => RsaKeyPolicy {
            min_bits: p.min_bits.unwrap_or(defaults.min_bits),
            max_bits: p.max_bits.unwrap_or(defaults.max_bits),
            allow_any_exponent: p.allow_any_exponent,
        },
    };
    rsa_key_policy.validate().map_err(|why| invalid(&field("rsa_key_policy"), why))?;
    Ok(JwksConfig {
        shared_key: format!("mcp_auth.jwks.{}.{}.{}", raw.cluster, uri, issuer),
        rsa_key_policy,
        cluster: raw.cluster,
        authority: url.authority.clone(),
        path: url.path_and_query.clone(),
        uri,
        discovery,
        timeout_ms: raw.timeout_ms,
        cache_duration_s: raw.cache_duration_s,
        min_cache_duration_s: raw.min_cache_duration_s,
        max_cache_duration_s: raw.max_cache_duration_s,
        min_refetch_interval_s: raw.min_refetch_interval_s,
        retry_initial_ms: raw.retry_initial_ms,
        retry_max_ms: raw.retry_max_ms,
        max_body_bytes: raw.max_body_bytes,
    })
}

/// The discovery URLs of an issuer given without `jwks.uri`.
fn discovery_for(issuer: &str, prefix: &str) -> Result<Discovery, ConfigError> {
    let why = |why: String| {
        invalid(
            &format!("{prefix}issuer"),
            format!("{why} (needed to discover the key set without jwks.uri)"),
        )
    };
    let url = HttpUrl::parse(issuer).map_err(why)?;
    if url.path_and_query.contains('?') {
        return Err(why("must not contain a query".into()));
    }
    let issuer_path = url.path_and_query.trim_end_matches('/');
    Ok(Discovery {
        issuer: issuer.to_string(),
        openid_path: format!("{issuer_path}/.well-known/openid-configuration"),
        // RFC 8414 section 3.1: the well-known segment goes between the host and the path.
        oauth_path: format!("/.well-known/oauth-authorization-server{issuer_path}"),
        scheme: url.scheme,
        authority: url.authority,
    })
}

fn validate_metadata(
    raw: RawMetadata,
    providers: &[Provider],
) -> Result<(ResourceMetadata, String, Vec<String>), ConfigError> {
    let url =
        HttpUrl::parse(&raw.resource).map_err(|why| invalid("resource_metadata.resource", why))?;
    if url.path_and_query.contains('?') {
        return Err(invalid("resource_metadata.resource", "must not carry a query (RFC 9728)"));
    }
    if raw.authorization_servers.as_ref().is_some_and(Vec::is_empty) {
        return Err(invalid(
            "resource_metadata.authorization_servers",
            "must list at least one authorization server (or be left out: every provider's \
             issuer is listed anyway)",
        ));
    }
    let configured = raw.authorization_servers.unwrap_or_default();
    for (i, server) in configured.iter().enumerate() {
        HttpUrl::parse(server).map_err(|why| {
            invalid(&format!("resource_metadata.authorization_servers[{i}]"), why)
        })?;
    }
    // The configured list first, then every issuer it lacks: a client must be able to find
    // each authorization server whose tokens are accepted.
    let mut authorization_servers: Vec<String> = Vec::with_capacity(configured.len());
    let issuers = providers.iter().map(|p| &p.issuer);
    for server in configured.iter().chain(issuers) {
        if !authorization_servers.contains(server) {
            authorization_servers.push(server.clone());
        }
    }
    if let Some(scopes) = &raw.scopes_supported {
        for (i, scope) in scopes.iter().enumerate() {
            scope_token(&format!("resource_metadata.scopes_supported[{i}]"), scope)?;
        }
    }
    let bearer_methods = raw.bearer_methods_supported.unwrap_or_else(|| vec!["header".to_string()]);
    for (i, method) in bearer_methods.iter().enumerate() {
        if method != "header" {
            return Err(invalid(
                &format!("resource_metadata.bearer_methods_supported[{i}]"),
                "only `header` is supported: tokens are read from the Authorization header alone",
            ));
        }
    }
    if let Some(doc) = &raw.resource_documentation {
        HttpUrl::parse(doc)
            .map_err(|why| invalid("resource_metadata.resource_documentation", why))?;
    }

    // RFC 9728 section 3.1: the well-known segment goes between the host and the path.
    let well_known = "/.well-known/oauth-protected-resource";
    let resource_path = url.path_and_query.trim_end_matches('/');
    let suffixed = format!("{well_known}{resource_path}");
    let metadata_url = format!("{}://{}{}", url.scheme, url.authority, suffixed);
    let mut paths = vec![suffixed];
    if !resource_path.is_empty() {
        paths.push(well_known.to_string());
    }
    let metadata = ResourceMetadata {
        resource: raw.resource,
        authorization_servers,
        scopes_supported: raw.scopes_supported,
        bearer_methods_supported: bearer_methods,
        resource_name: raw.resource_name,
        resource_documentation: raw.resource_documentation,
    };
    Ok((metadata, metadata_url, paths))
}

fn non_empty(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        Err(invalid(field, "must not be empty"))
    } else {
        Ok(())
    }
}

/// RFC 6749 scope-token: printable ASCII without space, `"` or `\`.
fn scope_token(field: &str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(field, "must be a scope token (printable ASCII, no spaces or quotes)"))
    }
}

fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mcp_endpoint_spellings_a_server_may_route_there_are_judged() {
        use super::same_path;
        for same in ["/mcp", "/mcp/", "//mcp", "/%6Dcp", "/%6dcp/", "/MCP", "/m%63p//", "/%2Fmcp"] {
            assert!(same_path(same, "/mcp"), "{same}");
        }
        for other in ["/mcpx", "/mc", "/other", "/mcp/x", "/", "/%6", "/mcp%", "/api/mcp"] {
            assert!(!same_path(other, "/mcp"), "{other}");
        }
        assert!(same_path("/api//mcp/", "/api/mcp"));
    }

    use super::*;
    use serde_json::json;

    pub fn reference() -> serde_json::Value {
        json!({
            "issuer": "http://localhost:8080/realms/my-realm",
            "audiences": ["echo-mcp-server"],
            "jwks": {
                "cluster": "authorization_server",
                "uri": "http://localhost:8080/realms/my-realm/protocol/openid-connect/certs"
            },
            "resource_metadata": {
                "resource": "http://localhost:9000/mcp",
                "authorization_servers": ["http://localhost:8080/realms/my-realm"],
                "scopes_supported": ["mcp:tools"]
            }
        })
    }

    fn parse(v: serde_json::Value) -> Result<FilterConfig, ConfigError> {
        FilterConfig::parse(v.to_string().as_bytes())
    }

    #[test]
    fn reference_config_gets_defaults() {
        let c = parse(reference()).unwrap();
        assert_eq!(c.clock_skew_s, 60);
        assert_eq!(c.max_token_bytes, 8192);
        assert_eq!(c.providers[0].jwks.timeout_ms, 5000);
        assert_eq!(c.providers[0].jwks.cache_duration_s, 300);
        assert_eq!(c.providers[0].jwks.authority, "localhost:8080");
        assert_eq!(c.providers[0].jwks.path, "/realms/my-realm/protocol/openid-connect/certs");
        assert!(!c.forward_token);
        assert!(c.required_scopes.is_empty());
        assert_eq!(c.allowed_algorithms.len(), Algorithm::ALL.len());
        assert_eq!(
            c.metadata_url,
            "http://localhost:9000/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            c.metadata_paths,
            vec![
                "/.well-known/oauth-protected-resource/mcp".to_string(),
                "/.well-known/oauth-protected-resource".to_string()
            ]
        );
        assert_eq!(c.resource_metadata.bearer_methods_supported, vec!["header"]);
    }

    #[test]
    fn without_jwks_uri_the_key_set_is_discovered_from_the_issuer() {
        let mut v = reference();
        v["jwks"].as_object_mut().unwrap().remove("uri");
        let c = FilterConfig::parse(v.to_string().as_bytes()).unwrap();
        let d = c.providers[0].jwks.discovery.as_ref().unwrap();
        assert_eq!(d.issuer, "http://localhost:8080/realms/my-realm");
        assert_eq!(d.openid_path, "/realms/my-realm/.well-known/openid-configuration");
        assert_eq!(d.oauth_path, "/.well-known/oauth-authorization-server/realms/my-realm");
        assert_eq!(
            (c.providers[0].jwks.authority.as_str(), c.providers[0].jwks.path.as_str()),
            ("localhost:8080", d.openid_path.as_str())
        );
        assert_eq!(c.providers[0].jwks.fetch_budget_ms(), 3 * c.providers[0].jwks.timeout_ms);
        // An issuer at the root: both forms without a path.
        v["issuer"] = json!("https://idp.example/");
        let c = FilterConfig::parse(v.to_string().as_bytes()).unwrap();
        let d = c.providers[0].jwks.discovery.clone().unwrap();
        assert_eq!(d.openid_path, "/.well-known/openid-configuration");
        assert_eq!(d.oauth_path, "/.well-known/oauth-authorization-server");
        // An issuer that is no URL cannot be discovered.
        v["issuer"] = json!("my-realm");
        let e = FilterConfig::parse(v.to_string().as_bytes()).unwrap_err().to_string();
        assert!(e.contains("issuer") && e.contains("jwks.uri"), "{e}");
        // With jwks.uri, no discovery.
        let c = FilterConfig::parse(reference().to_string().as_bytes()).unwrap();
        assert!(c.providers[0].jwks.discovery.is_none());
        assert_eq!(c.providers[0].jwks.fetch_budget_ms(), c.providers[0].jwks.timeout_ms);
    }

    #[test]
    fn resource_at_root_has_one_metadata_path() {
        let mut v = reference();
        v["resource_metadata"]["resource"] = json!("https://mcp.example.com");
        let c = parse(v).unwrap();
        assert_eq!(c.metadata_url, "https://mcp.example.com/.well-known/oauth-protected-resource");
        assert_eq!(c.metadata_paths, vec!["/.well-known/oauth-protected-resource"]);
    }

    fn error_of(v: serde_json::Value) -> String {
        parse(v).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_is_named() {
        let mut v = reference();
        v["audience"] = json!("x");
        let e = error_of(v);
        assert!(e.contains("audience"), "{e}");
        let mut v = reference();
        v["jwks"]["cache_seconds"] = json!(5);
        let e = error_of(v);
        assert!(e.contains("jwks.cache_seconds"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let mut v = reference();
        v["jwks"]["timeout_ms"] = json!("5000");
        let e = error_of(v);
        assert!(e.contains("jwks.timeout_ms"), "{e}");
        let mut v = reference();
        v["audiences"] = json!("echo-mcp-server");
        let e = error_of(v);
        assert!(e.contains("audiences"), "{e}");
        let mut v = reference();
        v["forward_token"] = json!("yes");
        assert!(error_of(v).contains("forward_token"));
    }

    #[test]
    fn missing_required_fields_are_named() {
        for field in ["issuer", "audiences", "jwks", "resource_metadata"] {
            let mut v = reference();
            v.as_object_mut().unwrap().remove(field);
            let e = error_of(v);
            assert!(e.contains(field), "{field}: {e}");
        }
        let mut v = reference();
        v["jwks"].as_object_mut().unwrap().remove("cluster");
        assert!(error_of(v).contains("cluster"));
    }

    #[test]
    fn semantic_checks() {
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("audiences", json!({"audiences": []})),
            ("issuer", json!({"issuer": " "})),
            ("jwks.uri", json!({"jwks": {"cluster": "c", "uri": "not a url"}})),
            ("jwks.uri", json!({"jwks": {"cluster": "c", "uri": "ftp://x/y"}})),
            (
                "jwks.timeout_ms",
                json!({"jwks": {"cluster": "c", "uri": "http://a/b", "timeout_ms": 0}}),
            ),
            ("allowed_algorithms[1]", json!({"allowed_algorithms": ["RS256", "HS256"]})),
            ("allowed_algorithms[0]", json!({"allowed_algorithms": ["none"]})),
            ("required_scopes[0]", json!({"required_scopes": ["a b"]})),
            ("claims_to_headers.sub", json!({"claims_to_headers": {"sub": "bad header"}})),
            ("claims_to_headers.sub", json!({"claims_to_headers": {"sub": "Authorization"}})),
            ("claims_to_headers.sub", json!({"claims_to_headers": {"sub": "Cookie"}})),
            ("claims_to_headers.sub", json!({"claims_to_headers": {"sub": "te"}})),
            ("claims_to_headers.sub", json!({"claims_to_headers": {"sub": ":path"}})),
            ("max_token_bytes", json!({"max_token_bytes": 10})),
        ];
        for (field, patch) in cases {
            let mut v = reference();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            let e = error_of(v);
            assert!(e.contains(field), "expected {field} in {e}");
        }
        let mut v = reference();
        v["resource_metadata"]["bearer_methods_supported"] = json!(["query"]);
        assert!(error_of(v).contains("bearer_methods_supported[0]"));
        let mut v = reference();
        v["resource_metadata"]["authorization_servers"] = json!([]);
        assert!(error_of(v).contains("authorization_servers"));
    }

    #[test]
    fn empty_or_non_object_config_is_refused() {
        assert!(FilterConfig::parse(b"").is_err());
        assert!(FilterConfig::parse(b"  ").is_err());
        assert!(FilterConfig::parse(b"[]").is_err());
        assert!(FilterConfig::parse(b"{").is_err());
    }

    #[test]
    fn claims_to_headers_are_lowercased() {
        let mut v = reference();
        v["claims_to_headers"] = json!({"sub": "X-MCP-Subject", "azp": "x-client"});
        let c = parse(v).unwrap();
        assert_eq!(
            c.claims_to_headers,
            vec![
                ("azp".to_string(), "x-client".to_string()),
                ("sub".to_string(), "x-mcp-subject".to_string())
            ]
        );
    }

    #[test]
    fn rsa_key_policy_defaults_and_widens() {
        let c = parse(reference()).unwrap();
        assert_eq!(c.providers[0].jwks.rsa_key_policy, RsaKeyPolicy::default());
        let mut v = reference();
        v["jwks"]["rsa_key_policy"] = json!({"max_bits": 8192, "allow_any_exponent": true});
        let c = parse(v.clone()).unwrap();
        assert_eq!(c.providers[0].jwks.rsa_key_policy.max_bits, 8192);
        assert_eq!(c.providers[0].jwks.rsa_key_policy.min_bits, 2048);
        assert!(c.providers[0].jwks.rsa_key_policy.allow_any_exponent);
        v["jwks"]["rsa_key_policy"] = json!({"min_bits": 4096, "max_bits": 2048});
        assert!(error_of(v.clone()).contains("jwks.rsa_key_policy"), "{}", error_of(v.clone()));
        v["jwks"]["rsa_key_policy"] = json!({"max_bits": 100000});
        assert!(error_of(v).contains("jwks.rsa_key_policy"));
    }

    fn two_providers() -> serde_json::Value {
        json!({
            "providers": [
                {"issuer": "http://localhost:8080/realms/a", "audiences": ["api"],
                 "discovery": {"cluster": "a", "timeout_ms": 1000}},
                {"issuer": "http://localhost:8081/realms/b", "audiences": ["api", "b"],
                 "jwks": {"cluster": "b", "uri": "http://localhost:8081/certs"}}
            ],
            "resource_metadata": {"resource": "http://localhost:9000/mcp"}
        })
    }

    #[test]
    fn providers_each_have_their_keys_and_all_are_listed_in_the_metadata() {
        let c = parse(two_providers()).unwrap();
        assert_eq!(c.providers.len(), 2);
        let (a, b) = (&c.providers[0], &c.providers[1]);
        assert_eq!(a.jwks.discovery.as_ref().unwrap().issuer, "http://localhost:8080/realms/a");
        assert_eq!(
            (a.jwks.timeout_ms, a.jwks.path.as_str()),
            (1000, "/realms/a/.well-known/openid-configuration")
        );
        assert!(b.jwks.discovery.is_none());
        assert_eq!(b.audiences, ["api", "b"]);
        assert_ne!(a.jwks.shared_key, b.jwks.shared_key);
        assert_eq!(c.provider_for("http://localhost:8081/realms/b"), Some(1));
        assert_eq!(c.provider_for("http://localhost:8081/realms/b/"), None);
        assert_eq!(
            c.resource_metadata.authorization_servers,
            ["http://localhost:8080/realms/a", "http://localhost:8081/realms/b"]
        );
        // A configured list comes first; the issuers it lacks follow, once each.
        let mut v = two_providers();
        v["resource_metadata"]["authorization_servers"] = json!([
            "http://localhost:8081/realms/b",
            "https://other.example",
            "https://other.example"
        ]);
        let c = parse(v).unwrap();
        assert_eq!(
            c.resource_metadata.authorization_servers,
            [
                "http://localhost:8081/realms/b",
                "https://other.example",
                "http://localhost:8080/realms/a"
            ]
        );
    }

    #[test]
    fn the_single_provider_form_is_a_list_of_one() {
        let c = parse(reference()).unwrap();
        assert_eq!(c.providers.len(), 1);
        assert_eq!(c.providers[0].issuer, "http://localhost:8080/realms/my-realm");
        assert_eq!(c.providers[0].audiences, ["echo-mcp-server"]);
        // `discovery` at top level is `jwks` without `uri`.
        let mut v = reference();
        v.as_object_mut().unwrap().remove("jwks");
        v["discovery"] = json!({"cluster": "authorization_server"});
        let by_discovery = parse(v.clone()).unwrap();
        let mut w = reference();
        w["jwks"].as_object_mut().unwrap().remove("uri");
        assert_eq!(by_discovery.providers, parse(w).unwrap().providers);
        // authorization_servers may be left out: the issuer is listed.
        v["resource_metadata"].as_object_mut().unwrap().remove("authorization_servers");
        let c = parse(v).unwrap();
        assert_eq!(
            c.resource_metadata.authorization_servers,
            ["http://localhost:8080/realms/my-realm"]
        );
    }

    #[test]
    fn provider_errors_name_their_path() {
        type Patch = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Patch)> = vec![
            (
                "field `issuer`: not allowed beside `providers`",
                Box::new(|v| v["issuer"] = json!("x")),
            ),
            (
                "field `jwks`: not allowed beside `providers`",
                Box::new(|v| v["jwks"] = json!({"cluster": "c"})),
            ),
            ("field `providers`: must list at least one", Box::new(|v| v["providers"] = json!([]))),
            (
                "field `providers[1].issuer`: the same issuer as providers[0]",
                Box::new(|v| v["providers"][1]["issuer"] = v["providers"][0]["issuer"].clone()),
            ),
            (
                "field `providers[1].discovery`: give `jwks` or `discovery`, not both",
                Box::new(|v| v["providers"][1]["discovery"] = json!({"cluster": "b"})),
            ),
            (
                "field `providers[0].discovery.uri`: not allowed",
                Box::new(|v| {
                    v["providers"][0]["discovery"]["uri"] = json!("http://localhost:8080/certs")
                }),
            ),
            (
                "field `providers[1].jwks`: missing",
                Box::new(|v| {
                    v["providers"][1].as_object_mut().unwrap().remove("jwks");
                }),
            ),
            (
                "field `providers[0].discovery.timeout_ms`: must be between",
                Box::new(|v| v["providers"][0]["discovery"]["timeout_ms"] = json!(1)),
            ),
            (
                "providers[1].jwks.timeout_ms",
                Box::new(|v| v["providers"][1]["jwks"]["timeout_ms"] = json!("x")),
            ),
            (
                "providers[1].jwks.cache_seconds",
                Box::new(|v| v["providers"][1]["jwks"]["cache_seconds"] = json!(1)),
            ),
            (
                "field `providers[1].audiences`: must list",
                Box::new(|v| v["providers"][1]["audiences"] = json!([])),
            ),
            (
                "field `providers[0].issuer`",
                Box::new(|v| v["providers"][0]["issuer"] = json!("not a url")),
            ),
            (
                "field `providers[0]`: missing field `issuer`",
                Box::new(|v| {
                    v["providers"][0].as_object_mut().unwrap().remove("issuer");
                }),
            ),
        ];
        for (expected, patch) in cases {
            let mut v = two_providers();
            patch(&mut v);
            let e = error_of(v);
            assert!(e.contains(expected), "expected {expected:?} in {e}");
        }
        // The single form: both key sources, or neither.
        let mut v = reference();
        v["discovery"] = json!({"cluster": "c"});
        assert!(error_of(v).contains("field `discovery`: give `jwks` or `discovery`, not both"));
    }
}
