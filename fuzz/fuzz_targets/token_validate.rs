//! Arbitrary bytes as a token, validated against the Keycloak-shaped key set and the
//! one-of-each-type set with the fixed configuration.
//!
//! Invariants: Ok only for a token whose signature a fixed key made over its signing input;
//! an accepted token's claims satisfy the policy; every error has a stable reason and a
//! token-free description; the size limit is checked before anything else; `ring` and
//! `jwt-simple` accept what the filter accepts, with the same claims (`src/oracles.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_filter::error::TokenError;
use mcp_auth_filter::token;
use mcp_auth_filter_fuzz::*;

fuzz_target!(|data: &[u8]| {
    let token = text(data);
    let cfg = config();
    for keys in [keycloak_keys(), all_keys()] {
        let result = token::validate(&token, keys, cfg, NOW);
        if verbose() {
            eprintln!(
                "token_validate: {:?}",
                result.as_ref().map(|v| (v.exp, v.lookup.kid.clone()))
            );
        }
        match result {
            Ok(verified) => {
                assert!(is_genuine(&token), "accepted a token no fixed key signed: {token:?}");
                check_accepted_claims(&verified.claims, verified.exp, cfg, NOW);
                oracles::check_accepted(&token, &verified, cfg, NOW);
                if let Some(kid) = &verified.lookup.kid {
                    assert!(keys.kids().any(|k| k == kid), "verified by unknown kid {kid}");
                }
            }
            Err(e) => {
                assert!(
                    TokenError::ALL.iter().any(|k| k.reason() == e.reason()),
                    "reason {}",
                    e.reason()
                );
                assert!(!e.description().is_empty() && !e.detail().is_empty());
                assert!(!e.description().contains(['"', '\\', '\r', '\n']));
                if token.len() > cfg.max_token_bytes {
                    assert_eq!(e, TokenError::TooLarge);
                }
            }
        }
    }
});
