#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]
//! `mcp-auth-filter`: a proxy-wasm filter that makes an MCP server an OAuth 2 protected
//! resource (MCP authorization, RFC 6750, RFC 9728).
//!
//! Everything but [`filter`] is plain logic with no `proxy_wasm` import, tested on the host
//! target: the pure decision modules, and [`worker`], which drives them through the [`host`]
//! trait. [`filter`] is the one thin layer that implements that trait over proxy-wasm.

pub mod authorize;
pub mod config;
pub mod error;
pub mod extract;
// The host glue links against proxy-wasm imports, which exist only inside a wasm host.
#[cfg(target_arch = "wasm32")]
mod filter;
pub mod host;
pub mod jwks_sync;
pub mod jws;
pub mod keys;
pub mod mcp;
pub mod providers;
pub mod response;
pub mod rsa_verify;
pub mod sessions;
pub mod stats;
pub mod token;
pub mod token_cache;
pub mod url;
pub mod waiting;
pub mod worker;

#[cfg(test)]
mod attacks;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod testkeys;
