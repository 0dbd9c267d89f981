//! Structure-aware token validation: tokens built from fuzzed header and payload members,
//! with fuzzed or real signatures (see `structured.rs`).
//!
//! Invariants:
//! - `validate` returns Ok only for the exact token a fixed key signed;
//! - with a real signature, the claim checks agree with an independent model (`model.rs`),
//!   and a clean header (right alg, right or no kid) always gets that far;
//! - `ring` and `jwt-simple` accept what the filter accepts, with the same claims;
//! - an accepted token's claims satisfy the policy, `missing_scopes` agrees with the model,
//!   and `authorize::access` produces only safe upstream header values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_filter::authorize;
use mcp_auth_filter::token;
use mcp_auth_filter::token_cache::Access;
use mcp_auth_filter_fuzz::structured::TokenInput;
use mcp_auth_filter_fuzz::*;

fuzz_target!(|input: TokenInput| {
    let built = input.build();
    let cfg = config();
    let keys = if input.keycloak_set { keycloak_keys() } else { all_keys() };
    let result = token::validate(&built.token, keys, cfg, NOW);
    if verbose() {
        eprintln!("token_parts: {} -> {:?}", built.token, result.as_ref().map(|v| v.exp));
    }

    if let Ok(verified) = &result {
        assert_eq!(
            built.genuine.as_deref(),
            Some(built.token.as_str()),
            "accepted a token that the key did not sign: {}",
            built.token
        );
        check_accepted_claims(&verified.claims, verified.exp, cfg, NOW);
        oracles::check_accepted(&built.token, verified, cfg, NOW);
        let missing: Vec<String> = token::missing_scopes(&verified.claims, &cfg.required_scopes)
            .into_iter()
            .map(str::to_string)
            .collect();
        assert_eq!(
            missing,
            model::missing_scopes(&verified.claims, &cfg.required_scopes),
            "missing_scopes"
        );
        match authorize::access(cfg, verified) {
            Access::Granted(changes) => {
                assert!(missing.is_empty(), "granted without scope");
                check_upstream_changes(&changes, cfg);
            }
            Access::InsufficientScope => assert!(!missing.is_empty(), "refused with every scope"),
        }
    }

    // The payload stage, compared with the model whenever the signature is real.
    if let (Some(genuine), Some(members)) = (&built.genuine, &built.payload_members) {
        let untouched = *genuine == built.token && built.token.len() <= cfg.max_token_bytes;
        let expected = model::claims_verdict(members, built.header_typ.as_ref(), cfg, NOW);
        let got = result.as_ref().map(|v| v.exp).map_err(|e| *e);
        let reached_claims = match &got {
            Ok(_) => true,
            Err(e) => model::is_claims_error(e),
        };
        if reached_claims {
            assert_eq!(got, expected, "claims verdict differs from the model for {}", built.token);
        }
        if untouched && built.clean {
            assert_eq!(
                got, expected,
                "a clean, genuinely signed token did not reach the claims: {}",
                built.token
            );
        }
    }
});
