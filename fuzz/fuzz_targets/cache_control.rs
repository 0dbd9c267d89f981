//! `jwks_sync::max_age` on arbitrary Cache-Control values, and the key-set lifetime taken
//! from it.
//!
//! Invariants: directive names are case-insensitive (ASCII case changes never change the
//! answer); unrelated directives before or after change nothing; a positive answer comes
//! from a `max-age` directive carrying those digits; `no-store`/`no-cache` mean zero; the
//! lifetime stays within the configured bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_filter::jwks_sync::{max_age, JwksSync, SharedStore};
use mcp_auth_filter_fuzz::{config, text, verbose};

struct NoStore;
impl SharedStore for NoStore {
    fn get(&self, _: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        Ok(None)
    }
    fn set(&self, _: &str, _: &[u8], _: Option<u32>) -> Result<bool, String> {
        Ok(true)
    }
}

fuzz_target!(|data: &[u8]| {
    let value = text(data);
    let age = max_age(&value);
    if verbose() {
        eprintln!("cache_control: {value:?} -> {age:?}");
    }
    assert_eq!(max_age(&value.to_ascii_uppercase()), age, "case changed the answer");
    assert_eq!(max_age(&value.to_ascii_lowercase()), age, "case changed the answer");
    assert_eq!(max_age(&format!("public, {value}")), age, "a leading directive changed the answer");
    if !value.trim().is_empty() {
        assert_eq!(
            max_age(&format!("{value}, immutable")),
            age,
            "a trailing directive changed the answer"
        );
    }
    let lower = value.to_ascii_lowercase();
    match age {
        Some(0) => assert!(
            lower.contains("no-store") || lower.contains("no-cache") || lower.contains("max-age"),
            "zero from {value:?}"
        ),
        Some(n) => {
            assert!(lower.contains("max-age"), "{n} without max-age in {value:?}");
            assert!(value.contains(&n.to_string()), "{n} is not in {value:?}");
        }
        None => {}
    }
    if lower.contains("no-store")
        && lower.split(',').any(|d| {
            let name = d.split_once('=').map_or(d, |(n, _)| n);
            name.trim() == "no-store"
        })
    {
        assert_eq!(age, Some(0), "no-store not honoured in {value:?}");
    }

    let jwks = &config().providers[0].jwks;
    let sync = JwksSync::new(&NoStore, jwks);
    let lifetime = sync.lifetime_s(age);
    match age {
        Some(_) => {
            assert!((jwks.min_cache_duration_s..=jwks.max_cache_duration_s).contains(&lifetime))
        }
        None => assert_eq!(lifetime, jwks.cache_duration_s),
    }
});
