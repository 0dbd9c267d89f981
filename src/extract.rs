//! Reading the bearer token from the request (RFC 6750 section 2.1). Only the
//! `Authorization` header is a source: a token in the query string or a form body is never
//! looked at, so it cannot authorize a request.

/// What the request's `Authorization` headers hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No `Authorization` header, or one for another scheme (Basic, DPoP, ...).
    Absent,
    Bearer(&'a str),
    /// A malformed request (400 `invalid_request`).
    Invalid(InvalidRequest),
}

/// What makes an `Authorization` header malformed (400 `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidRequest {
    MultipleCredentials,
    EmptyToken,
    MalformedHeader,
}

impl InvalidRequest {
    pub const ALL: [InvalidRequest; 3] = [
        InvalidRequest::MultipleCredentials,
        InvalidRequest::EmptyToken,
        InvalidRequest::MalformedHeader,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The `error_description` a client sees.
    pub fn description(self) -> &'static str {
        match self {
            InvalidRequest::MultipleCredentials => "multiple Authorization headers",
            InvalidRequest::EmptyToken => "empty bearer token",
            InvalidRequest::MalformedHeader => "malformed Authorization header",
        }
    }
}

/// Looks at every `Authorization` value the request carries.
pub fn bearer_token<'a>(values: &[&'a str]) -> Credential<'a> {
    let value = match values {
        [] => return Credential::Absent,
        [one] => one.trim_matches(|c| c == ' ' || c == '\t'),
        _ => return Credential::Invalid(InvalidRequest::MultipleCredentials),
    };
    // Envoy (like other proxies) folds repeated headers into one, comma separated. A comma
    // never occurs in a b64token, so a bearer credential beside anything else is two
    // credentials, whichever comes first (`Basic x,Bearer y` as much as `Bearer x,Bearer y`).
    if value.contains(',') && value.split(',').any(is_bearer_credential) {
        return Credential::Invalid(InvalidRequest::MultipleCredentials);
    }
    let (scheme, rest) = match value.split_once([' ', '\t']) {
        Some((scheme, rest)) => (scheme, rest),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Credential::Absent;
    }
    let token = rest.trim_start_matches([' ', '\t']);
    if token.is_empty() {
        return Credential::Invalid(InvalidRequest::EmptyToken);
    }
    // Byte searches (memchr) rather than a `char` pattern: this runs on every request over
    // a kilobyte of token, and the char-by-char scan cost microseconds inside wasm.
    if token.as_bytes().contains(&b' ') || token.as_bytes().contains(&b'\t') {
        return Credential::Invalid(InvalidRequest::MalformedHeader);
    }
    Credential::Bearer(token)
}

/// The token a single `Authorization` value holds if it is a bearer credential, without the
/// scans [`bearer_token`] makes over the token. Only for looking up a token seen before: a
/// cached token passed [`bearer_token`] when it was first seen, and any value whose candidate
/// equals it passes again (the scheme, the whitespace and the token hold no comma and no
/// inner whitespace), so a hit may skip those scans. Anything else goes to [`bearer_token`].
pub fn bearer_candidate<'a>(values: &[&'a str]) -> Option<&'a str> {
    let [value] = values else { return None };
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let scheme = value.get(..6)?;
    let rest = value.get(6..)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some(rest.trim_start_matches([' ', '\t']))
}

fn is_bearer_credential(part: &str) -> bool {
    let part = part.trim_start_matches([' ', '\t']);
    part.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
        && part.get(6..7).is_none_or(|c| c == " " || c == "\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_any_case() {
        for v in ["Bearer abc", "bearer abc", "BEARER abc", "  Bearer   abc  ", "Bearer\tabc"] {
            assert_eq!(bearer_token(&[v]), Credential::Bearer("abc"), "{v:?}");
        }
    }

    #[test]
    fn absent_or_other_scheme() {
        assert_eq!(bearer_token(&[]), Credential::Absent);
        assert_eq!(bearer_token(&["Basic dXNlcjpwYXNz"]), Credential::Absent);
        assert_eq!(bearer_token(&["DPoP abc"]), Credential::Absent);
        assert_eq!(bearer_token(&["Bearerabc"]), Credential::Absent);
        assert_eq!(bearer_token(&[""]), Credential::Absent);
    }

    /// Whatever `bearer_token` accepts, `bearer_candidate` finds the same token: so a token
    /// cached after `bearer_token` is found again by its candidate.
    #[test]
    fn candidate_matches_accepted_tokens() {
        let values = [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "  Bearer   abc  ",
            "Bearer\tabc",
            "Bearer abc\t",
            "Bearer a,b",
            "Bearer a b",
            "Bearer",
            "Bearer ",
            "Bearerabc",
            "Basic abc",
            "",
            " ",
            "Bearer é",
            "xBearer abc",
            "Bearer abc, Basic x",
        ];
        for v in values {
            match bearer_token(&[v]) {
                Credential::Bearer(token) => {
                    assert_eq!(bearer_candidate(&[v]), Some(token), "{v:?}")
                }
                _ => {
                    // A refused value may still have a candidate: it can never equal a cached
                    // token, since every cached token passed `bearer_token` on its own.
                    if let Some(c) = bearer_candidate(&[v]) {
                        assert!(
                            !matches!(bearer_token(&[&format!("Bearer {c}")]), Credential::Bearer(t) if t == c),
                            "{v:?}"
                        );
                    }
                }
            }
        }
        assert_eq!(bearer_candidate(&["Bearer a", "Bearer a"]), None);
        assert_eq!(bearer_candidate(&[]), None);
    }

    #[test]
    fn malformed() {
        assert_eq!(bearer_token(&["Bearer"]), Credential::Invalid(InvalidRequest::EmptyToken));
        assert_eq!(bearer_token(&["Bearer   "]), Credential::Invalid(InvalidRequest::EmptyToken));
        assert_eq!(
            bearer_token(&["Bearer a", "Bearer b"]),
            Credential::Invalid(InvalidRequest::MultipleCredentials)
        );
        assert_eq!(
            bearer_token(&["Bearer a,Bearer b"]),
            Credential::Invalid(InvalidRequest::MultipleCredentials)
        );
        assert_eq!(
            bearer_token(&["Bearer a b"]),
            Credential::Invalid(InvalidRequest::MalformedHeader)
        );
        for folded in ["Basic abc,Bearer xyz", "Bearer xyz, Basic abc", "bearer x,bearer"] {
            assert_eq!(
                bearer_token(&[folded]),
                Credential::Invalid(InvalidRequest::MultipleCredentials),
                "{folded}"
            );
        }
        // Digest credentials carry commas of their own and are simply not ours.
        assert_eq!(bearer_token(&[r#"Digest username="a", realm="b""#]), Credential::Absent);
    }
}
