//! A bounded cache of verification verdicts, so a client that repeats its token (every MCP
//! request does) pays for one signature check, not one per request.
//!
//! Keyed by the SHA-256 of the whole token. An entry never outlives the token's `exp` (plus
//! the configured skew, the same rule as an uncached check), nor the key that verified it:
//! when the key set changes, entries whose key left the set are dropped. Refusals are cached
//! only when they cannot change while the key set stays the same (a bad signature, issuer,
//! audience, a missing or past `exp`), and are dropped on any key-set change.

use std::collections::{HashMap, VecDeque};

use sha2::{Digest, Sha256};

use crate::error::TokenError;
use crate::keys::KeySet;
use crate::token::VerifiedToken;

pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Debug, Clone)]
pub enum Verdict {
    Valid(VerifiedToken),
    Refused(TokenError),
}

#[derive(Debug)]
struct Entry {
    verdict: Verdict,
    /// Seconds; after `valid_until` the entry is useless (for refusals: `u64::MAX`).
    valid_until: u64,
}

#[derive(Debug)]
pub struct TokenCache {
    capacity: usize,
    entries: HashMap<TokenDigest, Entry>,
    /// Insertion order, for eviction of the oldest entry when full.
    order: VecDeque<TokenDigest>,
    hits: u64,
    misses: u64,
}

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            capacity,
            entries: HashMap::with_capacity(capacity.min(4096)),
            order: VecDeque::with_capacity(capacity.min(4096)),
            hits: 0,
            misses: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// The cached verdict for a token at `now` (seconds), if any is still good.
    pub fn get(&mut self, digest: &TokenDigest, now: u64, skew: u64) -> Option<&Verdict> {
        let fresh = match self.entries.get(digest) {
            Some(entry) => now < entry.valid_until.saturating_add(skew),
            None => {
                self.misses += 1;
                return None;
            }
        };
        if !fresh {
            self.entries.remove(digest);
            self.misses += 1;
            return None;
        }
        self.hits += 1;
        self.entries.get(digest).map(|e| &e.verdict)
    }

    /// Remembers a verdict. Refusals that could change without a key-set change are not kept.
    pub fn put(&mut self, digest: TokenDigest, verdict: Verdict) {
        if self.capacity == 0 {
            return;
        }
        let valid_until = match &verdict {
            Verdict::Valid(token) => token.exp,
            Verdict::Refused(
                TokenError::BadSignature
                | TokenError::BadIssuer
                | TokenError::BadAudience
                | TokenError::MissingExp
                | TokenError::Expired,
            ) => u64::MAX,
            Verdict::Refused(_) => return,
        };
        if self.entries.insert(digest, Entry { verdict, valid_until }).is_none() {
            self.order.push_back(digest);
        }
        while self.entries.len() > self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        // Entries removed by expiry or invalidation leave stale digests in `order`; compact
        // now and then so it stays bounded too.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order.retain(|d| entries.contains_key(d));
        }
    }

    /// The key set changed: keep only accepted tokens whose key is still in it.
    pub fn retain_keys(&mut self, keys: &KeySet) {
        self.entries.retain(|_, entry| match &entry.verdict {
            Verdict::Valid(token) => keys.keys.iter().any(|k| k.id == token.key),
            Verdict::Refused(_) => false,
        });
        let entries = &self.entries;
        self.order.retain(|d| entries.contains_key(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys;
    use serde_json::Map;

    fn valid(exp: u64, key: crate::keys::KeyId) -> Verdict {
        Verdict::Valid(VerifiedToken { claims: Map::new(), exp, kid: None, key })
    }

    fn keycloak() -> KeySet {
        KeySet::parse(testkeys::keycloak_jwks().to_string().as_bytes()).unwrap()
    }

    #[test]
    fn hit_until_exp_plus_skew() {
        let mut c = TokenCache::new(10);
        let d = digest("t");
        c.put(d, valid(100, [1; 32]));
        assert!(c.get(&d, 50, 0).is_some());
        assert!(c.get(&d, 104, 5).is_some());
        assert!(c.get(&d, 105, 5).is_none());
        assert!(c.is_empty(), "expired entries are dropped");
        assert_eq!(c.stats(), (2, 1));
    }

    #[test]
    fn bounded_and_oldest_evicted() {
        let mut c = TokenCache::new(3);
        for i in 0..10 {
            c.put(digest(&i.to_string()), valid(1000, [1; 32]));
            assert!(c.len() <= 3);
        }
        assert!(c.get(&digest("9"), 0, 0).is_some());
        assert!(c.get(&digest("6"), 0, 0).is_none());
        assert!(c.order.len() <= 6);
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut c = TokenCache::new(0);
        c.put(digest("t"), valid(1000, [1; 32]));
        assert!(c.get(&digest("t"), 0, 0).is_none());
    }

    #[test]
    fn only_stable_refusals_are_kept() {
        let mut c = TokenCache::new(10);
        c.put(digest("sig"), Verdict::Refused(TokenError::BadSignature));
        c.put(digest("kid"), Verdict::Refused(TokenError::UnknownKey));
        c.put(digest("nbf"), Verdict::Refused(TokenError::NotYetValid));
        c.put(digest("junk"), Verdict::Refused(TokenError::Malformed("x")));
        assert!(c.get(&digest("sig"), u64::MAX - 1, 60).is_some());
        assert!(c.get(&digest("kid"), 0, 0).is_none());
        assert!(c.get(&digest("nbf"), 0, 0).is_none());
        assert!(c.get(&digest("junk"), 0, 0).is_none());
    }

    #[test]
    fn key_leaving_the_set_drops_its_tokens() {
        let keys = keycloak();
        let live = keys.keys[0].id;
        let mut c = TokenCache::new(10);
        c.put(digest("live"), valid(1000, live));
        c.put(digest("gone"), valid(1000, [9; 32]));
        c.put(digest("bad"), Verdict::Refused(TokenError::BadSignature));
        c.retain_keys(&keys);
        assert!(c.get(&digest("live"), 0, 0).is_some());
        assert!(c.get(&digest("gone"), 0, 0).is_none());
        assert!(c.get(&digest("bad"), 0, 0).is_none());
    }
}
