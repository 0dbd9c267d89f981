//! Why a token was refused. Each reason has a stable name (stats, logs) and a short,
//! token-free description (the `error_description` clients see).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    TooLarge,
    /// The detail goes to the operator's log only; clients see "malformed token".
    Malformed(&'static str),
    UnsupportedAlg,
    UnsupportedCrit,
    UnknownKey,
    BadSignature,
    BadIssuer,
    BadAudience,
    MissingExp,
    Expired,
    NotYetValid,
    IssuedInFuture,
}

impl TokenError {
    /// Stable name, used in stats (`mcp_auth.denied.<reason>`) and log lines.
    pub fn reason(self) -> &'static str {
        match self {
            TokenError::TooLarge => "token_too_large",
            TokenError::Malformed(_) => "malformed_token",
            TokenError::UnsupportedAlg => "unsupported_alg",
            TokenError::UnsupportedCrit => "unsupported_crit",
            TokenError::UnknownKey => "unknown_key",
            TokenError::BadSignature => "bad_signature",
            TokenError::BadIssuer => "bad_issuer",
            TokenError::BadAudience => "bad_audience",
            TokenError::MissingExp => "missing_exp",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::IssuedInFuture => "issued_in_future",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            TokenError::TooLarge => "token too large",
            TokenError::Malformed(_) => "malformed token",
            TokenError::UnsupportedAlg => "unsupported algorithm",
            TokenError::UnsupportedCrit => "unsupported critical header",
            TokenError::UnknownKey => "no matching signing key",
            TokenError::BadSignature => "invalid signature",
            TokenError::BadIssuer => "invalid issuer",
            TokenError::BadAudience => "invalid audience",
            TokenError::MissingExp => "missing or invalid exp",
            TokenError::Expired => "token expired",
            TokenError::NotYetValid => "token not yet valid",
            TokenError::IssuedInFuture => "token issued in the future",
        }
    }

    /// For the operator's log: the description plus the parse detail, still token-free.
    pub fn detail(self) -> &'static str {
        match self {
            TokenError::Malformed(detail) => detail,
            other => other.description(),
        }
    }

    /// One of each kind (for precomputing responses).
    pub const ALL: [TokenError; 12] = [
        TokenError::TooLarge,
        TokenError::Malformed(""),
        TokenError::UnsupportedAlg,
        TokenError::UnsupportedCrit,
        TokenError::UnknownKey,
        TokenError::BadSignature,
        TokenError::BadIssuer,
        TokenError::BadAudience,
        TokenError::MissingExp,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::IssuedInFuture,
    ];
}
