//! `KeySet::parse` on arbitrary bytes, then `find` for every algorithm with and without kid,
//! and a verification attempt with each key found.
//!
//! Invariants: every `keys` entry is either a key or a skip note; a usable set is never
//! empty; RSA moduli are within bounds; `find` returns a key that accepts the algorithm and
//! carries the kid, says WrongAlgorithm only when the kid exists, and without kid picks only
//! a sole candidate; a garbage signature never verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_auth_filter::error::TokenError;
use mcp_auth_filter::jws::Algorithm;
use mcp_auth_filter::keys::{JwksError, KeyMatch, KeySet, PublicKey, SkipReason};
use mcp_auth_filter::rsa_verify::{RsaKeyPolicy, F4};
use mcp_auth_filter_fuzz::verbose;
use serde_json::Value;

const MESSAGE: &[u8] = b"eyJhbGciOiJSUzI1NiJ9.e30";

fuzz_target!(|data: &[u8]| {
    let result = KeySet::parse(data);
    if verbose() {
        eprintln!("jwks_parse: {:?}", result.as_ref().map(|s| (s.keys.len(), &s.skipped)));
    }
    let doc: Option<Value> = serde_json::from_slice(data).ok();
    let entries = doc
        .as_ref()
        .and_then(Value::as_object)
        .and_then(|o| o.get("keys"))
        .and_then(Value::as_array);
    let set = match result {
        Err(JwksError::NotJson) => {
            assert!(doc.as_ref().is_none_or(|d| !d.is_object()), "object refused as NotJson");
            return;
        }
        Err(JwksError::NoKeysArray) => {
            assert!(entries.is_none(), "a keys array was not seen");
            return;
        }
        Err(JwksError::NoUsableKey) => {
            assert!(entries.is_some(), "NoUsableKey without a keys array");
            return;
        }
        Ok(set) => set,
    };
    let entries = entries.expect("parsed set has a keys array");
    assert!(!set.keys.is_empty());
    assert_eq!(
        set.keys.len() + set.skipped.len(),
        entries.len(),
        "entries lost: {:?}",
        set.skipped
    );
    // Skips and repeated kids name real positions, in order; a repeat names an earlier key.
    assert!(set.skipped.windows(2).all(|w| w[0].index < w[1].index), "{:?}", set.skipped);
    for note in &set.skipped {
        assert!(note.index < entries.len() && note.to_string().starts_with("keys["));
        if let SkipReason::RsaKey(err) = &note.reason {
            assert_eq!(
                entries[note.index].get("kty").and_then(Value::as_str),
                Some("RSA"),
                "{err}"
            );
        }
    }
    let repeated = set.keys.iter().filter_map(|k| k.kid.as_deref()).count()
        - set.kids().collect::<std::collections::HashSet<_>>().len();
    assert_eq!(set.duplicates.len(), repeated, "{:?}", set.duplicates);
    for dup in &set.duplicates {
        assert!(dup.first < dup.index && dup.index < entries.len(), "{dup:?}");
    }

    for key in &set.keys {
        match &key.key {
            PublicKey::Rsa(k) => {
                // The default key policy: 2048 to 4096 bits, e = 65537.
                let policy = RsaKeyPolicy::default();
                assert!(
                    (policy.min_bits..=policy.max_bits).contains(&k.bits()),
                    "RSA key of {} bits",
                    k.bits()
                );
                assert_eq!(k.modulus_len(), k.bits().div_ceil(8));
                assert_eq!(k.exponent(), F4);
            }
            PublicKey::P256(p) => assert!(p.len() == 65 && p[0] == 4),
            PublicKey::P384(p) => assert!(p.len() == 97 && p[0] == 4),
            PublicKey::Ed25519(_) => {}
        }
        if let Some(alg) = key.alg {
            assert!(key.key.fits(alg), "key alg {alg:?} does not fit its type");
        }
    }

    let mut kids: Vec<Option<&str>> = vec![None, Some("no-such-kid")];
    kids.extend(set.kids().map(Some));
    for alg in Algorithm::ALL {
        for kid in &kids {
            match set.find(*kid, alg) {
                KeyMatch::Found(k) => {
                    assert!(k.accepts(alg), "found a key that does not accept {alg:?}");
                    match kid {
                        Some(kid) => assert_eq!(k.kid.as_deref(), Some(*kid)),
                        None => assert_eq!(set.keys.iter().filter(|k| k.accepts(alg)).count(), 1),
                    }
                    // A signature of the right length but wrong content, and an empty one.
                    for sig in [vec![0x5a; 64], Vec::new()] {
                        assert_eq!(k.key.verify(alg, MESSAGE, &sig), Err(TokenError::BadSignature));
                    }
                }
                KeyMatch::WrongAlgorithm => {
                    let kid = kid.expect("WrongAlgorithm only for a kid");
                    let named: Vec<_> =
                        set.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).collect();
                    assert!(!named.is_empty() && named.iter().all(|k| !k.accepts(alg)));
                }
                KeyMatch::NotFound => match kid {
                    Some(kid) => assert!(set.keys.iter().all(|k| k.kid.as_deref() != Some(*kid))),
                    None => assert_ne!(set.keys.iter().filter(|k| k.accepts(alg)).count(), 1),
                },
            }
        }
    }
});
