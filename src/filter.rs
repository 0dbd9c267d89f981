//! The host glue: the only module that talks to proxy-wasm. It gathers request facts, asks
//! [`authorize::decide`], and carries the decision out; it runs the shared key-set fetch.
//!
//! Hostcalls are made through `proxy_wasm::hostcalls`, which return `Result`, never through
//! the trait conveniences that unwrap: a panic would kill the VM and fail every later request.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use log::{debug, error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};

use crate::authorize::VerdictCache;
use crate::authorize::{self, Decision, Outcome, RequestFacts, WaitReason};
use crate::config::FilterConfig;
use crate::error::TokenError;
use crate::jwks_sync::{self, Claim, FetchResult, JwksSync, SharedStore, Trigger};
use crate::keys::KeySet;
use crate::response::{self, LocalResponse, Responses};

/// How often each VM looks at the shared key-set record and at waiting requests.
const TICK: Duration = Duration::from_millis(100);

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(Root { context_id, vm: Rc::new(RefCell::new(None)) })
    });
}}

/// Per-VM state, shared by the root context and the HTTP contexts of one worker.
struct Vm {
    config: Rc<FilterConfig>,
    responses: Responses,
    keys: Option<Rc<KeySet>>,
    version: u64,
    /// Requests paused until keys arrive, by HTTP context id.
    pending: BTreeMap<u32, Pending>,
    /// The token of the key-set callout this VM has in flight.
    fetch_token: Option<u32>,
    metrics: Metrics,
    cache: VerdictCache,
    /// Seconds since the epoch, as of the last tick.
    clock_s: u64,
}

#[derive(Clone, Copy)]
struct Pending {
    since_ms: u64,
    reason: WaitReason,
    version_at_wait: u64,
}

type SharedVm = Rc<RefCell<Option<Vm>>>;

impl Vm {
    /// Installs a key set; cached verdicts of keys that left the set go with them.
    fn install(&mut self, keys: KeySet, version: u64) {
        self.cache.retain_keys(&keys);
        self.keys = Some(Rc::new(keys));
        self.version = version;
    }
}

struct Root {
    context_id: u32,
    vm: SharedVm,
}

struct Http {
    context_id: u32,
    vm: SharedVm,
}

struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        match hostcalls::get_shared_data(key) {
            Ok((Some(value), cas)) => Ok(Some((value, cas.unwrap_or(0)))),
            Ok((None, _)) => Ok(None),
            Err(status) => Err(format!("get_shared_data failed: {status:?}")),
        }
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, String> {
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(true),
            Err(Status::CasMismatch) => Ok(false),
            Err(status) => Err(format!("set_shared_data failed: {status:?}")),
        }
    }
}

/// Counters, defined once per VM. Names appear in Envoy as `wasmcustom.mcp_auth.*`.
/// Increments are kept here and handed to the host on each tick (every 100 ms), which saves a
/// hostcall on every request.
#[derive(Default)]
struct Metrics {
    /// (name, host metric id, increments since the last flush), `allowed` first. A scan that
    /// compares lengths first beats an ordered map here: its comparisons are byte loops in wasm.
    counters: Vec<(&'static str, u32, u64)>,
}

/// Counters named `mcp_auth.<name>`.
const COUNTERS: [&str; 4] = ["allowed", "metadata_served", "jwks_fetch.ok", "jwks_fetch.failed"];
/// Refusals other than a token's, named `mcp_auth.denied.<reason>` like the token reasons.
const DENY_REASONS: [&str; 5] = [
    "missing_token",
    "invalid_request",
    "insufficient_scope",
    "jwks_unavailable",
    "method_not_allowed",
];

impl Metrics {
    fn define() -> Metrics {
        let plain = COUNTERS.iter().map(|name| (*name, format!("mcp_auth.{name}")));
        let denied = DENY_REASONS
            .into_iter()
            .chain(TokenError::ALL.iter().map(|e| e.reason()))
            .map(|reason| (reason, format!("mcp_auth.denied.{reason}")));
        let mut counters = Vec::new();
        for (name, full) in plain.chain(denied) {
            match hostcalls::define_metric(MetricType::Counter, &full) {
                Ok(id) => counters.push((name, id, 0)),
                Err(status) => warn!("cannot define metric {full}: {status:?}"),
            }
        }
        Metrics { counters }
    }

    fn count(&mut self, name: &str) {
        if let Some((_, _, pending)) = self.counters.iter_mut().find(|(n, _, _)| *n == name) {
            *pending += 1;
        }
    }

    fn outcome(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Allowed => self.count("allowed"),
            Outcome::Metadata => self.count("metadata_served"),
            Outcome::Denied(reason) => self.count(reason),
            Outcome::Rejected(error) => self.count(error.reason()),
        }
    }

    fn flush(&mut self) {
        for (_, id, pending) in &mut self.counters {
            if *pending > 0 {
                let _ =
                    hostcalls::increment_metric(*id, i64::try_from(*pending).unwrap_or(i64::MAX));
                *pending = 0;
            }
        }
    }
}

/// A header value as text: the bytes themselves when they are UTF-8 (no copy: this is the
/// kilobyte-long token on every request), else with invalid sequences replaced by U+FFFD.
fn utf8_or_replaced(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        on_jwks_response(&self.vm, token_id, body_size);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => Vec::new(),
            Err(status) => {
                error!("cannot read the plugin configuration: {status:?}");
                return false;
            }
        };
        let config = match FilterConfig::parse(&bytes) {
            Ok(config) => config,
            Err(e) => {
                error!("{e}; refusing to start");
                return false;
            }
        };
        if let Err(e) = JwksSync::new(&HostStore, &config.jwks).init() {
            error!("{e}");
            return false;
        }
        if let Err(status) = hostcalls::set_tick_period(TICK) {
            error!("cannot set the tick period: {status:?}");
            return false;
        }
        info!(
            "configured for issuer {} (audiences {:?}), key set {} via cluster {}, root context {}",
            config.issuer, config.audiences, config.jwks.uri, config.jwks.cluster, self.context_id
        );
        let responses = Responses::new(&config);
        // Follow the host's level for this plugin, so per-request debug lines cost nothing
        // unless an operator asks for them (`--component-log-level wasm:debug`).
        if let Ok(level) = hostcalls::get_log_level() {
            proxy_wasm::set_log_level(level);
        }
        let cache = VerdictCache::new(config.token_cache_capacity, config.token_cache_max_bytes);
        *self.vm.borrow_mut() = Some(Vm {
            clock_s: now_ms() / 1000,
            cache,
            config: Rc::new(config),
            responses,
            keys: None,
            version: 0,
            pending: BTreeMap::new(),
            fetch_token: None,
            metrics: Metrics::define(),
        });
        // The first fetch starts on the first tick: a callout dispatched from inside
        // on_configure is never answered in Envoy.
        true
    }

    fn on_tick(&mut self) {
        let now_s = now_ms() / 1000;
        with_vm(&self.vm, |vm| vm.clock_s = now_s);
        sync_keys(&self.vm);
        expire_pending(&self.vm);
        with_vm(&self.vm, |vm| vm.metrics.flush());
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http { context_id, vm: Rc::clone(&self.vm) }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        on_jwks_response(&self.vm, token_id, body_size);
    }
}

// `make wasm` drops the exports of every proxy-wasm callback not implemented here, so Envoy
// does not enter the VM for them on each request: a callback added to these impls needs its
// export added to scripts/wasm_exports.py (tests/test_wasm_module.py checks the two agree).
impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        handle_request(&self.vm, self.context_id, true)
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        // A request that went away while waiting must not be resumed later.
        if let Ok(mut vm) = self.vm.try_borrow_mut() {
            if let Some(vm) = vm.as_mut() {
                vm.pending.remove(&self.context_id);
            }
        }
    }
}

/// Decides the current request (the effective context) and carries the decision out.
/// Returns `Pause` when the request waits or was answered here.
fn handle_request(shared: &SharedVm, context_id: u32, may_refetch: bool) -> Action {
    // Two lookups instead of the whole header map: this is the per-request hot path. Envoy
    // joins repeated `Authorization` headers with a comma, which `extract` refuses.
    // Read as bytes: the SDK's string getters panic on a value that is not UTF-8, which a
    // client can send in any header. Such bytes become U+FFFD here and fail the token checks.
    let get = |name: &str| {
        hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name)
            .ok()
            .flatten()
            .map(utf8_or_replaced)
    };
    let path = get(":path").unwrap_or_default();
    let authorization = get("authorization");
    let authorization = authorization.as_deref().map(|value| [value]);
    let authorization: &[&str] = authorization.as_ref().map_or(&[], |one| one.as_slice());
    // The method matters only for the metadata paths; skip the lookup everywhere else.
    let is_metadata = with_vm(shared, |vm| vm.config.is_metadata_path(&path)).unwrap_or(false);
    let method = if is_metadata { get(":method").unwrap_or_default() } else { String::new() };
    let facts = RequestFacts { method: &method, path: &path, authorization };

    let decided = with_vm(shared, |vm| {
        // The clock read on the last tick (at most 100 ms old, against a skew of seconds)
        // saves a hostcall per request.
        let now_s = vm.clock_s;
        authorize::decide(
            &facts,
            &vm.config,
            &vm.responses,
            vm.keys.as_deref(),
            now_s,
            may_refetch,
            &mut vm.cache,
        )
    });
    let Some(decision) = decided else {
        return deny_unconfigured();
    };

    match decision {
        Decision::Allow(changes) => {
            for name in &changes.remove {
                let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, None);
            }
            for (name, value) in &changes.set {
                let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
            }
            with_vm(shared, |vm| vm.metrics.outcome(Outcome::Allowed));
            Action::Continue
        }
        Decision::Respond(resp, outcome) => {
            // The path is logged without its query: a client may have put a token there.
            let log_path = || {
                facts
                    .path
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect::<String>()
            };
            match outcome {
                Outcome::Rejected(error) => {
                    debug!("denied {}: {} ({})", log_path(), error.reason(), error.detail())
                }
                Outcome::Denied(reason) => debug!("denied {}: {reason}", log_path()),
                Outcome::Allowed | Outcome::Metadata => {}
            }
            with_vm(shared, |vm| vm.metrics.outcome(outcome));
            send(&resp);
            Action::Pause
        }
        Decision::Wait(reason) => wait_for_keys(shared, context_id, reason),
    }
}

fn deny_unconfigured() -> Action {
    error!("request before configuration; refusing");
    send(&response::keys_unavailable(1));
    Action::Pause
}

fn with_vm<T>(shared: &SharedVm, f: impl FnOnce(&mut Vm) -> T) -> Option<T> {
    shared.try_borrow_mut().ok().and_then(|mut guard| guard.as_mut().map(f))
}

fn send(resp: &LocalResponse) {
    let headers: Vec<(&str, &str)> = resp.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    if let Err(status) = hostcalls::send_http_response(resp.status, headers, Some(&resp.body)) {
        warn!("cannot send the local response: {status:?}");
    }
}

/// Parks the request until keys arrive (or a refetch finishes), starting a fetch if due.
fn wait_for_keys(shared: &SharedVm, context_id: u32, reason: WaitReason) -> Action {
    let now = now_ms();
    let Some((config, version)) = with_vm(shared, |vm| (Rc::clone(&vm.config), vm.version)) else {
        return deny_unconfigured();
    };
    let sync = JwksSync::new(&HostStore, &config.jwks);
    let trigger = match reason {
        WaitReason::NoKeys => Trigger::Scheduled,
        WaitReason::UnknownKid => Trigger::UnknownKid,
    };
    match sync.try_claim(now, trigger) {
        Ok(Claim::Started) => start_fetch(shared, &config, now),
        Ok(Claim::Busy) => {}
        Ok(Claim::NotDue { next_fetch_ms }) => {
            // Another VM may already have published keys this VM has not picked up yet.
            if install_published(shared) {
                return handle_request(shared, context_id, reason == WaitReason::NoKeys);
            }
            if next_fetch_ms > now + config.jwks.timeout_ms {
                return unavailable(shared, (next_fetch_ms - now).div_ceil(1000));
            }
        }
        Ok(Claim::RateLimited) => return handle_request(shared, context_id, false),
        Err(e) => {
            warn!("{e}");
            if reason == WaitReason::UnknownKid {
                return handle_request(shared, context_id, false);
            }
        }
    }
    with_vm(shared, |vm| {
        vm.pending.insert(context_id, Pending { since_ms: now, reason, version_at_wait: version })
    });
    Action::Pause
}

fn unavailable(shared: &SharedVm, retry_after_s: u64) -> Action {
    debug!("no signing keys available; answering 503");
    with_vm(shared, |vm| vm.metrics.outcome(Outcome::Denied("jwks_unavailable")));
    send(&response::keys_unavailable(retry_after_s));
    Action::Pause
}

/// Sends the key-set request through the configured cluster.
fn start_fetch(shared: &SharedVm, config: &FilterConfig, now: u64) {
    let jwks = &config.jwks;
    let headers = vec![
        (":method", "GET"),
        (":path", jwks.path.as_str()),
        (":authority", jwks.authority.as_str()),
        ("accept", "application/json"),
        ("user-agent", "mcp-auth-filter"),
    ];
    match hostcalls::dispatch_http_call(
        &jwks.cluster,
        headers,
        None,
        vec![],
        Duration::from_millis(jwks.timeout_ms),
    ) {
        Ok(token) => {
            with_vm(shared, |vm| vm.fetch_token = Some(token));
        }
        Err(status) => {
            let why = format!("cannot call cluster `{}`: {status:?}", jwks.cluster);
            finish_fetch(shared, config, now, Err(why), None);
        }
    }
}

fn on_jwks_response(shared: &SharedVm, token_id: u32, body_size: usize) {
    let Some((config, ours)) = with_vm(shared, |vm| {
        let ours = vm.fetch_token == Some(token_id);
        if ours {
            vm.fetch_token = None;
        }
        (Rc::clone(&vm.config), ours)
    }) else {
        return;
    };
    if !ours {
        return;
    }
    let now = now_ms();
    // Only the two headers needed, as bytes: the SDK's string getters panic on a value that
    // is not UTF-8, and the key-set server's other headers are none of the filter's business.
    let header = |name: &str| {
        hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, name)
            .ok()
            .flatten()
            .map(utf8_or_replaced)
    };
    let status = header(":status");
    let status = status.as_deref();
    let max_age = header("cache-control").and_then(|v| jwks_sync::max_age(&v));
    let parsed = match status {
        None => Err("no response (connection failure or timeout)".to_string()),
        Some("200") if body_size > config.jwks.max_body_bytes => Err(format!(
            "body of {body_size} bytes exceeds jwks.max_body_bytes ({})",
            config.jwks.max_body_bytes
        )),
        Some("200") => {
            match hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size) {
                Ok(Some(body)) => match KeySet::parse(&body) {
                    Ok(keys) => match String::from_utf8(body) {
                        Ok(text) => Ok((text, keys)),
                        Err(_) => Err("body is not UTF-8".to_string()),
                    },
                    Err(e) => Err(e.to_string()),
                },
                Ok(None) => Err("empty body".to_string()),
                Err(status) => Err(format!("cannot read the body: {status:?}")),
            }
        }
        Some(other) => Err(format!("HTTP status {other}")),
    };
    match parsed {
        Ok((body, keys)) => finish_fetch(shared, &config, now, Ok((body, max_age)), Some(keys)),
        Err(why) => finish_fetch(shared, &config, now, Err(why), None),
    }
}

/// Publishes the fetch result to the other VMs, installs good keys here and wakes waiters.
fn finish_fetch(
    shared: &SharedVm,
    config: &FilterConfig,
    now: u64,
    result: FetchResult,
    keys: Option<KeySet>,
) {
    let sync = JwksSync::new(&HostStore, &config.jwks);
    let record = sync.complete(now, &result);
    match (&result, record) {
        (Ok(_), Ok(record)) => {
            if let Some(keys) = keys {
                log_key_set(&keys, record.version);
                with_vm(shared, |vm| {
                    vm.metrics.count("jwks_fetch.ok");
                    vm.install(keys, record.version);
                });
            }
        }
        (Err(why), record) => {
            let retry = record.map(|r| r.next_fetch_ms.saturating_sub(now)).unwrap_or(0);
            warn!(
                "key-set fetch from {} failed: {why}; keeping the last good keys, retry in {retry} ms",
                config.jwks.uri
            );
            with_vm(shared, |vm| vm.metrics.count("jwks_fetch.failed"));
        }
        (Ok(_), Err(e)) => warn!("{e}"),
    }
    if result.is_ok() {
        resume_pending(shared, now);
    } else {
        expire_pending(shared);
    }
}

fn log_key_set(keys: &KeySet, version: u64) {
    let kids: Vec<&str> = keys.kids().collect();
    info!("key set version {version} loaded: {} keys {kids:?}", keys.keys.len());
    for skipped in &keys.skipped {
        info!("key set entry skipped: {skipped}");
    }
}

/// Picks up a key set another VM published. Returns true when a newer one was installed.
fn install_published(shared: &SharedVm) -> bool {
    let Some((config, version)) = with_vm(shared, |vm| (Rc::clone(&vm.config), vm.version)) else {
        return false;
    };
    let record = match JwksSync::new(&HostStore, &config.jwks).read() {
        Ok(Some((record, _))) if record.version > version => record,
        Ok(_) => return false,
        Err(e) => {
            warn!("{e}");
            return false;
        }
    };
    match KeySet::parse(record.body.as_bytes()) {
        Ok(keys) => {
            with_vm(shared, |vm| vm.install(keys, record.version));
            true
        }
        Err(e) => {
            warn!("published key set version {} unusable: {e}", record.version);
            false
        }
    }
}

/// The tick's key-set work: pick up what others published, start a due refresh.
fn sync_keys(shared: &SharedVm) {
    let now = now_ms();
    if install_published(shared) {
        resume_pending(shared, now);
    }
    let Some(config) = with_vm(shared, |vm| Rc::clone(&vm.config)) else {
        return;
    };
    match JwksSync::new(&HostStore, &config.jwks).try_claim(now, Trigger::Scheduled) {
        Ok(Claim::Started) => start_fetch(shared, &config, now),
        Ok(_) => {}
        Err(e) => warn!("{e}"),
    }
}

/// Re-decides every waiting request (keys changed, or a fetch finished).
fn resume_pending(shared: &SharedVm, now: u64) {
    let waiting: Vec<(u32, Pending)> =
        with_vm(shared, |vm| std::mem::take(&mut vm.pending).into_iter().collect())
            .unwrap_or_default();
    let version = with_vm(shared, |vm| vm.version).unwrap_or(0);
    let limit = timeout_ms(shared);
    for (id, pending) in waiting {
        let progressed = version > pending.version_at_wait;
        let timed_out = now.saturating_sub(pending.since_ms) >= limit;
        if !progressed && !timed_out && pending.reason == WaitReason::NoKeys {
            // Still nothing to decide with: keep waiting.
            with_vm(shared, |vm| vm.pending.insert(id, pending));
            continue;
        }
        resume(shared, id, pending);
    }
}

/// The tick's waiting-room check: time out requests that waited too long, and settle
/// unknown-`kid` requests whose refetch ended without bringing their key.
fn expire_pending(shared: &SharedVm) {
    let now = now_ms();
    let limit = timeout_ms(shared);
    let Some(config) = with_vm(shared, |vm| Rc::clone(&vm.config)) else {
        return;
    };
    let (fetching, last_failed_ms) = match JwksSync::new(&HostStore, &config.jwks).read() {
        Ok(Some((record, _))) => (record.fetching_until_ms > now, record.last_failed_ms),
        _ => (false, 0),
    };
    let due: Vec<(u32, Pending)> = with_vm(shared, |vm| {
        let due: Vec<(u32, Pending)> = vm
            .pending
            .iter()
            .filter(|(_, p)| {
                now.saturating_sub(p.since_ms) >= limit
                    || (p.reason == WaitReason::UnknownKid && !fetching)
                    // The fetch it was waiting for failed: answer 503 now.
                    || (p.reason == WaitReason::NoKeys && !fetching && last_failed_ms >= p.since_ms)
            })
            .map(|(id, p)| (*id, *p))
            .collect();
        for (id, _) in &due {
            vm.pending.remove(id);
        }
        due
    })
    .unwrap_or_default();
    for (id, pending) in due {
        resume(shared, id, pending);
    }
}

fn resume(shared: &SharedVm, id: u32, pending: Pending) {
    if hostcalls::set_effective_context(id).is_err() {
        return; // The request is gone.
    }
    let has_keys = with_vm(shared, |vm| vm.keys.is_some()).unwrap_or(false);
    let action = if !has_keys {
        let retry = 1 + with_vm(shared, |vm| vm.config.jwks.retry_initial_ms / 1000).unwrap_or(0);
        unavailable(shared, retry)
    } else {
        handle_request(shared, id, pending.reason == WaitReason::NoKeys)
    };
    if action == Action::Continue {
        if let Err(status) = hostcalls::resume_http_request() {
            warn!("cannot resume request {id}: {status:?}");
        }
    }
}

fn timeout_ms(shared: &SharedVm) -> u64 {
    with_vm(shared, |vm| vm.config.jwks.timeout_ms).unwrap_or(5000)
}
