//! The verdict cache, differentially: a sequence of requests (real, time-sensitive and
//! mutated tokens), clock steps and key-set changes, decided once with a small verdict cache
//! and once without any. The two must always agree: the cache may only save work.
//!
//! Also: the cache stays within its entry bound, and its hit/miss counters add up.
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mcp_auth_filter::authorize::{Decision, RequestFacts, VerdictCache};
use mcp_auth_filter::keys::KeySet;
use mcp_auth_filter::token_cache::TokenCache;
use mcp_auth_filter_fuzz::*;

#[derive(Arbitrary, Debug)]
enum Pick {
    Minted(u8),
    Timed(u8),
    /// A real token with one byte replaced (often the tail that indexes the cache).
    Mutated(u8, u16, u8),
    /// A real token with a different tail of 24 bytes (same index, different token).
    SameTail(u8, u8),
    Raw(String),
}

/// How the token is written into its `Authorization` header: a cached token must be found
/// again in any spelling `bearer_token` accepts, and never let a refused header through.
#[derive(Arbitrary, Debug)]
enum Spelling {
    Plain,
    Lower,
    /// Blanks (spaces and tabs, from the bits) around the scheme and the token.
    Blanks(u8),
    /// Something after the token: a second credential, a blank and more, a comma.
    Suffix(String),
}

impl Spelling {
    fn header(&self, token: &str) -> String {
        let blank = |bit: u8| if bit == 0 { " " } else { "\t" };
        match self {
            Spelling::Plain => format!("Bearer {token}"),
            Spelling::Lower => format!("bearer {token}"),
            Spelling::Blanks(b) => format!(
                "{}Bearer{}{}{token}{}",
                blank(b & 1),
                blank(b & 2),
                blank(b & 4),
                blank(b & 8)
            ),
            Spelling::Suffix(more) => format!("Bearer {token}{more}"),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Step {
    Request { pick: Pick, may_refetch: bool, spelling: Spelling },
    Advance(u16),
    Keys(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    max_bytes: u16,
    /// Start within a few minutes of NOW.
    start: i16,
    steps: Vec<Step>,
}

type MemoKey = (String, Option<usize>, u64, bool);

thread_local! {
    static FRESH: RefCell<HashMap<MemoKey, Decision>> = RefCell::new(HashMap::new());
}

fn copy(d: &Decision) -> Decision {
    match d {
        Decision::Allow(changes) => Decision::Allow(Rc::clone(changes)),
        Decision::Respond(r, o) => Decision::Respond(Rc::clone(r), *o),
        Decision::Wait(w, p) => Decision::Wait(*w, *p),
    }
}

fn pool() -> Vec<&'static String> {
    minted_tokens().iter().chain(timed_tokens()).collect()
}

fn key_set(i: u8) -> Option<&'static KeySet> {
    match i % 4 {
        0 => Some(keycloak_keys()),
        1 => Some(all_keys()),
        2 => Some(rotated_keys()),
        _ => None,
    }
}

fuzz_target!(|input: Input| {
    let cfg = config();
    let pool = pool();
    let capacity = usize::from(input.capacity % 8);
    let mut cache: VerdictCache = TokenCache::new(capacity, usize::from(input.max_bytes) * 4);
    let mut keys = Some(keycloak_keys());
    let mut now = (NOW as i64 + i64::from(input.start) / 100) as u64;
    let mut requests = 0u64;

    for step in input.steps.iter().take(32) {
        let token = match step {
            Step::Advance(s) => {
                now += u64::from(*s % 600);
                continue;
            }
            Step::Keys(i) => {
                keys = key_set(*i);
                if let Some(k) = keys {
                    cache.retain_keys(0, k);
                }
                continue;
            }
            Step::Request { pick, .. } => match pick {
                Pick::Minted(i) => minted_tokens()[*i as usize % minted_tokens().len()].clone(),
                Pick::Timed(i) => timed_tokens()[*i as usize % timed_tokens().len()].clone(),
                Pick::Mutated(i, pos, b) => {
                    let mut t = pool[*i as usize % pool.len()].clone().into_bytes();
                    let p = *pos as usize % t.len();
                    t[p] = *b;
                    String::from_utf8_lossy(&t).into_owned()
                }
                Pick::SameTail(i, j) => {
                    let a = pool[*i as usize % pool.len()];
                    let b = pool[*j as usize % pool.len()];
                    let cut = b.len().saturating_sub(24);
                    format!(
                        "{}{}",
                        &a[..a.rfind('.').unwrap_or(0)],
                        &b[cut.max(b.rfind('.').unwrap_or(0))..]
                    )
                }
                Pick::Raw(s) => s.clone(),
            },
        };
        let Step::Request { may_refetch, spelling, .. } = step else { continue };
        let auth = spelling.header(&token);
        let values = [auth.as_str()];
        let req = RequestFacts {
            method: "POST",
            path: "/mcp",
            authorization: &values,
            now_s: 0,
            may_refetch: false,
        };
        let cached = decide_at(&req, cfg, responses(), keys, now, *may_refetch, &mut cache);
        // The uncached decision is a pure function of its inputs: memoised across runs.
        let memo_key = (auth.clone(), keys.map(|k| k as *const KeySet as usize), now, *may_refetch);
        let memo_key2 = memo_key.clone();
        let fresh = FRESH.with(|memo| {
            let mut memo = memo.borrow_mut();
            if memo.len() > 20_000 {
                memo.clear();
            }
            memo.entry(memo_key).or_insert_with(|| {
                decide_at(
                    &req,
                    cfg,
                    responses(),
                    keys,
                    now,
                    *may_refetch,
                    &mut TokenCache::new(0, 0),
                )
            });
            copy(&memo[&memo_key2])
        });
        if verbose() {
            eprintln!("token_cache: t={} {:.40}... -> {cached:?}", now as i64 - NOW as i64, token);
        }
        assert!(
            same_decision(&cached, &fresh),
            "cache changed the decision at now={now} for {token:?}:\n cached {cached:?}\n fresh {fresh:?}"
        );
        requests += 1;
        assert!(cache.len() <= capacity, "cache holds {} > {capacity}", cache.len());
    }
    let (hits, misses) = cache.stats();
    assert!(hits + misses <= requests, "{hits} hits + {misses} misses for {requests} requests");
});
