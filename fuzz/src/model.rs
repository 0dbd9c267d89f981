//! An independent statement of the claim checks (the filter's documented policy), to compare
//! `token::validate` against on payloads whose signature is genuine.

use mcp_auth_filter::config::FilterConfig;
use mcp_auth_filter::error::TokenError;
use serde_json::Value;

use crate::MAX_NUMERIC_DATE;

fn numeric_date(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().filter(|t| *t <= MAX_NUMERIC_DATE),
        _ => None,
    }
}

/// What validation must conclude from the payload members (in order, duplicates included)
/// and the header's `typ` (`None` when absent), once header, key and signature have passed.
pub fn claims_verdict(
    members: &[(String, Value)],
    header_typ: Option<&Value>,
    cfg: &FilterConfig,
    now: u64,
) -> Result<u64, TokenError> {
    for (i, (k, _)) in members.iter().enumerate() {
        if members[..i].iter().any(|(earlier, _)| earlier == k) {
            return Err(TokenError::Malformed("payload is not a JSON object"));
        }
    }
    let get = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    if !is_access_token(header_typ, get("typ"), cfg) {
        return Err(TokenError::WrongType);
    }
    match get("iss") {
        Some(Value::String(s)) if *s == cfg.providers[0].issuer => {}
        _ => return Err(TokenError::BadIssuer),
    }
    let accepted = |s: &str| cfg.providers[0].audiences.iter().any(|a| a == s);
    let aud_ok = match get("aud") {
        Some(Value::String(s)) => accepted(s),
        Some(Value::Array(items)) => {
            items.iter().any(|v| matches!(v, Value::String(s) if accepted(s)))
        }
        _ => false,
    };
    if !aud_ok {
        return Err(TokenError::BadAudience);
    }
    let exp = get("exp").and_then(numeric_date).ok_or(TokenError::MissingExp)?;
    // exp + skew cannot overflow: exp <= MAX_NUMERIC_DATE and skew <= 600.
    if exp + cfg.clock_skew_s <= now {
        return Err(TokenError::Expired);
    }
    if let Some(v) = get("nbf") {
        let nbf = numeric_date(v).ok_or(TokenError::Malformed("nbf is not a NumericDate"))?;
        if nbf > now + cfg.clock_skew_s {
            return Err(TokenError::NotYetValid);
        }
    }
    if let Some(v) = get("iat") {
        let iat = numeric_date(v).ok_or(TokenError::Malformed("iat is not a NumericDate"))?;
        if iat > now + cfg.clock_skew_s {
            return Err(TokenError::IssuedInFuture);
        }
    }
    Ok(exp)
}

/// Explicit typing, as documented: a header `typ` is a media type, compared without case and
/// without an `application/` prefix; a payload `typ` is compared exactly; either may be absent
/// unless the configuration requires it.
fn is_access_token(header: Option<&Value>, payload: Option<&Value>, cfg: &FilterConfig) -> bool {
    let types = &cfg.token_types;
    let header_ok = match header {
        None => !types.header_required,
        Some(Value::String(t)) => {
            let lower = t.to_ascii_lowercase();
            let media = lower.strip_prefix("application/").unwrap_or(&lower);
            types.header.iter().any(|accepted| accepted == media)
        }
        Some(_) => false,
    };
    let payload_ok = match payload {
        None => !types.payload_required,
        Some(Value::String(t)) => types.payload.iter().any(|accepted| accepted == t),
        Some(_) => false,
    };
    header_ok && payload_ok
}

/// The errors that come from the payload stage (after the signature verified).
pub fn is_claims_error(e: &TokenError) -> bool {
    matches!(
        e,
        TokenError::WrongType
            | TokenError::BadIssuer
            | TokenError::BadAudience
            | TokenError::MissingExp
            | TokenError::Expired
            | TokenError::NotYetValid
            | TokenError::IssuedInFuture
            | TokenError::Malformed("payload is not a JSON object")
            | TokenError::Malformed("nbf is not a NumericDate")
            | TokenError::Malformed("iat is not a NumericDate")
    )
}

/// Required scopes that the claims do not grant, per the documented rule: `scope` (space
/// separated) and `scp` (array or space separated), exact matches only.
pub fn missing_scopes(claims: &serde_json::Map<String, Value>, required: &[String]) -> Vec<String> {
    let mut granted: Vec<String> = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => {
                granted.extend(s.split(' ').filter(|t| !t.is_empty()).map(str::to_string))
            }
            Some(Value::Array(items)) => {
                granted.extend(items.iter().filter_map(|v| v.as_str().map(str::to_string)))
            }
            _ => {}
        }
    }
    required.iter().filter(|r| !granted.contains(r)).cloned().collect()
}
