//! Key-set fetching shared by every worker VM of one Envoy process.
//!
//! Each worker thread runs its own VM, but they share the host's key-value store. One record
//! in it holds the last good key-set body and the fetch schedule; a VM that wants a fetch
//! claims it with compare-and-swap, so one fetch happens per process per period whatever
//! `--concurrency` is. The others pick the new body up from the record.
//!
//! Time is passed in (milliseconds since the epoch); the store is a trait so the schedule is
//! tested here with an in-memory store.

use serde::{Deserialize, Serialize};

use crate::config::{Discovery, JwksConfig};
use crate::keys::KeySet;
use crate::rsa_verify::RsaKeyPolicy;
use crate::url::HttpUrl;

/// The host's shared key-value store with compare-and-swap (`proxy_get/set_shared_data`).
pub trait SharedStore {
    /// The value and its CAS token, `None` when the key does not exist.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String>;
    /// Writes `value`; with `cas` `Some`, only if the value is unchanged since that token.
    /// Returns `Ok(false)` on a CAS mismatch.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, String>;
}

/// The shared record. `version` 0 means no key set was ever loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedRecord {
    pub version: u64,
    pub body: String,
    /// When the next fetch is due: a refresh before expiry, or a retry after failures.
    pub next_fetch_ms: u64,
    /// A fetch is in flight until then (its timeout plus slack); 0 when none.
    pub fetching_until_ms: u64,
    /// When the last unknown-`kid` refetch started (rate limit).
    pub last_forced_ms: u64,
    pub failures: u32,
    /// When the last fetch failed (0: never). Requests waiting for a first key set give up
    /// when a fetch fails after they started waiting, rather than waiting out their timeout.
    #[serde(default)]
    pub last_failed_ms: u64,
    /// With discovery: the key-set path the issuer's metadata last named (empty: none yet),
    /// so an unknown-`kid` refetch goes straight to the key set.
    #[serde(default)]
    pub jwks_path: String,
}

/// Why a VM wants a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The schedule: first load, refresh before expiry, retry after a failure.
    Scheduled,
    /// A token named a `kid` the set lacks.
    UnknownKid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This VM must fetch now.
    Started,
    /// Another fetch is in flight; its result will be published.
    Busy,
    /// Nothing is due before this time.
    NotDue { next_fetch_ms: u64 },
    /// An unknown-`kid` refetch happened less than the minimum interval ago.
    RateLimited,
}

/// A finished fetch: the body and its `Cache-Control: max-age`, or why it failed.
pub type FetchResult = Result<(String, Option<u64>), String>;

/// Extra time a claimed fetch may take beyond its timeout before others take over.
const FETCH_SLACK_MS: u64 = 1000;
const CAS_ATTEMPTS: usize = 8;

pub struct JwksSync<'a, S: SharedStore> {
    store: &'a S,
    key: &'a str,
    config: &'a JwksConfig,
}

impl<'a, S: SharedStore> JwksSync<'a, S> {
    pub fn new(store: &'a S, config: &'a JwksConfig) -> Self {
        // Keyed by where the keys come from and whose they are, so providers never mix.
        JwksSync { store, key: &config.shared_key, config }
    }

    /// Creates the record if it does not exist. Runs at configuration time, before any VM
    /// claims a fetch, because the host cannot create a key atomically.
    pub fn init(&self) -> Result<(), String> {
        if self.store.get(self.key)?.is_none() {
            self.write(&SharedRecord::default(), None)?;
        }
        Ok(())
    }

    pub fn read(&self) -> Result<Option<(SharedRecord, u32)>, String> {
        match self.store.get(self.key)? {
            None => Ok(None),
            Some((bytes, cas)) => serde_json::from_slice(&bytes)
                .map(|record| Some((record, cas)))
                .map_err(|e| format!("shared key-set record unreadable: {e}")),
        }
    }

    fn write(&self, record: &SharedRecord, cas: Option<u32>) -> Result<bool, String> {
        let bytes = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        self.store.set(self.key, &bytes, cas)
    }

    /// Tries to claim the fetch for this VM.
    pub fn try_claim(&self, now_ms: u64, trigger: Trigger) -> Result<Claim, String> {
        for _ in 0..CAS_ATTEMPTS {
            let Some((mut record, cas)) = self.read()? else {
                self.init()?;
                continue;
            };
            if record.fetching_until_ms > now_ms {
                return Ok(Claim::Busy);
            }
            match trigger {
                Trigger::Scheduled if now_ms < record.next_fetch_ms => {
                    return Ok(Claim::NotDue { next_fetch_ms: record.next_fetch_ms })
                }
                Trigger::UnknownKid
                    if record.last_forced_ms > 0
                        && now_ms.saturating_sub(record.last_forced_ms)
                            < self.config.min_refetch_interval_s.saturating_mul(1000) =>
                {
                    return Ok(Claim::RateLimited)
                }
                Trigger::UnknownKid => record.last_forced_ms = now_ms,
                Trigger::Scheduled => {}
            }
            record.fetching_until_ms = now_ms + self.config.fetch_budget_ms() + FETCH_SLACK_MS;
            if self.write(&record, Some(cas))? {
                return Ok(Claim::Started);
            }
        }
        // Lost every race: someone else is busy with the record.
        Ok(Claim::Busy)
    }

    /// Records the result of this VM's fetch. A success publishes the body as a new version;
    /// a failure keeps the last good body and schedules a retry with backoff.
    pub fn complete(&self, now_ms: u64, result: &FetchResult) -> Result<SharedRecord, String> {
        for _ in 0..CAS_ATTEMPTS {
            let (mut record, cas) = self.read()?.unwrap_or_default();
            record.fetching_until_ms = 0;
            match result {
                Ok((body, max_age)) => {
                    let lifetime_ms = self.lifetime_s(*max_age).saturating_mul(1000);
                    // An unchanged body keeps its version: nobody re-parses, caches stay warm.
                    if record.version == 0 || record.body != *body {
                        record.version += 1;
                        record.body.clone_from(body);
                    }
                    // Refresh before expiry, so tokens never meet stale keys.
                    record.next_fetch_ms = now_ms + lifetime_ms / 10 * 9;
                    record.failures = 0;
                }
                Err(_) => {
                    record.last_failed_ms = now_ms;
                    record.failures = record.failures.saturating_add(1);
                    record.next_fetch_ms = now_ms + self.backoff_ms(record.failures);
                }
            }
            let cas = if cas == 0 { None } else { Some(cas) };
            if self.write(&record, cas)? {
                return Ok(record);
            }
        }
        Err("could not update the shared key-set record".into())
    }

    /// Remembers the key-set path discovery found, for the next unknown-`kid` refetch.
    pub fn set_jwks_path(&self, path: &str) -> Result<(), String> {
        for _ in 0..CAS_ATTEMPTS {
            let (mut record, cas) = self.read()?.unwrap_or_default();
            if record.jwks_path == path {
                return Ok(());
            }
            record.jwks_path = path.to_string();
            let cas = if cas == 0 { None } else { Some(cas) };
            if self.write(&record, cas)? {
                return Ok(());
            }
        }
        Err("could not update the shared key-set record".into())
    }

    /// The key-set lifetime: the response's max-age within the configured bounds, else the
    /// configured default.
    pub fn lifetime_s(&self, max_age: Option<u64>) -> u64 {
        match max_age {
            Some(age) => {
                age.clamp(self.config.min_cache_duration_s, self.config.max_cache_duration_s)
            }
            None => self.config.cache_duration_s,
        }
    }

    /// Exponential backoff: initial, doubled per further failure, capped.
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        let doublings = failures.saturating_sub(1).min(32);
        self.config.retry_initial_ms.saturating_mul(1u64 << doublings).min(self.config.retry_max_ms)
    }
}

/// Judges the answer to a key-set fetch: its status, its size against `max_body_bytes`, then
/// its body (read only once the rest passed) as a key set. Returns the body text and the
/// parsed set, or why the answer is unusable (for the operator's log).
pub fn judge_response(
    status: Option<&str>,
    body_size: usize,
    max_body_bytes: usize,
    policy: &RsaKeyPolicy,
    read_body: impl FnOnce() -> Result<Option<Vec<u8>>, String>,
) -> Result<(String, KeySet), String> {
    match status {
        None => return Err("no response (connection failure or timeout)".into()),
        Some("200") => {}
        Some(other) => return Err(format!("HTTP status {other}")),
    }
    if body_size > max_body_bytes {
        return Err(format!(
            "body of {body_size} bytes exceeds jwks.max_body_bytes ({max_body_bytes})"
        ));
    }
    let body = match read_body() {
        Ok(Some(body)) => body,
        Ok(None) => return Err("empty body".into()),
        Err(why) => return Err(format!("cannot read the body: {why}")),
    };
    let keys = KeySet::parse_with(&body, policy).map_err(|e| e.to_string())?;
    let text = String::from_utf8(body).map_err(|_| "body is not UTF-8".to_string())?;
    Ok((text, keys))
}

/// Which of the issuer's metadata documents a discovery callout asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryForm {
    /// `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0).
    OpenId,
    /// `/.well-known/oauth-authorization-server<issuer path>` (RFC 8414).
    OAuth,
}

impl DiscoveryForm {
    pub fn path(self, discovery: &Discovery) -> &str {
        match self {
            DiscoveryForm::OpenId => &discovery.openid_path,
            DiscoveryForm::OAuth => &discovery.oauth_path,
        }
    }
}

/// What a fetch does after a discovery document's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryStep {
    /// Fetch the key set at this path (on the issuer's authority, through the cluster).
    FetchKeys { path: String },
    /// The OpenID form is not served: ask for the RFC 8414 form.
    TryOAuthForm,
    /// The fetch failed, with why (for the operator's log).
    Fail(String),
}

/// Judges the answer to a discovery callout: status, size, then the body as a metadata
/// document whose `issuer` is exactly the configured one and whose `jwks_uri` is on the
/// issuer's scheme and authority (the callout goes through `jwks.cluster`, which points at the
/// issuer's host; a key set elsewhere would be asked of the wrong server).
pub fn judge_discovery(
    form: DiscoveryForm,
    discovery: &Discovery,
    status: Option<&str>,
    body_size: usize,
    max_body_bytes: usize,
    read_body: impl FnOnce() -> Result<Option<Vec<u8>>, String>,
) -> DiscoveryStep {
    let fail = |why: String| DiscoveryStep::Fail(format!("discovery: {why}"));
    match (status, form) {
        (None, _) => return fail("no response (connection failure or timeout)".into()),
        (Some("200"), _) => {}
        (Some("404"), DiscoveryForm::OpenId) => return DiscoveryStep::TryOAuthForm,
        (Some(other), _) => return fail(format!("HTTP status {other}")),
    }
    if body_size > max_body_bytes {
        return fail(format!(
            "body of {body_size} bytes exceeds jwks.max_body_bytes ({max_body_bytes})"
        ));
    }
    let body = match read_body() {
        Ok(Some(body)) => body,
        Ok(None) => return fail("empty body".into()),
        Err(why) => return fail(format!("cannot read the body: {why}")),
    };
    let Ok(serde_json::Value::Object(document)) = serde_json::from_slice(&body) else {
        return fail("the metadata document is not a JSON object".into());
    };
    match document.get("issuer").and_then(|v| v.as_str()) {
        Some(issuer) if issuer == discovery.issuer => {}
        Some(issuer) => {
            return fail(format!(
                "the document's issuer {issuer:?} is not the configured {:?}; refused",
                discovery.issuer
            ))
        }
        None => return fail("the document has no issuer".into()),
    }
    let Some(jwks_uri) = document.get("jwks_uri").and_then(|v| v.as_str()) else {
        return fail("the document has no jwks_uri".into());
    };
    let url = match HttpUrl::parse(jwks_uri) {
        Ok(url) => url,
        Err(why) => return fail(format!("jwks_uri {jwks_uri:?} {why}")),
    };
    if url.scheme != discovery.scheme || !url.authority.eq_ignore_ascii_case(&discovery.authority) {
        return fail(format!(
            "jwks_uri {jwks_uri:?} is not on the issuer's {}://{}; refused, because the \
             callout goes through jwks.cluster, which points at the issuer's host (set \
             jwks.uri and a cluster for that host instead)",
            discovery.scheme, discovery.authority
        ));
    }
    DiscoveryStep::FetchKeys { path: url.path_and_query }
}

/// `max-age` from a `Cache-Control` value; `no-store`/`no-cache` count as zero.
pub fn max_age(cache_control: &str) -> Option<u64> {
    let mut age = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "no-store" | "no-cache" => return Some(0),
            "max-age" => age = value.trim().trim_matches('"').parse::<u64>().ok(),
            _ => {}
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    #[derive(Default)]
    struct MemoryStore {
        map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        next_cas: RefCell<u32>,
    }

    impl SharedStore for MemoryStore {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
            Ok(self.map.borrow().get(key).cloned())
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, String> {
            let mut map = self.map.borrow_mut();
            if let (Some(cas), Some((_, current))) = (cas, map.get(key)) {
                if cas != *current {
                    return Ok(false);
                }
            }
            *self.next_cas.borrow_mut() += 1;
            let token = *self.next_cas.borrow();
            map.insert(key.to_string(), (value.to_vec(), token));
            Ok(true)
        }
    }

    fn jwks_config() -> JwksConfig {
        let v = serde_json::json!({
            "issuer": "i", "audiences": ["a"],
            "jwks": {"cluster": "c", "uri": "http://h/certs", "timeout_ms": 1000,
                     "min_refetch_interval_s": 30, "retry_initial_ms": 500, "retry_max_ms": 4000},
            "resource_metadata": {"resource": "http://r/mcp", "authorization_servers": ["http://i"]}
        });
        crate::config::FilterConfig::parse(v.to_string().as_bytes())
            .unwrap()
            .providers
            .remove(0)
            .jwks
    }

    #[test]
    fn two_vms_one_fetch() {
        let store = MemoryStore::default();
        let cfg = jwks_config();
        let vm1 = JwksSync::new(&store, &cfg);
        let vm2 = JwksSync::new(&store, &cfg);
        vm1.init().unwrap();
        vm2.init().unwrap();
        assert_eq!(vm1.try_claim(1000, Trigger::Scheduled).unwrap(), Claim::Started);
        assert_eq!(vm2.try_claim(1000, Trigger::Scheduled).unwrap(), Claim::Busy);
        assert_eq!(vm2.try_claim(1500, Trigger::UnknownKid).unwrap(), Claim::Busy);
        let rec = vm1.complete(1200, &Ok(("{\"keys\":[]}".into(), None))).unwrap();
        assert_eq!(rec.version, 1);
        assert_eq!(rec.next_fetch_ms, 1200 + 270_000);
        let (seen, _) = vm2.read().unwrap().unwrap();
        assert_eq!(seen.body, "{\"keys\":[]}");
        assert_eq!(
            vm2.try_claim(2000, Trigger::Scheduled).unwrap(),
            Claim::NotDue { next_fetch_ms: 271_200 }
        );
        assert_eq!(vm2.try_claim(271_200, Trigger::Scheduled).unwrap(), Claim::Started);
    }

    #[test]
    fn init_does_not_clobber() {
        let store = MemoryStore::default();
        let cfg = jwks_config();
        let vm1 = JwksSync::new(&store, &cfg);
        vm1.init().unwrap();
        vm1.try_claim(1, Trigger::Scheduled).unwrap();
        vm1.complete(2, &Ok(("body".into(), Some(60)))).unwrap();
        JwksSync::new(&store, &cfg).init().unwrap();
        assert_eq!(vm1.read().unwrap().unwrap().0.version, 1);
    }

    #[test]
    fn abandoned_claim_expires() {
        let store = MemoryStore::default();
        let cfg = jwks_config();
        let s = JwksSync::new(&store, &cfg);
        s.init().unwrap();
        assert_eq!(s.try_claim(0, Trigger::Scheduled).unwrap(), Claim::Started);
        assert_eq!(s.try_claim(1999, Trigger::Scheduled).unwrap(), Claim::Busy);
        assert_eq!(s.try_claim(2000, Trigger::Scheduled).unwrap(), Claim::Started);
    }

    #[test]
    fn failures_back_off_and_keep_the_body() {
        let store = MemoryStore::default();
        let cfg = jwks_config();
        let s = JwksSync::new(&store, &cfg);
        s.init().unwrap();
        s.try_claim(0, Trigger::Scheduled).unwrap();
        s.complete(10, &Ok(("good".into(), None))).unwrap();
        let mut now = 300_000;
        let mut delays = vec![];
        for _ in 0..5 {
            assert_eq!(s.try_claim(now, Trigger::Scheduled).unwrap(), Claim::Started);
            let rec = s.complete(now, &Err("500".into())).unwrap();
            assert_eq!(rec.body, "good");
            assert_eq!(rec.version, 1);
            delays.push(rec.next_fetch_ms - now);
            now = rec.next_fetch_ms;
        }
        assert_eq!(delays, vec![500, 1000, 2000, 4000, 4000]);
        s.try_claim(now, Trigger::Scheduled).unwrap();
        let rec = s.complete(now, &Ok(("good".into(), None))).unwrap();
        assert_eq!((rec.version, rec.failures), (1, 0), "same body, same version");
        s.try_claim(rec.next_fetch_ms, Trigger::Scheduled).unwrap();
        let rec = s.complete(rec.next_fetch_ms, &Ok(("new".into(), None))).unwrap();
        assert_eq!((rec.version, rec.failures), (2, 0));
    }

    #[test]
    fn unknown_kid_refetch_is_rate_limited() {
        let store = MemoryStore::default();
        let cfg = jwks_config();
        let s = JwksSync::new(&store, &cfg);
        s.init().unwrap();
        s.try_claim(0, Trigger::Scheduled).unwrap();
        s.complete(0, &Ok(("k".into(), None))).unwrap();
        assert_eq!(s.try_claim(5_000, Trigger::UnknownKid).unwrap(), Claim::Started);
        s.complete(5_100, &Ok(("k2".into(), None))).unwrap();
        for t in [5_200, 20_000, 34_999] {
            assert_eq!(s.try_claim(t, Trigger::UnknownKid).unwrap(), Claim::RateLimited);
        }
        assert_eq!(s.try_claim(35_000, Trigger::UnknownKid).unwrap(), Claim::Started);
    }

    #[test]
    fn lifetime_and_max_age() {
        let store = MemoryStore::default();
        let cfg = jwks_config();
        let s = JwksSync::new(&store, &cfg);
        assert_eq!(s.lifetime_s(None), 300);
        assert_eq!(s.lifetime_s(Some(0)), 30);
        assert_eq!(s.lifetime_s(Some(600)), 600);
        assert_eq!(s.lifetime_s(Some(10_000_000)), 86_400);
        assert_eq!(max_age("public, max-age=600"), Some(600));
        assert_eq!(max_age("Max-Age=\"20\""), Some(20));
        assert_eq!(max_age("no-cache, max-age=600"), Some(0));
        assert_eq!(max_age("max-age=abc"), None);
        assert_eq!(max_age("public"), None);
    }

    #[test]
    fn judge_discovery_checks_issuer_and_authority() {
        let mut v = serde_json::json!({
            "issuer": "http://idp:8080/realms/r", "audiences": ["a"], "jwks": {"cluster": "c"},
            "resource_metadata": {"resource": "http://r/mcp", "authorization_servers": ["http://i"]}
        });
        let cfg = crate::config::FilterConfig::parse(v.to_string().as_bytes())
            .unwrap()
            .providers
            .remove(0)
            .jwks;
        let d = cfg.discovery.as_ref().unwrap();
        let judge = |form, status: Option<&str>, doc: serde_json::Value| {
            let body = doc.to_string().into_bytes();
            judge_discovery(form, d, status, body.len(), 1 << 20, || Ok(Some(body)))
        };
        let doc = |issuer: &str, jwks_uri: &str| serde_json::json!({"issuer": issuer, "jwks_uri": jwks_uri});
        let good = doc("http://idp:8080/realms/r", "http://IDP:8080/realms/r/certs?x=1");
        assert_eq!(
            judge(DiscoveryForm::OpenId, Some("200"), good.clone()),
            DiscoveryStep::FetchKeys { path: "/realms/r/certs?x=1".into() }
        );
        assert_eq!(
            judge(DiscoveryForm::OpenId, Some("404"), good.clone()),
            DiscoveryStep::TryOAuthForm
        );
        let fails = |step: DiscoveryStep, needle: &str| match step {
            DiscoveryStep::Fail(why) => assert!(why.contains(needle), "{why}"),
            other => panic!("{other:?}"),
        };
        fails(judge(DiscoveryForm::OAuth, Some("404"), good.clone()), "HTTP status 404");
        fails(judge(DiscoveryForm::OpenId, None, good.clone()), "no response");
        fails(judge(DiscoveryForm::OpenId, Some("500"), good), "HTTP status 500");
        fails(
            judge(
                DiscoveryForm::OpenId,
                Some("200"),
                doc("http://idp:8080/realms/r/", "http://idp:8080/k"),
            ),
            "not the configured",
        );
        fails(
            judge(
                DiscoveryForm::OpenId,
                Some("200"),
                doc("http://idp:8080/realms", "http://idp:8080/k"),
            ),
            "not the configured",
        );
        fails(
            judge(
                DiscoveryForm::OpenId,
                Some("200"),
                doc("http://idp:8080/realms/r", "http://idp:8081/k"),
            ),
            "not on the issuer's",
        );
        fails(
            judge(
                DiscoveryForm::OpenId,
                Some("200"),
                doc("http://idp:8080/realms/r", "https://idp:8080/k"),
            ),
            "not on the issuer's",
        );
        fails(
            judge(DiscoveryForm::OpenId, Some("200"), doc("http://idp:8080/realms/r", "/k")),
            "jwks_uri",
        );
        fails(
            judge(
                DiscoveryForm::OpenId,
                Some("200"),
                serde_json::json!({"issuer": "http://idp:8080/realms/r"}),
            ),
            "no jwks_uri",
        );
        fails(
            judge(DiscoveryForm::OpenId, Some("200"), serde_json::json!(["x"])),
            "not a JSON object",
        );
        let unread = || -> Result<Option<Vec<u8>>, String> { panic!("body read too early") };
        fails(
            judge_discovery(DiscoveryForm::OpenId, d, Some("200"), 2 << 20, 1 << 20, unread),
            "exceeds",
        );
        v["issuer"] = serde_json::json!("http://idp:8080/");
        let cfg = crate::config::FilterConfig::parse(v.to_string().as_bytes())
            .unwrap()
            .providers
            .remove(0)
            .jwks;
        assert_eq!(
            DiscoveryForm::OAuth.path(cfg.discovery.as_ref().unwrap()),
            "/.well-known/oauth-authorization-server"
        );
    }

    #[test]
    fn judge_response_checks_status_size_and_body_in_that_order() {
        let jwks = crate::testkeys::keycloak_jwks().to_string().into_bytes();
        let unread = || -> Result<Option<Vec<u8>>, String> { panic!("body read too early") };
        assert!(judge_response(None, 10, 100, &RsaKeyPolicy::default(), unread)
            .unwrap_err()
            .contains("no response"));
        assert_eq!(
            judge_response(Some("404"), 10, 100, &RsaKeyPolicy::default(), unread).unwrap_err(),
            "HTTP status 404"
        );
        assert!(judge_response(Some("200"), 101, 100, &RsaKeyPolicy::default(), unread)
            .unwrap_err()
            .contains("exceeds"));
        assert_eq!(
            judge_response(Some("200"), 0, 100, &RsaKeyPolicy::default(), || Ok(None)).unwrap_err(),
            "empty body"
        );
        assert!(judge_response(Some("200"), 3, 100, &RsaKeyPolicy::default(), || Err(
            "gone".into()
        ))
        .unwrap_err()
        .contains("gone"));
        assert!(judge_response(Some("200"), 3, 100, &RsaKeyPolicy::default(), || Ok(Some(
            br#"{"keys":[]}"#.to_vec()
        )))
        .is_err());
        let (text, keys) =
            judge_response(Some("200"), jwks.len(), 1 << 20, &RsaKeyPolicy::default(), || {
                Ok(Some(jwks.clone()))
            })
            .unwrap();
        assert_eq!(text.as_bytes(), jwks.as_slice());
        assert!(!keys.keys.is_empty());
    }
}
