//! The `mcp` section of the plugin configuration, and its compilation into an [`McpPolicy`].
//!
//! ```json
//! "mcp": {
//!   "endpoint": "/mcp",
//!   "max_body_bytes": 1048576,
//!   "rules": ["mcp.tool.name == \"echo\" && \"admin\" in jwt.roles"],
//!   "scopes": {
//!     "tools":     {"echo": ["mcp:tools"], "admin_*": ["mcp:admin"]},
//!     "prompts":   {"*": ["mcp:prompts"]},
//!     "resources": {"file:///private/*": ["mcp:private"]}
//!   },
//!   "hide_unscoped": false,
//!   "trust_routing_headers": false
//! }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::policy::{McpPolicy, Rule, ScopePattern, ScopeTable};

/// The default bound on a request body the filter reads (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
/// A ceiling on `max_body_bytes`: the body is buffered in the VM.
pub const MAX_MAX_BODY_BYTES: usize = 64 << 20;
/// Bounds that keep a configuration's cost at request time predictable.
const MAX_RULES: usize = 64;
const MAX_RULE_CHARS: usize = 4096;
const MAX_PATTERNS_PER_KIND: usize = 1024;
const MAX_PATTERN_CHARS: usize = 1024;
const MAX_SCOPES_PER_PATTERN: usize = 32;

/// The section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfigRaw {
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    #[serde(default)]
    pub rules: Vec<String>,
    #[serde(default)]
    pub scopes: ScopesRaw,
    #[serde(default)]
    pub hide_unscoped: bool,
    #[serde(default)]
    pub trust_routing_headers: bool,
}

/// `scopes`: per kind, a glob pattern and the scopes an item matching it needs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopesRaw {
    #[serde(default)]
    pub tools: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub prompts: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub resources: BTreeMap<String, Vec<String>>,
}

/// Reads the section from its JSON value (`deny_unknown_fields` at every level) and
/// compiles it; errors name the offending field.
pub fn compile_value(value: Value, default_endpoint: &str) -> Result<McpPolicy, String> {
    let raw: McpConfigRaw =
        serde_path_to_error::deserialize(value).map_err(|e| match e.path().to_string() {
            p if p == "." || p.is_empty() => format!("mcp: {}", e.inner()),
            p => format!("mcp.{p}: {}", e.inner()),
        })?;
    compile(raw, default_endpoint)
}

/// Compiles the section: CEL rules parsed once, globs and scope names checked.
/// `default_endpoint` is the path of `resource_metadata.resource`.
pub fn compile(raw: McpConfigRaw, default_endpoint: &str) -> Result<McpPolicy, String> {
    let endpoint = raw.endpoint.unwrap_or_else(|| default_endpoint.to_string());
    if !endpoint.starts_with('/') || endpoint.bytes().any(|b| b <= b' ' || b == b'?' || b == 0x7f) {
        return Err("mcp.endpoint: must be an absolute path without a query or spaces".into());
    }
    let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes == 0 || max_body_bytes > MAX_MAX_BODY_BYTES {
        return Err(format!("mcp.max_body_bytes: must be between 1 and {MAX_MAX_BODY_BYTES}"));
    }
    if raw.rules.len() > MAX_RULES {
        return Err(format!("mcp.rules: at most {MAX_RULES} rules"));
    }
    let mut rules = Vec::with_capacity(raw.rules.len());
    for (i, source) in raw.rules.iter().enumerate() {
        if source.len() > MAX_RULE_CHARS {
            return Err(format!("mcp.rules[{i}]: longer than {MAX_RULE_CHARS} bytes"));
        }
        rules.push(Rule::compile(source).map_err(|why| format!("mcp.rules[{i}]: {why}"))?);
    }
    let scopes = ScopeTable {
        tools: patterns("tools", raw.scopes.tools)?,
        prompts: patterns("prompts", raw.scopes.prompts)?,
        resources: patterns("resources", raw.scopes.resources)?,
    };
    Ok(McpPolicy::new(
        endpoint,
        max_body_bytes,
        rules,
        scopes,
        raw.hide_unscoped,
        raw.trust_routing_headers,
    ))
}

fn patterns(kind: &str, table: BTreeMap<String, Vec<String>>) -> Result<Vec<ScopePattern>, String> {
    if table.len() > MAX_PATTERNS_PER_KIND {
        return Err(format!("mcp.scopes.{kind}: at most {MAX_PATTERNS_PER_KIND} patterns"));
    }
    let mut out = Vec::with_capacity(table.len());
    for (glob, scopes) in table {
        let field = format!("mcp.scopes.{kind}[{glob:?}]");
        if glob.is_empty() || glob.len() > MAX_PATTERN_CHARS {
            return Err(format!("{field}: a pattern is 1 to {MAX_PATTERN_CHARS} bytes"));
        }
        if glob.chars().any(char::is_control) {
            return Err(format!("{field}: control characters are not allowed in a pattern"));
        }
        if glob.contains("**") {
            return Err(format!("{field}: `**` means nothing more than `*`; write one star"));
        }
        if scopes.is_empty() {
            return Err(format!("{field}: list at least one scope (or remove the pattern)"));
        }
        if scopes.len() > MAX_SCOPES_PER_PATTERN {
            return Err(format!("{field}: at most {MAX_SCOPES_PER_PATTERN} scopes"));
        }
        let mut checked: Vec<String> = Vec::with_capacity(scopes.len());
        for scope in scopes {
            if !is_scope_token(&scope) {
                return Err(format!(
                    "{field}: {scope:?} is not a scope token (printable ASCII, no spaces or quotes)"
                ));
            }
            if !checked.contains(&scope) {
                checked.push(scope);
            }
        }
        out.push(ScopePattern::new(glob, checked));
    }
    Ok(out)
}

/// RFC 6749 scope-token: printable ASCII without space, `"` or `\`, so it can sit in a
/// quoted-string challenge as-is.
fn is_scope_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile_json(v: Value) -> Result<McpPolicy, String> {
        compile_value(v, "/mcp")
    }

    #[test]
    fn issue_example_compiles_with_defaults() {
        let policy = compile_json(json!({
            "endpoint": "/mcp",
            "max_body_bytes": 1048576,
            "rules": ["mcp.tool.name == \"echo\" && \"admin\" in jwt.roles"],
            "scopes": {
                "tools": {"echo": ["mcp:tools"], "admin_*": ["mcp:admin"]},
                "prompts": {"*": ["mcp:prompts"]},
                "resources": {"file:///private/*": ["mcp:private"]}
            },
            "hide_unscoped": false
        }))
        .unwrap();
        assert_eq!(policy.endpoint(), "/mcp");
        assert_eq!(policy.max_body_bytes(), 1048576);
        assert!(!policy.hide_unscoped());
        assert!(!policy.trust_routing_headers());
        let mut named: Vec<&str> = policy.scopes_named().collect();
        named.sort();
        assert_eq!(named, ["mcp:admin", "mcp:private", "mcp:prompts", "mcp:tools"]);
    }

    #[test]
    fn defaults() {
        let policy = compile_value(json!({}), "/api/mcp").unwrap();
        assert_eq!(policy.endpoint(), "/api/mcp");
        assert_eq!(policy.max_body_bytes(), DEFAULT_MAX_BODY_BYTES);
        assert!(!policy.hide_unscoped());
        assert!(!policy.trust_routing_headers());
        assert_eq!(policy.scopes_named().count(), 0);
    }

    #[test]
    fn scopes_named_once_each() {
        let policy = compile_json(json!({"scopes": {
            "tools": {"a": ["s1", "s2"], "b": ["s1"]},
            "prompts": {"*": ["s2", "s3"]}
        }}))
        .unwrap();
        let named: Vec<&str> = policy.scopes_named().collect();
        assert_eq!(named.len(), 3, "{named:?}");
    }

    #[test]
    fn unknown_fields_refused_at_every_level() {
        let e = compile_json(json!({"rule": []})).unwrap_err();
        assert!(e.contains("rule"), "{e}");
        let e = compile_json(json!({"scopes": {"tool": {}}})).unwrap_err();
        assert!(e.contains("mcp.scopes") && e.contains("tool"), "{e}");
    }

    #[test]
    fn bad_rule_names_index_and_parser_message() {
        let e = compile_json(json!({"rules": ["true", "mcp.tool.name == "]})).unwrap_err();
        assert!(e.starts_with("mcp.rules[1]: "), "{e}");
        assert!(e.len() > "mcp.rules[1]: ".len() + 5, "the parser's message is kept: {e}");
        let e = compile_json(json!({"rules": ["(("]})).unwrap_err();
        assert!(e.starts_with("mcp.rules[0]: "), "{e}");
    }

    #[test]
    fn bad_scopes_and_globs_refused() {
        for bad in [
            json!({"scopes": {"tools": {"echo": []}}}),
            json!({"scopes": {"tools": {"echo": [""]}}}),
            json!({"scopes": {"tools": {"echo": ["a b"]}}}),
            json!({"scopes": {"tools": {"echo": ["a\"b"]}}}),
            json!({"scopes": {"tools": {"echo": ["a\\b"]}}}),
            json!({"scopes": {"tools": {"echo": ["é"]}}}),
            json!({"scopes": {"tools": {"": ["s"]}}}),
            json!({"scopes": {"tools": {"a**": ["s"]}}}),
            json!({"scopes": {"tools": {"a\nb": ["s"]}}}),
            json!({"scopes": {"tools": {"echo": "s"}}}),
            json!({"endpoint": "mcp"}),
            json!({"endpoint": "/mcp?x"}),
            json!({"max_body_bytes": 0}),
            json!({"max_body_bytes": -1}),
            json!({"rules": "true"}),
            json!({"hide_unscoped": "yes"}),
        ] {
            assert!(compile_json(bad.clone()).is_err(), "{bad}");
        }
    }
}
