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
    /// Not an access token: an ID token, or a JWT of another type (RFC 8725 3.11).
    WrongType,
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
            TokenError::WrongType => "wrong_token_type",
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
            TokenError::WrongType => "not an access token",
        }
    }

    /// For the operator's log: the description plus the parse detail, still token-free.
    pub fn detail(self) -> &'static str {
        match self {
            TokenError::Malformed(detail) => detail,
            other => other.description(),
        }
    }

    /// The position of this kind in [`TokenError::ALL`] (counters and precomputed responses
    /// are arrays indexed by it).
    pub fn index(self) -> usize {
        match self {
            TokenError::TooLarge => 0,
            TokenError::Malformed(_) => 1,
            TokenError::UnsupportedAlg => 2,
            TokenError::UnsupportedCrit => 3,
            TokenError::UnknownKey => 4,
            TokenError::BadSignature => 5,
            TokenError::BadIssuer => 6,
            TokenError::BadAudience => 7,
            TokenError::MissingExp => 8,
            TokenError::Expired => 9,
            TokenError::NotYetValid => 10,
            TokenError::IssuedInFuture => 11,
            TokenError::WrongType => 12,
        }
    }

    /// One of each kind (for precomputing responses).
    pub const COUNT: usize = 13;
    pub const ALL: [TokenError; TokenError::COUNT] = [
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
        TokenError::WrongType,
    ];
}

/// Why a request was refused other than for its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    MissingToken,
    InvalidRequest,
    InsufficientScope,
    JwksUnavailable,
    MethodNotAllowed,
    /// The host's clock could not be read: nothing can be checked for expiry.
    ClockUnavailable,
    /// An `Mcp-Session-Id` bound to another subject than the token's.
    SessionMismatch,
}

impl DenyReason {
    pub const COUNT: usize = 7;
    pub const ALL: [DenyReason; DenyReason::COUNT] = [
        DenyReason::MissingToken,
        DenyReason::InvalidRequest,
        DenyReason::InsufficientScope,
        DenyReason::JwksUnavailable,
        DenyReason::MethodNotAllowed,
        DenyReason::ClockUnavailable,
        DenyReason::SessionMismatch,
    ];

    /// Stable name, used in stats (`mcp_auth.denied.<reason>`) and log lines.
    pub fn reason(self) -> &'static str {
        match self {
            DenyReason::MissingToken => "missing_token",
            DenyReason::InvalidRequest => "invalid_request",
            DenyReason::InsufficientScope => "insufficient_scope",
            DenyReason::JwksUnavailable => "jwks_unavailable",
            DenyReason::MethodNotAllowed => "method_not_allowed",
            DenyReason::ClockUnavailable => "clock_unavailable",
            DenyReason::SessionMismatch => "session_mismatch",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, e) in TokenError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i, "{e:?}");
        }
        for (i, r) in DenyReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
    }
}
