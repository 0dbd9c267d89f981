//! The shared-record key-set schedule (`jwks_sync::JwksSync`) driven by several VMs over a
//! fuzzed sequence of claims, completions, abandoned fetches and lost CAS races, with a
//! fuzzed (valid) `jwks` configuration.
//!
//! Invariants: at most one fetch is in flight per process (a second Started only after the
//! first completed or its claim expired); NotDue only before the due time; unknown-kid
//! refetches respect the minimum interval; a success publishes exactly one new version with
//! a refresh time inside the configured lifetime bounds; a failure keeps the last good body
//! and backs off exponentially up to the cap; the record always reads back.
#![no_main]

use std::cell::{Cell, RefCell};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mcp_auth_filter::config::FilterConfig;
use mcp_auth_filter::jwks_sync::{Claim, JwksSync, SharedStore, Trigger};
use serde_json::json;

/// An in-memory shared store whose next CAS write can be made to lose a race.
#[derive(Default)]
struct Store {
    value: RefCell<Option<(Vec<u8>, u32)>>,
    next_cas: Cell<u32>,
    /// Writes with a CAS token that will fail as if another VM had written first.
    races: Cell<u8>,
}

impl SharedStore for Store {
    fn get(&self, _key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        Ok(self.value.borrow().clone())
    }
    fn set(&self, _key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, String> {
        let mut slot = self.value.borrow_mut();
        if let (Some(cas), Some((_, current))) = (cas, slot.as_ref()) {
            if cas != *current {
                return Ok(false);
            }
            if self.races.get() > 0 {
                self.races.set(self.races.get() - 1);
                // Someone else's write: same content, new token.
                let token = self.bump();
                if let Some(s) = slot.as_mut() {
                    s.1 = token;
                }
                return Ok(false);
            }
        }
        let token = self.bump();
        *slot = Some((value.to_vec(), token));
        Ok(true)
    }
}

impl Store {
    fn bump(&self) -> u32 {
        let t = self.next_cas.get().wrapping_add(1).max(1);
        self.next_cas.set(t);
        t
    }
}

#[derive(Arbitrary, Debug)]
struct Params {
    timeout_ms: u16,
    cache_duration_s: u32,
    min_cache_duration_s: u32,
    max_cache_duration_s: u32,
    min_refetch_interval_s: u16,
    retry_initial_ms: u32,
    retry_max_ms: u32,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Advance(u32),
    Claim {
        vm: u8,
        unknown_kid: bool,
    },
    /// The VM's fetch finished: Ok with an optional max-age, or failed.
    Complete {
        vm: u8,
        ok: bool,
        max_age: Option<u32>,
    },
    /// The VM's fetch is abandoned (VM gone); its claim must expire on its own.
    Abandon {
        vm: u8,
    },
    /// The next writes lose a CAS race.
    Race(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    params: Params,
    start_ms: u32,
    ops: Vec<Op>,
}

const VMS: usize = 3;

fuzz_target!(|input: Input| {
    let p = &input.params;
    let doc = json!({
        "issuer": "i", "audiences": ["a"],
        "jwks": {"cluster": "c", "uri": "http://h/certs",
                 "timeout_ms": p.timeout_ms, "cache_duration_s": p.cache_duration_s,
                 "min_cache_duration_s": p.min_cache_duration_s, "max_cache_duration_s": p.max_cache_duration_s,
                 "min_refetch_interval_s": p.min_refetch_interval_s,
                 "retry_initial_ms": p.retry_initial_ms, "retry_max_ms": p.retry_max_ms},
        "resource_metadata": {"resource": "http://r/mcp", "authorization_servers": ["http://i"]}
    });
    let Ok(cfg) = FilterConfig::parse(doc.to_string().as_bytes()) else { return };
    let jwks = &cfg.providers[0].jwks;
    let store = Store::default();
    let vms: Vec<JwksSync<'_, Store>> = (0..VMS).map(|_| JwksSync::new(&store, jwks)).collect();
    for vm in &vms {
        vm.init().expect("init");
    }
    // 2020-09-13 plus up to ~50 days: realistic epoch milliseconds.
    let mut now: u64 = 1_600_000_000_000 + u64::from(input.start_ms);
    // Which VM holds the fetch, and until when its claim protects it.
    let mut in_flight: Option<(usize, u64)> = None;
    let mut fetching = [false; VMS];
    let mut last_forced: Option<u64> = None;
    let mut version = 0u64;
    let mut body = String::new();
    let mut failures = 0u32;

    for (step, op) in input.ops.iter().enumerate().take(64) {
        match op {
            Op::Advance(ms) => now += u64::from(*ms),
            Op::Race(n) => store.races.set(*n % 4),
            Op::Claim { vm, unknown_kid } => {
                let i = *vm as usize % VMS;
                let before = vms[i].read().expect("read").expect("record exists").0;
                let trigger = if *unknown_kid { Trigger::UnknownKid } else { Trigger::Scheduled };
                let claim = vms[i].try_claim(now, trigger).expect("claim");
                match claim {
                    Claim::Started => {
                        if let Some((holder, until)) = in_flight {
                            assert!(now >= until, "step {step}: VM {i} started while VM {holder} fetches until {until} (now {now})");
                        }
                        if *unknown_kid {
                            if let Some(t) = last_forced {
                                assert!(
                                    now - t >= jwks.min_refetch_interval_s * 1000,
                                    "step {step}: forced refetch too soon"
                                );
                            }
                            last_forced = Some(now);
                        } else {
                            assert!(
                                now >= before.next_fetch_ms,
                                "step {step}: scheduled fetch before it was due"
                            );
                        }
                        let rec = vms[i].read().expect("read").expect("record").0;
                        assert!(rec.fetching_until_ms > now);
                        assert!(rec.fetching_until_ms <= now + jwks.timeout_ms + 1000);
                        in_flight = Some((i, rec.fetching_until_ms));
                        fetching = [false; VMS];
                        fetching[i] = true;
                    }
                    Claim::Busy => {
                        // At most 3 lost races against 8 attempts: busy only while a claim holds.
                        assert!(
                            in_flight.is_some_and(|(_, until)| now < until),
                            "step {step}: Busy with no fetch in flight (now {now}, {in_flight:?})"
                        );
                    }
                    Claim::NotDue { next_fetch_ms } => {
                        assert!(
                            !*unknown_kid && now < next_fetch_ms,
                            "step {step}: NotDue at {now} for {next_fetch_ms}"
                        );
                    }
                    Claim::RateLimited => {
                        let t = last_forced.expect("rate limited without a forced refetch");
                        assert!(*unknown_kid && now - t < jwks.min_refetch_interval_s * 1000);
                    }
                }
            }
            Op::Abandon { vm } => {
                let i = *vm as usize % VMS;
                fetching[i] = false;
            }
            Op::Complete { vm, ok, max_age } => {
                let i = *vm as usize % VMS;
                // Only a VM that is fetching completes a fetch, and only while its claim holds
                // (past the claim the host would have timed the callout out).
                let Some((holder, until)) = in_flight else { continue };
                if holder != i || !fetching[i] || now >= until {
                    continue;
                }
                // A lost race here is retried inside complete().
                let result = if *ok {
                    Ok((format!("body-{step}"), max_age.map(u64::from)))
                } else {
                    Err("HTTP 500".to_string())
                };
                let Ok(rec) = vms[i].complete(now, &result) else {
                    // Eight lost races in a row: allowed to give up; the claim expires.
                    fetching[i] = false;
                    continue;
                };
                fetching[i] = false;
                in_flight = None;
                assert_eq!(rec.fetching_until_ms, 0);
                match &result {
                    Ok((b, age)) => {
                        version += 1;
                        body.clone_from(b);
                        failures = 0;
                        let lifetime = vms[i].lifetime_s(*age);
                        let bounds = match age {
                            Some(_) => jwks.min_cache_duration_s..=jwks.max_cache_duration_s,
                            None => jwks.cache_duration_s..=jwks.cache_duration_s,
                        };
                        assert!(bounds.contains(&lifetime));
                        let refresh = rec.next_fetch_ms - now;
                        assert!(
                            refresh > 0 && refresh < lifetime * 1000,
                            "step {step}: refresh in {refresh} ms for lifetime {lifetime} s"
                        );
                    }
                    Err(_) => {
                        failures += 1;
                        let delay = rec.next_fetch_ms - now;
                        let want = jwks
                            .retry_initial_ms
                            .saturating_mul(1u64 << (failures - 1).min(32))
                            .min(jwks.retry_max_ms);
                        assert_eq!(delay, want, "step {step}: backoff after {failures} failures");
                    }
                }
                assert_eq!(
                    (rec.version, rec.body.as_str(), rec.failures),
                    (version, body.as_str(), failures)
                );
            }
        }
        let (rec, _) = vms[0].read().expect("read").expect("record");
        assert_eq!(
            (rec.version, rec.body.as_str()),
            (version, body.as_str()),
            "step {step}: published state"
        );
    }
});
