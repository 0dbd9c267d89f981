//! A bounded cache of verification verdicts, so a client that repeats its token (every MCP
//! request does) pays for one signature check, not one per request.
//!
//! Keyed by the whole token: the table is indexed by the token's last bytes (signature bytes,
//! which differ between any two genuine tokens) and every hit compares the full token, so two
//! different tokens can never share a verdict. That is cheaper than hashing the whole token
//! with SHA-256 on every request (about 9 µs for a Keycloak-sized token inside wasm, half the
//! cost of a request through Envoy) and is collision-free by construction.
//!
//! An entry never outlives the token's `exp` (plus the configured skew, the same rule as an
//! uncached check), nor the key that verified it: when the key set changes, an entry stays only
//! if the new set picks the same key for the token (a key that left the set, or a `kid` now
//! answered by another key, or a kid-less token whose key gained a rival, drop it). Refusals are cached only when they cannot change while the key
//! set stays the same (a bad signature, issuer, audience, a missing or past `exp`), and are
//! dropped on any key-set change. Bounded in entries and in bytes of stored tokens.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use crate::error::TokenError;
use crate::keys::{KeyId, KeyLookup, KeySet};

/// How long a cached refusal is kept. Refusals are cached so a flood of the same junk token
/// costs one check, but they do not stay forever: a refused token holds cache room only while
/// it is being repeated.
pub const REFUSAL_TTL_S: u64 = 300;

/// How many trailing bytes of a token index the table.
const TAIL: usize = 24;
type Tail = [u8; TAIL];

fn tail(token: &str) -> Option<Tail> {
    let bytes = token.as_bytes();
    bytes.get(bytes.len().checked_sub(TAIL)?..).and_then(|t| Tail::try_from(t).ok())
}

/// Byte equality a 64-byte block at a time: the generic comparison goes byte by byte inside
/// wasm, which for a kilobyte token costs half a microsecond on every cached request. A block
/// ORs the differences of its eight words and branches once (a fifth of the byte loop's time
/// in V8).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (blocks_a, blocks_b) = (a.chunks_exact(64), b.chunks_exact(64));
    let (rest_a, rest_b) = (blocks_a.remainder(), blocks_b.remainder());
    blocks_a.zip(blocks_b).all(|(x, y)| word_diff(x, y) == 0) && word_diff(rest_a, rest_b) == 0 && {
        let tail = rest_a.len() - rest_a.len() % 8;
        rest_a.get(tail..) == rest_b.get(tail..)
    }
}

/// The OR of the XORs of the whole 8-byte words of `a` and `b` (equal lengths): 0 when they agree.
fn word_diff(a: &[u8], b: &[u8]) -> u64 {
    let word = |c: &[u8]| <[u8; 8]>::try_from(c).map_or(0, u64::from_ne_bytes);
    a.chunks_exact(8).zip(b.chunks_exact(8)).fold(0, |diff, (x, y)| diff | (word(x) ^ word(y)))
}

/// What an accepted token grants, computed once when it is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access<T> {
    Granted(Rc<T>),
    InsufficientScope,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<T> {
    /// `lookup`: how the token named `key`; the verdict holds while a key set selects `key` by it.
    Valid {
        exp: u64,
        /// The provider whose key set verified it: only that set's changes touch it.
        provider: usize,
        key: KeyId,
        lookup: KeyLookup,
        access: Access<T>,
    },
    Refused(TokenError),
}

#[derive(Debug)]
struct Entry<T> {
    token: Box<str>,
    verdict: Verdict<T>,
    /// Seconds; the entry is good while `now < valid_until + skew` (refusals: a while after
    /// they were made, see [`REFUSAL_TTL_S`]).
    valid_until: u64,
}

/// `T` is what an accepted token grants (the filter stores its upstream header changes).
#[derive(Debug)]
pub struct TokenCache<T> {
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    entries: HashMap<Tail, Entry<T>>,
    /// Insertion order, for eviction of the oldest entry when full.
    order: VecDeque<Tail>,
    hits: u64,
    misses: u64,
}

impl<T> TokenCache<T> {
    pub fn new(capacity: usize, max_bytes: usize) -> TokenCache<T> {
        TokenCache {
            capacity,
            max_bytes,
            bytes: 0,
            entries: HashMap::with_capacity(capacity.min(1024)),
            order: VecDeque::with_capacity(capacity.min(1024)),
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

    /// (hits, misses) since start.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// The cached verdict for `token` at `now` (seconds), if one is still good.
    pub fn get(&mut self, token: &str, now: u64, skew: u64) -> Option<&Verdict<T>> {
        let Some(key) = tail(token) else {
            self.misses += 1;
            return None;
        };
        let fresh = match self.entries.get(&key) {
            Some(entry) if same_bytes(entry.token.as_bytes(), token.as_bytes()) => {
                now < entry.valid_until.saturating_add(skew)
            }
            _ => {
                self.misses += 1;
                return None;
            }
        };
        if !fresh {
            self.remove(&key);
            self.misses += 1;
            return None;
        }
        self.hits += 1;
        self.entries.get(&key).map(|e| &e.verdict)
    }

    /// Remembers a verdict made at `now` (seconds). Refusals that could change without a
    /// key-set change are not kept; a refusal never displaces an accepted token that shares
    /// its tail (a forger copying a genuine token's last bytes must not evict it).
    pub fn put(&mut self, token: &str, verdict: Verdict<T>, now: u64) {
        let Some(key) = tail(token) else { return };
        if self.capacity == 0 || token.len() > self.max_bytes {
            return;
        }
        let valid_until = match &verdict {
            Verdict::Valid { exp, .. } => *exp,
            Verdict::Refused(
                TokenError::BadSignature
                | TokenError::BadIssuer
                | TokenError::BadAudience
                | TokenError::MissingExp
                | TokenError::Expired
                | TokenError::WrongType,
            ) => now.saturating_add(REFUSAL_TTL_S),
            Verdict::Refused(_) => return,
        };
        if let (Verdict::Refused(_), Some(held)) = (&verdict, self.entries.get(&key)) {
            if matches!(held.verdict, Verdict::Valid { .. }) && *held.token != *token {
                return;
            }
        }
        self.remove(&key);
        self.bytes += token.len();
        self.entries.insert(key, Entry { token: token.into(), verdict, valid_until });
        self.order.push_back(key);
        while self.entries.len() > self.capacity || self.bytes > self.max_bytes {
            match self.order.pop_front() {
                Some(oldest) => self.remove(&oldest),
                None => break,
            }
        }
        // Entries removed by expiry or replacement leave stale tails in `order`; compact now
        // and then so it stays bounded too.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order.retain(|d| entries.contains_key(d));
        }
    }

    fn remove(&mut self, key: &Tail) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes = self.bytes.saturating_sub(old.token.len());
        }
    }

    /// A provider's key set changed: keep only that provider's accepted tokens the new set
    /// would check with the same key (a `KeyId` means something in its own provider's set
    /// only), and every other provider's.
    pub fn retain_keys(&mut self, provider: usize, keys: &KeySet) {
        self.entries.retain(|_, entry| match &entry.verdict {
            // Not only "is the key still there": a new key may now answer the same kid, or
            // make a kid-less token's choice ambiguous, and the uncached check would differ.
            Verdict::Valid { provider: of, key, lookup, .. } if *of == provider => {
                keys.selects(lookup, *key)
            }
            Verdict::Valid { .. } => true,
            Verdict::Refused(_) => false,
        });
        self.bytes = self.entries.values().map(|e| e.token.len()).sum();
        let entries = &self.entries;
        self.order.retain(|d| entries.contains_key(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::Algorithm;
    use crate::testkeys;

    fn valid(exp: u64, key: KeyId) -> Verdict<()> {
        valid_by(exp, key, KeyLookup { kid: None, alg: Algorithm::RS256 })
    }

    fn valid_by(exp: u64, key: KeyId, lookup: KeyLookup) -> Verdict<()> {
        Verdict::Valid { exp, provider: 0, key, lookup, access: Access::Granted(Rc::new(())) }
    }

    fn tok(i: usize) -> String {
        format!("header.payload.signature-{i:030}")
    }

    fn keycloak() -> KeySet {
        KeySet::parse(testkeys::keycloak_jwks().to_string().as_bytes()).unwrap()
    }

    #[test]
    fn hit_until_exp_plus_skew() {
        let mut c = TokenCache::new(10, 1 << 20);
        c.put(&tok(1), valid(100, [1; 32]), 0);
        assert!(c.get(&tok(1), 50, 0).is_some());
        assert!(c.get(&tok(1), 104, 5).is_some());
        assert!(c.get(&tok(1), 105, 5).is_none());
        assert!(c.is_empty(), "expired entries are dropped");
        assert_eq!(c.stats(), (2, 1));
    }

    #[test]
    fn same_tail_different_token_never_hits() {
        let mut c = TokenCache::new(10, 1 << 20);
        let genuine = tok(7);
        let forged = format!("X{}", &genuine[1..]);
        c.put(&genuine, valid(100, [1; 32]), 0);
        assert!(c.get(&forged, 0, 0).is_none());
        // A refused token sharing the tail of another: it never answers for the other, in
        // either order (a refusal held first is replaced by the genuine token's verdict).
        c.put(&forged, Verdict::Refused(TokenError::BadSignature), 0);
        assert!(c.get(&genuine, 0, 0).is_some());
        assert!(c.get(&forged, 0, 0).is_none());
        let mut c = TokenCache::new(10, 1 << 20);
        c.put(&forged, Verdict::Refused(TokenError::BadSignature), 0);
        assert!(c.get(&genuine, 0, 0).is_none());
        c.put(&genuine, valid(100, [1; 32]), 0);
        assert!(c.get(&genuine, 0, 0).is_some());
        assert!(c.get(&forged, 0, 0).is_none());
        assert!(c.get("short", 0, 0).is_none());
    }

    #[test]
    fn bounded_in_entries_and_bytes() {
        let mut c = TokenCache::new(3, 1 << 20);
        for i in 0..10 {
            c.put(&tok(i), valid(1000, [1; 32]), 0);
            assert!(c.len() <= 3);
        }
        assert!(c.get(&tok(9), 0, 0).is_some());
        assert!(c.get(&tok(6), 0, 0).is_none());
        assert!(c.order.len() <= 6);
        let size = tok(0).len();
        let mut c = TokenCache::new(100, size * 2);
        for i in 0..10 {
            c.put(&tok(i), valid(1000, [1; 32]), 0);
            assert!(c.bytes <= size * 2);
        }
        assert_eq!(c.len(), 2);
        let mut c = TokenCache::new(100, 10);
        c.put(&tok(0), valid(1000, [1; 32]), 0);
        assert!(c.is_empty(), "a token larger than the byte budget is not kept");
    }

    #[test]
    fn same_bytes_is_equality() {
        for len in [0, 1, 7, 8, 9, 16, 63, 64, 65, 71, 72, 73, 127, 128, 200, 1146] {
            let a: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            assert!(same_bytes(&a, &a.clone()));
            for i in 0..len {
                let mut b = a.clone();
                b[i] ^= 1;
                assert!(!same_bytes(&a, &b), "{len} {i}");
            }
            assert!(!same_bytes(&a, &a[..len.saturating_sub(1)]) || len == 0);
        }
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut c = TokenCache::new(0, 1 << 20);
        c.put(&tok(1), valid(1000, [1; 32]), 0);
        assert!(c.get(&tok(1), 0, 0).is_none());
    }

    #[test]
    fn only_stable_refusals_are_kept() {
        let mut c: TokenCache<()> = TokenCache::new(10, 1 << 20);
        c.put(&tok(1), Verdict::Refused(TokenError::BadSignature), 0);
        c.put(&tok(2), Verdict::Refused(TokenError::UnknownKey), 0);
        c.put(&tok(3), Verdict::Refused(TokenError::NotYetValid), 0);
        c.put(&tok(4), Verdict::Refused(TokenError::Malformed("x")), 0);
        assert!(c.get(&tok(1), 0, 60).is_some());
        assert!(c.get(&tok(2), 0, 0).is_none());
        assert!(c.get(&tok(3), 0, 0).is_none());
        assert!(c.get(&tok(4), 0, 0).is_none());
    }

    #[test]
    fn key_leaving_the_set_drops_its_tokens() {
        let keys = keycloak();
        let live = keys.keys[0].id;
        let mut c = TokenCache::new(10, 1 << 20);
        let by_kid = KeyLookup { kid: keys.keys[0].kid.clone(), alg: Algorithm::RS256 };
        c.put(&tok(1), valid_by(1000, live, by_kid), 0);
        c.put(&tok(2), valid(1000, [9; 32]), 0);
        c.put(&tok(3), Verdict::Refused(TokenError::BadSignature), 0);
        c.retain_keys(0, &keys);
        assert!(c.get(&tok(1), 0, 0).is_some());
        assert!(c.get(&tok(2), 0, 0).is_none());
        assert!(c.get(&tok(3), 0, 0).is_none());
        assert_eq!(c.bytes, tok(1).len());
    }

    /// A verdict holds across a key-set change only while the new set still picks the same
    /// key for the token: a kid-less token whose key gains a rival, or a kid now answered by
    /// another key first, must be checked again (found by the token_cache fuzz target).
    #[test]
    fn key_still_there_but_no_longer_chosen_drops_its_tokens() {
        let keycloak = keycloak();
        let signing = &keycloak.keys[0];
        let kid_less = KeyLookup { kid: None, alg: Algorithm::RS256 };
        let by_kid = KeyLookup { kid: signing.kid.clone(), alg: Algorithm::RS256 };
        let mut c = TokenCache::new(10, 1 << 20);
        c.put(&tok(1), valid_by(1000, signing.id, kid_less.clone()), 0);
        c.put(&tok(2), valid_by(1000, signing.id, by_kid.clone()), 0);
        c.retain_keys(0, &keycloak);
        assert!(c.get(&tok(1), 0, 0).is_some(), "the only RS256 key: still the kid-less token's");
        assert!(c.get(&tok(2), 0, 0).is_some());

        // The same key beside a second RS256 key: a kid-less token no longer names one key.
        let mut jwks = testkeys::keycloak_jwks();
        let mut rival = testkeys::rotated_jwk();
        rival["kid"] = serde_json::json!("another");
        jwks["keys"].as_array_mut().unwrap().push(rival);
        let both = KeySet::parse(jwks.to_string().as_bytes()).unwrap();
        assert!(both.keys.iter().any(|k| k.id == signing.id));
        c.retain_keys(0, &both);
        assert!(c.get(&tok(1), 0, 0).is_none());
        assert!(c.get(&tok(2), 0, 0).is_some(), "its kid still names the same key");

        // A new key listed first under the same kid answers for it now.
        let mut jwks = testkeys::keycloak_jwks();
        let mut impostor = testkeys::rotated_jwk();
        impostor["kid"] = serde_json::json!(signing.kid.clone());
        jwks["keys"].as_array_mut().unwrap().insert(0, impostor);
        let shadowed = KeySet::parse(jwks.to_string().as_bytes()).unwrap();
        c.retain_keys(0, &shadowed);
        assert!(c.get(&tok(2), 0, 0).is_none());
    }

    #[test]
    fn a_refusal_expires() {
        let mut c: TokenCache<()> = TokenCache::new(10, 1 << 20);
        c.put(&tok(1), Verdict::Refused(TokenError::BadSignature), 1000);
        assert!(c.get(&tok(1), 1000 + REFUSAL_TTL_S - 1, 0).is_some());
        assert!(c.get(&tok(1), 1000 + REFUSAL_TTL_S, 0).is_none());
        assert!(c.is_empty(), "an expired refusal leaves the cache");
    }

    #[test]
    fn a_forgery_sharing_the_tail_does_not_evict_the_genuine_token() {
        let mut c: TokenCache<()> = TokenCache::new(10, 1 << 20);
        let genuine = tok(1);
        let forged = format!("X{}", &genuine[1..]);
        assert_eq!(tail(&genuine), tail(&forged));
        c.put(&genuine, valid(2000, [0; 32]), 1000);
        c.put(&forged, Verdict::Refused(TokenError::BadSignature), 1000);
        assert!(matches!(c.get(&genuine, 1000, 0), Some(Verdict::Valid { .. })));
        // The forgery is simply not cached: it is checked (and refused) each time.
        assert!(c.get(&forged, 1000, 0).is_none());
    }
}
