//! One VM's state and its reactions to the host's callbacks: a request arrives, a tick, the
//! key-set fetch answers, a request goes away. Generic over [`Host`], so the state machines
//! (waiting for keys, the shared fetch) run in tests against [`crate::host::MemoryHost`]; the
//! wasm glue only forwards callbacks here.
//!
//! The decisions themselves come from the pure modules: [`authorize::decide`] for a request,
//! [`waiting`] for parked requests, [`JwksSync`] for the fetch schedule.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use log::{debug, info, warn};

use crate::authorize::{
    self, Decision, Outcome, Policy, RequestFacts, UpstreamChanges, VerdictCache, WaitReason,
};
use crate::config::{FilterConfig, Provider};
use crate::error::DenyReason;
use crate::host::{Host, Lookup, RequestHeaders};
use crate::jwks_sync::{self, Claim, DiscoveryForm, DiscoveryStep, FetchResult, JwksSync, Trigger};
use crate::keys::{KeySet, SkipReason};
use crate::mcp::lists::{self, ListMemo, ListRewrite};
use crate::mcp::policy::{self as mcp_policy, McpHeaders, McpPolicy, McpVerdict};
use crate::mcp::sse::SseRewriter;
use crate::mcp::PendingList;
use crate::providers::{FetchStage, Providers};
use crate::response::{self, LocalResponse, Responses};
use crate::sessions::{Digest16, SessionCheck, SessionTable};
use crate::stats::{Counter, Stats};
use crate::waiting::{self, FetchState, Resolution, WaitPlan, Waiter};

/// What the host does with the request after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The request waits, or was answered here.
    Pause,
}

/// A request is decided again after a wait at most this many times in one callback; the
/// plans make two the most that happens (a wait, then a decision without refetch).
const MAX_DECISIONS: usize = 4;

/// A request the `mcp` policy follows past its headers.
enum McpStage {
    /// Allowed by its token: its body is read to the end, then judged with the routing
    /// headers read when its headers arrived.
    AwaitingBody(Rc<UpstreamChanges>, RoutingHeaders<'static>),
    /// Forwarded: its response answers list requests whose items the policy may hide.
    Lists { lists: Vec<PendingList>, grant: Rc<UpstreamChanges>, body: ResponseBody },
}

/// The request headers the `mcp` policy judges a POST on, as the request carried them.
#[derive(Debug, Default)]
struct RoutingHeaders<'a> {
    content_encoding: Option<Cow<'a, str>>,
    mcp_method: Option<Cow<'a, str>>,
    mcp_name: Option<Cow<'a, str>>,
}

impl RoutingHeaders<'_> {
    fn view(&self) -> McpHeaders<'_> {
        McpHeaders {
            content_encoding: self.content_encoding.as_deref(),
            mcp_method: self.mcp_method.as_deref(),
            mcp_name: self.mcp_name.as_deref(),
        }
    }

    fn into_owned(self) -> RoutingHeaders<'static> {
        let own = |value: Option<Cow<'_, str>>| value.map(|v| Cow::Owned(v.into_owned()));
        RoutingHeaders {
            content_encoding: own(self.content_encoding),
            mcp_method: own(self.mcp_method),
            mcp_name: own(self.mcp_name),
        }
    }
}

/// How a list response's body is being rewritten.
enum ResponseBody {
    /// Response headers not seen yet.
    Unknown,
    /// `application/json`: buffered to the end, then rewritten whole.
    Json,
    /// `text/event-stream`: rewritten as it streams.
    Sse(SseRewriter),
}

pub struct Worker {
    config: Rc<FilterConfig>,
    responses: Responses,
    /// Each provider's keys, fetch in flight and waiting requests, by provider index.
    providers: Providers,
    stats: Stats,
    cache: VerdictCache,
    /// Seconds since the epoch as of the last tick (`None`: the clock could not be read).
    /// At most a tick old, against a skew of seconds; saves a hostcall per request.
    clock_s: Option<u64>,
    /// Requests the `mcp` policy follows, by context id.
    mcp: BTreeMap<u32, McpStage>,
    /// Waiting requests whose body already ended (or that have none).
    bodies_ended: BTreeSet<u32>,
    /// Requests to the MCP endpoint without a session id: their subject, to bind a session id
    /// the response hands out.
    session_starts: BTreeMap<u32, Digest16>,
    /// The list item arrays read before (a server sends the same list again and again).
    list_memo: Rc<ListMemo>,
}

impl Worker {
    /// Parses the plugin configuration and prepares the shared key-set record.
    pub fn configure(host: &impl Host, bytes: &[u8]) -> Result<Worker, String> {
        let config = FilterConfig::parse(bytes).map_err(|e| format!("{e}; refusing to start"))?;
        for provider in &config.providers {
            JwksSync::new(host, &provider.jwks).init()?;
            let jwks = &provider.jwks;
            let source = if jwks.discovery.is_some() { "discovered from" } else { "at" };
            info!(
                "configured for issuer {} (audiences {:?}), key set {source} {} via cluster {}",
                provider.issuer, provider.audiences, jwks.uri, jwks.cluster
            );
        }
        Ok(Worker {
            providers: Providers::new(config.providers.len()),
            responses: Responses::new(&config),
            cache: VerdictCache::new(config.token_cache_capacity, config.token_cache_max_bytes),
            config: Rc::new(config),
            stats: Stats::define(host),
            clock_s: host.now_ms().map(|ms| ms / 1000),
            mcp: BTreeMap::new(),
            bodies_ended: BTreeSet::new(),
            session_starts: BTreeMap::new(),
            list_memo: Rc::default(),
        })
    }

    /// The periodic work: the clock, keys other VMs published, a due fetch, waiters whose
    /// time is up, counters.
    pub fn on_tick(&mut self, host: &impl Host) {
        let now = host.now_ms();
        if now.is_none() && self.clock_s.is_some() {
            warn!("cannot read the host clock; refusing requests until it can be read");
        }
        self.clock_s = now.map(|ms| ms / 1000);
        if let Some(now) = now {
            // Every provider, also at startup: metadata requests need no keys, tokens do.
            for provider in 0..self.providers.len() {
                self.sync_keys(host, now, provider);
                self.expire_waiters(host, now, provider);
            }
        }
        self.stats.flush(host);
    }

    /// A request's headers arrived (it is the effective context). `end_of_stream`: it has
    /// no body.
    pub fn on_request_headers(
        &mut self,
        host: &impl Host,
        context_id: u32,
        end_of_stream: bool,
    ) -> Flow {
        let flow = self.handle(host, context_id, true, end_of_stream);
        if end_of_stream && self.providers.is_waiting(context_id) {
            self.bodies_ended.insert(context_id);
        }
        flow
    }

    /// Part of a request's body arrived; `body_size` is all the host holds of it so far.
    pub fn on_request_body(
        &mut self,
        host: &impl Host,
        context_id: u32,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if let Some(McpStage::AwaitingBody(..)) = self.mcp.get(&context_id) {
            let config = Rc::clone(&self.config);
            let Some(policy) = config.mcp.as_ref().map(|m| &m.0) else { return Flow::Continue };
            if !end_of_stream && body_size <= policy.max_body_bytes() {
                return Flow::Pause; // Buffer until the whole body is there.
            }
            let Some(McpStage::AwaitingBody(grant, routing)) = self.mcp.remove(&context_id) else {
                return Flow::Continue; // Unreachable: the stage was just seen.
            };
            let body = read_body(host, policy);
            return self.judge(host, context_id, &grant, &routing.view(), Some(&body));
        }
        if self.providers.is_waiting(context_id) {
            // Buffered while its token waits for keys; judged when it is decided.
            if end_of_stream {
                self.bodies_ended.insert(context_id);
            }
            return Flow::Pause;
        }
        Flow::Continue
    }

    /// The upstream's response headers arrived.
    pub fn on_response_headers(&mut self, host: &impl Host, context_id: u32) -> Flow {
        if self.session_starts.is_empty() && self.mcp.is_empty() {
            return Flow::Continue; // Nothing pending for any request: the common case.
        }
        if let Some(subject) = self.session_starts.remove(&context_id) {
            self.bind_session(host, &subject);
        }
        let Some(McpStage::Lists { lists, body, .. }) = self.mcp.get_mut(&context_id) else {
            return Flow::Continue;
        };
        let content_type = host.response_header("content-type").unwrap_or_default();
        let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let max_bytes = self.config.mcp.as_ref().map_or(0, |m| m.0.max_body_bytes());
        let encoded = host
            .response_header("content-encoding")
            .is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"));
        let answers_lists = matches!(media.as_str(), "application/json" | "text/event-stream");
        if encoded && answers_lists {
            // Compressed although not asked to be (see `carry_out`): unreadable here, and a
            // compressed stream would pass the SSE reader unjudged. Buffered and answered by
            // the JSON rewriter, which replaces what it cannot read with JSON-RPC errors.
            *body = ResponseBody::Json;
            host.set_response_header("content-encoding", None);
            host.set_response_header("content-type", Some("application/json"));
            host.set_response_header("content-length", None);
            host.set_response_header("cache-control", Some("private, no-store"));
            return Flow::Continue;
        }
        match media.as_str() {
            "application/json" => *body = ResponseBody::Json,
            "text/event-stream" => {
                *body = ResponseBody::Sse(SseRewriter::new(
                    lists.clone(),
                    max_bytes,
                    Rc::clone(&self.list_memo),
                ));
            }
            // Not a JSON-RPC answer (an error page, 202 Accepted): nothing to shorten.
            _ => {
                self.mcp.remove(&context_id);
                return Flow::Continue;
            }
        }
        // The rewritten body may be shorter, in JSON and in a stream alike: a stream sent with
        // a Content-Length (a server that buffers it) would otherwise leave the client waiting.
        host.set_response_header("content-length", None);
        // A list shortened for one caller must not be served to another from a cache.
        host.set_response_header("cache-control", Some("private, no-store"));
        Flow::Continue
    }

    /// Part of the upstream's response body arrived; `body_size` is what the host holds.
    pub fn on_response_body(
        &mut self,
        host: &impl Host,
        context_id: u32,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        let config = Rc::clone(&self.config);
        let Some(policy) = config.mcp.as_ref().map(|m| &m.0) else { return Flow::Continue };
        let Some(McpStage::Lists { lists, grant, body }) = self.mcp.get_mut(&context_id) else {
            return Flow::Continue;
        };
        let Some(caller) = grant.caller.as_ref() else { return Flow::Continue };
        let keep = policy.list_judge(caller);
        match body {
            ResponseBody::Unknown => Flow::Continue,
            ResponseBody::Json if !end_of_stream => Flow::Pause,
            ResponseBody::Json => {
                let data = host.response_body(body_size).unwrap_or_default();
                match lists::rewrite_json_body(&data, lists, &keep, &self.list_memo) {
                    ListRewrite::Unchanged => {}
                    ListRewrite::Filtered { body, removed } => {
                        host.set_response_body(body_size, &body);
                        self.stats.add(Counter::McpListFiltered, removed as u64);
                    }
                    ListRewrite::Unjudgeable { body } => {
                        warn!("a list response could not be checked; replaced by an error");
                        host.set_response_body(body_size, &body);
                    }
                }
                self.mcp.remove(&context_id);
                Flow::Continue
            }
            ResponseBody::Sse(rewriter) => {
                let removed_before = rewriter.removed();
                let chunk = host.response_body(body_size).unwrap_or_default();
                let mut out = rewriter.push(&chunk, &keep);
                if end_of_stream {
                    out.extend(rewriter.finish(&keep));
                }
                if out != chunk {
                    host.set_response_body(body_size, &out);
                }
                let removed = rewriter.removed().saturating_sub(removed_before);
                self.stats.add(Counter::McpListFiltered, removed as u64);
                if end_of_stream {
                    self.mcp.remove(&context_id);
                }
                Flow::Continue
            }
        }
    }

    /// The request went away: if it was waiting, it must never be resumed.
    pub fn on_request_gone(&mut self, context_id: u32) {
        self.providers.leave(context_id);
        self.mcp.remove(&context_id);
        self.bodies_ended.remove(&context_id);
        self.session_starts.remove(&context_id);
    }

    /// A request with a valid token: its session id, if any, must be bound to the token's
    /// subject or unknown (a GET's too: a hijacker can open the server's stream with one);
    /// without one, the response to a POST may start a session. Any path, not only the MCP
    /// endpoint's: Envoy sends every path to the server, and which spellings a server takes
    /// for its endpoint (`/mcp/`, `/MCP`) is beyond the filter's knowledge.
    /// Returns the flow when the request was answered here.
    fn check_session(
        &mut self,
        host: &impl Host,
        context_id: u32,
        headers: &RequestHeaders,
        is_post: bool,
        grant: &UpstreamChanges,
    ) -> Option<Flow> {
        let config = self.config.session_binding?;
        let subject = grant.subject.as_ref()?;
        let found = headers.lookup("mcp-session-id");
        let Some(session_id) = found.text() else {
            // A server hands out a session id in its answer to `initialize`, which is a POST:
            // only a POST's response is looked at for one (no response-side work for a GET).
            if is_post {
                self.session_starts.insert(context_id, *subject);
            }
            return None;
        };
        let now_ms = self.clock_s?.saturating_mul(1000);
        match SessionTable::new(host, config).check(&session_id, subject, now_ms) {
            Ok(SessionCheck::OtherSubject) => {
                debug!("refused a session id bound to another subject");
                Some(self.refuse(host, DenyReason::SessionMismatch, &response::session_not_found()))
            }
            Ok(SessionCheck::Same | SessionCheck::Unknown) => {
                // Only the first `Mcp-Session-Id` was judged: a second copy naming another
                // subject's session would otherwise reach a server that reads the last.
                pin_judged_copy(host, "mcp-session-id", &found, &session_id);
                None
            }
            Err(e) => {
                // The binding cannot be judged: fail closed.
                warn!("{e}");
                Some(self.unavailable(host, 1))
            }
        }
    }

    /// Records the session id a response hands out, bound to the request's subject.
    fn bind_session(&mut self, host: &impl Host, subject: &Digest16) {
        let (Some(config), Some(session_id)) =
            (self.config.session_binding, host.response_header("mcp-session-id"))
        else {
            return;
        };
        let now_ms = self.clock_s.unwrap_or(0).saturating_mul(1000);
        if let Err(e) = SessionTable::new(host, config).record(&session_id, subject, now_ms) {
            warn!("{e}");
        }
    }

    /// An HTTP callout answered; ours if it is a provider's key-set fetch in flight.
    pub fn on_call_response(&mut self, host: &impl Host, token: u32, body_size: usize) {
        let Some(index) = self.providers.take_fetch(token) else { return };
        let config = Rc::clone(&self.config);
        let (Some(provider), Some(state)) =
            (config.providers.get(index), self.providers.get(index))
        else {
            return;
        };
        let jwks = &provider.jwks;
        let Some(now) = host.now_ms() else {
            warn!("cannot read the host clock; dropping the key-set response");
            return;
        };
        // Only the headers needed: the key-set server's others are none of our business.
        let status = host.call_response_header(":status");
        if let (FetchStage::Discovery(form), Some(discovery)) =
            (&state.fetch_stage, jwks.discovery.as_ref())
        {
            let step = jwks_sync::judge_discovery(
                *form,
                discovery,
                status.as_deref(),
                body_size,
                jwks.max_body_bytes,
                || host.call_response_body(body_size),
            );
            match step {
                DiscoveryStep::FetchKeys { path } => {
                    if let Err(e) = JwksSync::new(host, jwks).set_jwks_path(&path) {
                        warn!("{e}");
                    }
                    self.dispatch(host, now, index, FetchStage::Keys { path }, None);
                }
                DiscoveryStep::TryOAuthForm => {
                    let stage = FetchStage::Discovery(DiscoveryForm::OAuth);
                    self.dispatch(host, now, index, stage, None);
                }
                DiscoveryStep::Fail(why) => self.finish_fetch(host, now, index, Err(why), None),
            }
            return;
        }
        let max_age =
            host.call_response_header("cache-control").and_then(|v| jwks_sync::max_age(&v));
        let judged = jwks_sync::judge_response(
            status.as_deref(),
            body_size,
            jwks.max_body_bytes,
            &jwks.rsa_key_policy,
            || host.call_response_body(body_size),
        );
        match judged {
            Ok((body, keys)) => {
                self.finish_fetch(host, now, index, Ok((body, max_age)), Some(keys));
            }
            Err(why) => self.finish_fetch(host, now, index, Err(why), None),
        }
    }

    /// Answers a request the worker cannot judge (no configuration, or state in use).
    pub fn refuse_unjudged(host: &impl Host) {
        host.send_response(&response::keys_unavailable(1));
    }

    /// Decides the effective request and carries the decision out. `body_ended`: the host
    /// holds the whole body already (or there is none).
    fn handle(
        &mut self,
        host: &impl Host,
        context_id: u32,
        may_refetch: bool,
        body_ended: bool,
    ) -> Flow {
        let Some(now_s) = self.clock_s else {
            return self.refuse(host, DenyReason::ClockUnavailable, &response::keys_unavailable(1));
        };
        // The whole map in one host call: the hot path reads `:path`, `Authorization`,
        // `:method`, `Mcp-Session-Id` and, for an MCP POST, its routing headers.
        let Some(headers) = host.request_headers() else {
            Worker::refuse_unjudged(host);
            return Flow::Pause;
        };
        let path = headers.lookup(":path").text().unwrap_or_default();
        let method = headers.lookup(":method").text().unwrap_or_default();
        // Every copy: `extract` refuses more than one credential, and the comma-joined value
        // a host may make of repeated headers.
        let authorization = headers.texts("authorization");
        let authorization: Vec<&str> = authorization.iter().map(|value| value.as_ref()).collect();
        let mut facts = RequestFacts {
            method: &method,
            path: &path,
            authorization: &authorization,
            now_s,
            may_refetch,
        };
        for _ in 0..MAX_DECISIONS {
            let policy =
                Policy { config: &self.config, responses: &self.responses, keys: &self.providers };
            match authorize::decide(&facts, &policy, &mut self.cache) {
                Decision::Allow(changes) => {
                    let is_post = method == "POST";
                    if let Some(flow) =
                        self.check_session(host, context_id, &headers, is_post, &changes)
                    {
                        return flow;
                    }
                    for name in &changes.remove {
                        // A header the request does not carry needs no removal.
                        if headers.lookup(name).count > 0 {
                            host.set_request_header(name, None);
                        }
                    }
                    for (name, value) in &changes.set {
                        host.set_request_header(name, Some(value));
                    }
                    self.stats.count(Counter::Allowed);
                    let request = (&headers, path.as_ref(), is_post);
                    return self.after_token(host, context_id, request, &changes, body_ended);
                }
                Decision::Respond(response, outcome) => {
                    log_refusal(&path, outcome);
                    self.count(outcome);
                    host.send_response(&response);
                    return Flow::Pause;
                }
                Decision::Wait(reason, provider) => {
                    match self.wait(host, context_id, reason, provider) {
                        Some(may_refetch) => facts.may_refetch = may_refetch,
                        None => return Flow::Pause,
                    }
                }
            }
        }
        warn!("request still undecided after {MAX_DECISIONS} attempts; answering 503");
        self.unavailable(host, 1)
    }

    /// A valid token's request to the MCP endpoint meets the `mcp` policy: a POST is judged
    /// on its JSON-RPC body (or its routing headers alone, when trusted), anything else
    /// passes on the token.
    fn after_token(
        &mut self,
        host: &impl Host,
        context_id: u32,
        (headers, path, is_post): (&RequestHeaders, &str, bool),
        grant: &Rc<UpstreamChanges>,
        body_ended: bool,
    ) -> Flow {
        let config = Rc::clone(&self.config);
        let Some(policy) = config.mcp_policy_for(path) else { return Flow::Continue };
        if !is_post {
            return Flow::Continue;
        }
        let routing = routing_headers(host, headers);
        if !policy.needs_body(&routing.view()) {
            return self.judge(host, context_id, grant, &routing.view(), None);
        }
        if body_ended {
            let body = read_body(host, policy);
            return self.judge(host, context_id, grant, &routing.view(), Some(&body));
        }
        let stage = McpStage::AwaitingBody(Rc::clone(grant), routing.into_owned());
        self.mcp.insert(context_id, stage);
        Flow::Pause
    }

    /// Asks the `mcp` policy about the request (`body` is `None` when its routing headers
    /// alone decide) and carries the verdict out.
    fn judge(
        &mut self,
        host: &impl Host,
        context_id: u32,
        grant: &Rc<UpstreamChanges>,
        headers: &McpHeaders,
        body: Option<&[u8]>,
    ) -> Flow {
        let config = Rc::clone(&self.config);
        let verdict = match (config.mcp.as_ref(), grant.caller.as_ref()) {
            (Some(mcp), Some(caller)) => mcp.0.judge(headers, body, caller),
            // Every grant made under an `mcp` policy carries its caller: fail closed.
            _ => McpVerdict::Forbidden { id: None, target: None },
        };
        self.carry_out(host, context_id, verdict, grant)
    }

    /// Forwards the request (following its list responses) or answers it with the refusal.
    fn carry_out(
        &mut self,
        host: &impl Host,
        context_id: u32,
        verdict: McpVerdict,
        grant: &Rc<UpstreamChanges>,
    ) -> Flow {
        self.stats.count(Counter::Mcp(verdict.outcome()));
        if log::log_enabled!(log::Level::Debug) {
            // The method and the item's name, never the arguments.
            let (method, item) =
                verdict.target().map_or(("-", None), |t| (t.method.as_str(), t.item.as_deref()));
            debug!("mcp {method:?} {item:?}: {:?}", verdict.outcome());
        }
        match verdict {
            McpVerdict::Forward { lists, .. } => {
                if !lists.is_empty() {
                    // A list is filtered as the server writes it: ask for it uncompressed
                    // (Node's fetch, for one, accepts gzip by default).
                    host.set_request_header("accept-encoding", None);
                    let grant = Rc::clone(grant);
                    let stage = McpStage::Lists { lists, grant, body: ResponseBody::Unknown };
                    self.mcp.insert(context_id, stage);
                }
                Flow::Continue
            }
            refused => {
                if let Some(response) = mcp_policy::response(&refused, &self.config.metadata_url) {
                    host.send_response(&response);
                }
                Flow::Pause
            }
        }
    }

    /// Parks the request until its provider's keys arrive (or a refetch ends), starting a
    /// fetch if due. Returns `Some(may_refetch)` when it should be decided again now instead.
    fn wait(
        &mut self,
        host: &impl Host,
        context_id: u32,
        reason: WaitReason,
        index: usize,
    ) -> Option<bool> {
        let Some(now) = host.now_ms() else {
            self.refuse(host, DenyReason::ClockUnavailable, &response::keys_unavailable(1));
            return None;
        };
        let config = Rc::clone(&self.config);
        let (Some(provider), Some(version)) =
            (config.providers.get(index), self.providers.get(index).map(|s| s.version))
        else {
            // Cannot happen (the index came from the configuration): fail closed.
            self.unavailable(host, 1);
            return None;
        };
        let trigger = match reason {
            WaitReason::NoKeys => Trigger::Scheduled,
            WaitReason::UnknownKid => Trigger::UnknownKid,
        };
        let claim = JwksSync::new(host, &provider.jwks)
            .try_claim(now, trigger)
            .map_err(|e| warn!("{e}"))
            .ok();
        let park = Waiter { since_ms: now, reason, version_at_wait: version };
        match waiting::plan(reason, claim, now, provider.jwks.fetch_budget_ms()) {
            WaitPlan::FetchAndPark => {
                self.start_fetch(host, now, index, trigger, Some(context_id));
                self.park(index, context_id, park);
            }
            WaitPlan::Park => self.park(index, context_id, park),
            WaitPlan::InstallPublished { unavailable_retry_after_s } => {
                if self.install_published(host, index) {
                    return Some(park.may_refetch());
                }
                match unavailable_retry_after_s {
                    Some(retry_after_s) => {
                        self.unavailable(host, retry_after_s);
                    }
                    None => self.park(index, context_id, park),
                }
            }
            WaitPlan::DecideAgain { may_refetch } => return Some(may_refetch),
        }
        None
    }

    fn park(&mut self, index: usize, context_id: u32, waiter: Waiter) {
        if let Some(state) = self.providers.get_mut(index) {
            state.waiting.park(context_id, waiter);
        }
    }

    fn unavailable(&mut self, host: &impl Host, retry_after_s: u64) -> Flow {
        debug!("no signing keys available; answering 503");
        self.refuse(host, DenyReason::JwksUnavailable, &response::keys_unavailable(retry_after_s))
    }

    fn refuse(&mut self, host: &impl Host, reason: DenyReason, response: &LocalResponse) -> Flow {
        self.count(Outcome::Denied(reason));
        host.send_response(response);
        Flow::Pause
    }

    fn count(&mut self, outcome: Outcome) {
        self.stats.count(match outcome {
            Outcome::Allowed => Counter::Allowed,
            Outcome::Metadata => Counter::MetadataServed,
            Outcome::Denied(reason) => Counter::Denied(reason),
            Outcome::Rejected(error) => Counter::Rejected(error),
        });
    }

    /// Starts the fetch of a provider's keys this VM claimed: the key set, or with discovery
    /// the issuer's metadata first (an unknown-`kid` refetch goes straight to the key-set path
    /// last discovered). `current` is the request being handled, if any: it becomes the
    /// effective context again after others resumed.
    fn start_fetch(
        &mut self,
        host: &impl Host,
        now: u64,
        index: usize,
        trigger: Trigger,
        current: Option<u32>,
    ) {
        let config = Rc::clone(&self.config);
        let Some(jwks) = config.providers.get(index).map(|p| &p.jwks) else { return };
        let stage = if jwks.discovery.is_none() {
            FetchStage::Keys { path: jwks.path.clone() }
        } else {
            let known = match trigger {
                Trigger::Scheduled => None,
                Trigger::UnknownKid => JwksSync::new(host, jwks)
                    .read()
                    .ok()
                    .flatten()
                    .map(|(record, _)| record.jwks_path)
                    .filter(|path| !path.is_empty()),
            };
            match known {
                Some(path) => FetchStage::Keys { path },
                None => FetchStage::Discovery(DiscoveryForm::OpenId),
            }
        };
        self.dispatch(host, now, index, stage, current);
    }

    /// Sends one callout of a provider's fetch through its cluster.
    fn dispatch(
        &mut self,
        host: &impl Host,
        now: u64,
        index: usize,
        stage: FetchStage,
        current: Option<u32>,
    ) {
        let config = Rc::clone(&self.config);
        let Some(jwks) = config.providers.get(index).map(|p| &p.jwks) else { return };
        let path = match (&stage, jwks.discovery.as_ref()) {
            (FetchStage::Keys { path }, _) => path.as_str(),
            (FetchStage::Discovery(form), Some(discovery)) => form.path(discovery),
            (FetchStage::Discovery(_), None) => jwks.path.as_str(),
        };
        let headers = [
            (":method", "GET"),
            (":path", path),
            (":authority", jwks.authority.as_str()),
            ("accept", "application/json"),
            ("user-agent", "mcp-auth-filter"),
        ];
        match host.dispatch_call(&jwks.cluster, &headers, jwks.timeout_ms) {
            Ok(token) => {
                if let Some(state) = self.providers.get_mut(index) {
                    state.fetch_token = Some(token);
                    state.fetch_stage = stage;
                }
            }
            Err(status) => {
                let why = format!("cannot call cluster `{}`: {status}", jwks.cluster);
                self.finish_fetch(host, now, index, Err(why), None);
                if let Some(id) = current {
                    host.set_effective_context(id);
                }
            }
        }
    }

    /// Publishes this VM's fetch result for a provider to the others, installs good keys here
    /// and settles the requests that waited for that provider's keys.
    fn finish_fetch(
        &mut self,
        host: &impl Host,
        now: u64,
        index: usize,
        result: FetchResult,
        keys: Option<KeySet>,
    ) {
        let config = Rc::clone(&self.config);
        let Some(provider) = config.providers.get(index) else { return };
        let record = JwksSync::new(host, &provider.jwks).complete(now, &result);
        match (&result, record) {
            (Ok(_), Ok(record)) => {
                if let Some(keys) = keys {
                    log_key_set(provider, &keys, record.version);
                    let refused = keys
                        .skipped
                        .iter()
                        .filter(|k| matches!(k.reason, SkipReason::RsaKey(e) if e.is_policy()))
                        .count();
                    self.stats.add(Counter::KeyRefused, refused as u64);
                    self.stats.count(Counter::JwksFetchOk);
                    self.install(index, keys, record.version);
                }
            }
            (Err(why), record) => {
                let retry = record.map(|r| r.next_fetch_ms.saturating_sub(now)).unwrap_or(0);
                warn!(
                    "key-set fetch of issuer {} from {} failed: {why}; keeping the last good keys, retry in {retry} ms",
                    provider.issuer, provider.jwks.uri
                );
                self.stats.count(Counter::JwksFetchFailed);
            }
            (Ok(_), Err(e)) => warn!("{e}"),
        }
        if result.is_ok() {
            self.resume_after_keys(host, now, index);
        } else {
            self.expire_waiters(host, now, index);
        }
    }

    /// Installs a provider's key set; cached verdicts of its keys that left the set go with
    /// them (other providers' stay).
    fn install(&mut self, index: usize, keys: KeySet, version: u64) {
        self.cache.retain_keys(index, &keys);
        if let Some(state) = self.providers.get_mut(index) {
            state.keys = Some(Rc::new(keys));
            state.version = version;
        }
    }

    /// Picks up a provider's key set another VM published. Returns true when a newer one was
    /// installed.
    fn install_published(&mut self, host: &impl Host, index: usize) -> bool {
        let config = Rc::clone(&self.config);
        let (Some(provider), Some(state)) =
            (config.providers.get(index), self.providers.get(index))
        else {
            return false;
        };
        let record = match JwksSync::new(host, &provider.jwks).read() {
            Ok(Some((record, _))) if record.version > state.version => record,
            Ok(_) => return false,
            Err(e) => {
                warn!("{e}");
                return false;
            }
        };
        match KeySet::parse_with(record.body.as_bytes(), &provider.jwks.rsa_key_policy) {
            Ok(keys) => {
                self.install(index, keys, record.version);
                true
            }
            Err(e) => {
                warn!(
                    "published key set version {} of issuer {} unusable: {e}",
                    record.version, provider.issuer
                );
                false
            }
        }
    }

    /// The tick's work for one provider's keys: pick up what others published, start a due
    /// refresh.
    fn sync_keys(&mut self, host: &impl Host, now: u64, index: usize) {
        if self.install_published(host, index) {
            self.resume_after_keys(host, now, index);
        }
        let config = Rc::clone(&self.config);
        let Some(provider) = config.providers.get(index) else { return };
        match JwksSync::new(host, &provider.jwks).try_claim(now, Trigger::Scheduled) {
            Ok(Claim::Started) => self.start_fetch(host, now, index, Trigger::Scheduled, None),
            Ok(_) => {}
            Err(e) => warn!("{e}"),
        }
    }

    fn resume_after_keys(&mut self, host: &impl Host, now: u64, index: usize) {
        let config = Rc::clone(&self.config);
        let (Some(provider), Some(state)) =
            (config.providers.get(index), self.providers.get_mut(index))
        else {
            return;
        };
        let due = state.waiting.due_after_keys(now, state.version, provider.jwks.fetch_budget_ms());
        self.resume_all(host, provider, index, due);
    }

    /// Settles a provider's waiters whose time is up or whose fetch ended.
    fn expire_waiters(&mut self, host: &impl Host, now: u64, index: usize) {
        let config = Rc::clone(&self.config);
        let (Some(provider), Some(state)) =
            (config.providers.get(index), self.providers.get_mut(index))
        else {
            return;
        };
        if state.waiting.is_empty() {
            return;
        }
        let fetch = match JwksSync::new(host, &provider.jwks).read() {
            Ok(Some((record, _))) => FetchState {
                fetching: record.fetching_until_ms > now,
                last_failed_ms: record.last_failed_ms,
            },
            _ => FetchState::default(),
        };
        let due = state.waiting.due_on_tick(now, provider.jwks.fetch_budget_ms(), fetch);
        self.resume_all(host, provider, index, due);
    }

    fn resume_all(
        &mut self,
        host: &impl Host,
        provider: &Provider,
        index: usize,
        due: Vec<(u32, Waiter)>,
    ) {
        for (id, waiter) in due {
            if !host.set_effective_context(id) {
                continue; // The request is gone.
            }
            let has_keys = self.providers.get(index).is_some_and(|s| s.keys.is_some());
            let flow = match waiting::resolve(&waiter, has_keys) {
                Resolution::Unavailable => {
                    self.unavailable(host, 1 + provider.jwks.retry_initial_ms / 1000)
                }
                Resolution::DecideAgain { may_refetch } => {
                    let body_ended = self.bodies_ended.remove(&id);
                    self.handle(host, id, may_refetch, body_ended)
                }
            };
            if flow == Flow::Continue && !host.resume_request() {
                warn!("cannot resume request {id}");
            }
        }
    }
}

/// The request body the `mcp` policy reads: one byte more than it accepts, so a longer body
/// is seen to be too long.
fn read_body(host: &impl Host, policy: &McpPolicy) -> Vec<u8> {
    host.request_body(policy.max_body_bytes().saturating_add(1)).unwrap_or_default()
}

/// The request headers the `mcp` policy reads (`Content-Encoding`, `Mcp-Method`, `Mcp-Name`),
/// each judged by its first value. A repeated `Mcp-Method` or `Mcp-Name` is pinned to the copy
/// judged: with `Mcp-Name: echo` and `Mcp-Name: secret` a trusted header would be judged
/// `echo` while a server checking the last one against a `secret` body would run it.
fn routing_headers<'a>(host: &impl Host, headers: &'a RequestHeaders) -> RoutingHeaders<'a> {
    let pinned = |name: &str| {
        let found = headers.lookup(name);
        let value = found.text();
        if let Some(value) = value.as_deref() {
            pin_judged_copy(host, name, &found, value);
        }
        value
    };
    RoutingHeaders {
        mcp_method: pinned("mcp-method"),
        mcp_name: pinned("mcp-name"),
        content_encoding: headers.lookup("content-encoding").text(),
    }
}

/// Leaves a repeated header as exactly one copy, `judged` (its first value, the one the filter
/// judged): a server may read another copy. Removing drops every copy and setting then adds
/// the one judged, because a replace may change only the first of several. A single copy is
/// the one judged and is left untouched (no host call).
fn pin_judged_copy(host: &impl Host, name: &str, found: &Lookup, judged: &str) {
    if found.is_repeated() {
        host.set_request_header(name, None);
        host.set_request_header(name, Some(judged));
    }
}

/// The path is logged without its query: a client may have put a token there.
fn log_refusal(path: &str, outcome: Outcome) {
    if !log::log_enabled!(log::Level::Debug) {
        return;
    }
    let path: String = path.split('?').next().unwrap_or_default().chars().take(200).collect();
    match outcome {
        Outcome::Rejected(error) => {
            debug!("denied {path}: {} ({})", error.reason(), error.detail())
        }
        Outcome::Denied(reason) => debug!("denied {path}: {}", reason.reason()),
        Outcome::Allowed | Outcome::Metadata => {}
    }
}

fn log_key_set(provider: &Provider, keys: &KeySet, version: u64) {
    let kids: Vec<&str> = keys.kids().collect();
    info!(
        "key set version {version} loaded for issuer {}: {} keys {kids:?}",
        provider.issuer,
        keys.keys.len()
    );
    for duplicate in &keys.duplicates {
        warn!("key set: {duplicate}");
    }
    for skipped in &keys.skipped {
        info!("key set entry skipped: {skipped}");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::host::MemoryHost;
    use crate::testkeys::{self, keycloak_token, NOW};

    const NOW_MS: u64 = NOW * 1000;

    fn config_bytes() -> Vec<u8> {
        json!({
            "issuer": testkeys::ISSUER,
            "audiences": [testkeys::AUDIENCE],
            "jwks": {"cluster": "idp", "uri": "http://localhost:8080/certs"},
            "resource_metadata": {
                "resource": "http://localhost:9000/mcp",
                "authorization_servers": [testkeys::ISSUER]
            },
            "claims_to_headers": {"sub": "x-mcp-subject"}
        })
        .to_string()
        .into_bytes()
    }

    fn setup() -> (MemoryHost, Worker) {
        let host = MemoryHost::new(NOW_MS);
        let worker = Worker::configure(&host, &config_bytes()).unwrap();
        (host, worker)
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    fn arrive(host: &MemoryHost, worker: &mut Worker, id: u32, token: &str) -> Flow {
        arrive_post(host, id, "/mcp", token, &[]);
        worker.on_request_headers(host, id, false)
    }

    /// A POST to `path` with `token`, then the `extra` headers, handed to the host (not yet to
    /// the worker).
    fn arrive_post(host: &MemoryHost, id: u32, path: &str, token: &str, extra: &[(&str, &str)]) {
        let auth = bearer(token);
        let mut headers = vec![(":path", path), (":method", "POST"), ("authorization", &auth)];
        headers.extend_from_slice(extra);
        host.arrive(id, &headers);
    }

    fn answer_fetch(host: &MemoryHost, worker: &mut Worker, status: &str, body: &Value) {
        let token = host.calls.borrow().last().unwrap().token;
        let body = body.to_string().into_bytes();
        host.respond_to_call(&[(":status", status)], &body);
        worker.on_call_response(host, token, body.len());
    }

    fn status_sent(host: &MemoryHost, id: u32) -> Option<u32> {
        host.request(id).sent.map(|r| r.status)
    }

    #[test]
    fn first_request_waits_for_the_first_key_set_then_continues() {
        let (host, mut worker) = setup();
        assert_eq!(arrive(&host, &mut worker, 1, &keycloak_token()), Flow::Pause);
        assert_eq!(host.calls.borrow().len(), 1, "one fetch dispatched");
        assert_eq!(host.calls.borrow()[0].cluster, "idp");
        assert_eq!(host.calls.borrow()[0].path, "/certs");
        assert!(worker.providers.get(0).unwrap().waiting.contains(1));
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        let request = host.request(1);
        assert_eq!(request.resumed, 1);
        assert!(request.sent.is_none());
        assert_eq!(host.header_of(1, "authorization"), None, "the token does not go upstream");
        assert!(host.header_of(1, "x-mcp-subject").is_some());
        assert!(worker.providers.get(0).unwrap().waiting.is_empty());
        worker.on_tick(&host);
        assert_eq!(host.counter("mcp_auth.allowed"), 1);
        assert_eq!(host.counter("mcp_auth.jwks_fetch.ok"), 1);
    }

    #[test]
    fn a_failed_first_fetch_answers_the_waiter_503_on_the_next_tick() {
        let (host, mut worker) = setup();
        arrive(&host, &mut worker, 1, &keycloak_token());
        answer_fetch(&host, &mut worker, "500", &json!({}));
        // The failure settles the waiter right away: it started waiting before the failure.
        host.advance(100);
        worker.on_tick(&host);
        assert_eq!(status_sent(&host, 1), Some(503));
        assert_eq!(host.request(1).resumed, 0);
        assert_eq!(host.counter("mcp_auth.jwks_fetch.failed"), 1);
        assert_eq!(host.counter("mcp_auth.denied.jwks_unavailable"), 1);
    }

    #[test]
    fn an_unreachable_cluster_fails_the_waiter_too() {
        let (host, mut worker) = setup();
        host.fail_dispatch.set(true);
        assert_eq!(arrive(&host, &mut worker, 1, &keycloak_token()), Flow::Pause);
        host.advance(100);
        worker.on_tick(&host);
        assert_eq!(status_sent(&host, 1), Some(503));
    }

    #[test]
    fn a_waiter_times_out_when_the_fetch_never_answers() {
        let (host, mut worker) = setup();
        arrive(&host, &mut worker, 1, &keycloak_token());
        host.advance(4_900);
        worker.on_tick(&host);
        assert_eq!(status_sent(&host, 1), None);
        host.advance(100);
        worker.on_tick(&host);
        assert_eq!(status_sent(&host, 1), Some(503));
    }

    #[test]
    fn a_request_that_left_while_waiting_is_never_resumed() {
        let (host, mut worker) = setup();
        arrive(&host, &mut worker, 1, &keycloak_token());
        worker.on_request_gone(1);
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        assert_eq!(host.request(1).resumed, 0);
        assert_eq!(status_sent(&host, 1), None);
    }

    #[test]
    fn an_unknown_kid_refetches_once_and_is_judged_by_the_new_set() {
        let (host, mut worker) = setup();
        arrive(&host, &mut worker, 1, &keycloak_token());
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        // A token signed by a key the set does not have yet.
        let rotated = testkeys::mint_rotated(&testkeys::claims());
        host.advance(1000);
        worker.on_tick(&host);
        assert_eq!(arrive(&host, &mut worker, 2, &rotated), Flow::Pause);
        assert_eq!(host.calls.borrow().len(), 2, "an unknown kid refetches");
        let mut set = testkeys::keycloak_jwks();
        set["keys"].as_array_mut().unwrap().push(testkeys::rotated_jwk());
        answer_fetch(&host, &mut worker, "200", &set);
        assert_eq!(host.request(2).resumed, 1);
        // Another unknown kid right after: rate limited, judged at once with what there is.
        let mut header = json!({"alg": "RS256", "typ": "JWT", "kid": "nobody"});
        header["kid"] = json!("nobody");
        let stranger = testkeys::mint(&header, &testkeys::claims());
        assert_eq!(arrive(&host, &mut worker, 3, &stranger), Flow::Pause);
        assert_eq!(status_sent(&host, 3), Some(401));
        assert_eq!(host.calls.borrow().len(), 2);
    }

    #[test]
    fn an_unknown_kid_the_refetch_does_not_bring_is_refused() {
        let (host, mut worker) = setup();
        arrive(&host, &mut worker, 1, &keycloak_token());
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        host.advance(1000);
        let rotated = testkeys::mint_rotated(&testkeys::claims());
        assert_eq!(arrive(&host, &mut worker, 2, &rotated), Flow::Pause);
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        assert_eq!(status_sent(&host, 2), Some(401));
        assert_eq!(host.request(2).resumed, 0);
        worker.on_tick(&host);
        assert_eq!(host.counter("mcp_auth.denied.unknown_key"), 1);
    }

    #[test]
    fn two_vms_share_one_fetch() {
        let (host_a, mut a) = setup();
        let host_b = host_a.sibling();
        let mut b = Worker::configure(&host_b, &config_bytes()).unwrap();
        arrive(&host_a, &mut a, 1, &keycloak_token());
        arrive(&host_b, &mut b, 1, &keycloak_token());
        assert_eq!(host_a.calls.borrow().len() + host_b.calls.borrow().len(), 1);
        answer_fetch(&host_a, &mut a, "200", &testkeys::keycloak_jwks());
        assert_eq!(host_a.request(1).resumed, 1);
        // B learns of the published set on its tick.
        host_b.advance(100);
        b.on_tick(&host_b);
        assert_eq!(host_b.request(1).resumed, 1);
        assert!(host_b.calls.borrow().is_empty());
    }

    #[test]
    fn metadata_is_served_without_a_token() {
        let (host, mut worker) = setup();
        host.arrive(
            1,
            &[(":path", "/.well-known/oauth-protected-resource/mcp"), (":method", "GET")],
        );
        assert_eq!(worker.on_request_headers(&host, 1, true), Flow::Pause);
        assert_eq!(status_sent(&host, 1), Some(200));
        assert!(host.calls.borrow().is_empty());
    }

    #[test]
    fn no_clock_no_decision() {
        let (host, mut worker) = setup();
        host.clock_ms.set(None);
        worker.on_tick(&host);
        assert_eq!(arrive(&host, &mut worker, 1, &keycloak_token()), Flow::Pause);
        assert_eq!(status_sent(&host, 1), Some(503));
        worker.on_tick(&host);
        assert_eq!(host.counter("mcp_auth.denied.clock_unavailable"), 1);
    }

    #[test]
    fn an_oversized_key_set_is_a_failed_fetch() {
        let (host, mut worker) = setup();
        arrive(&host, &mut worker, 1, &keycloak_token());
        let token = host.calls.borrow()[0].token;
        host.respond_to_call(&[(":status", "200")], b"{}");
        worker.on_call_response(&host, token, 10 << 20);
        assert!(worker.providers.get(0).unwrap().keys.is_none());
        host.advance(100);
        worker.on_tick(&host);
        assert_eq!(status_sent(&host, 1), Some(503));
        assert_eq!(host.counter("mcp_auth.jwks_fetch.failed"), 1);
    }

    #[test]
    fn a_foreign_callout_answer_is_ignored() {
        let (host, mut worker) = setup();
        arrive(&host, &mut worker, 1, &keycloak_token());
        host.respond_to_call(
            &[(":status", "200")],
            testkeys::keycloak_jwks().to_string().as_bytes(),
        );
        worker.on_call_response(&host, 999, 10);
        assert!(worker.providers.get(0).unwrap().keys.is_none());
        assert!(worker.providers.get(0).unwrap().waiting.contains(1));
    }

    fn mcp_setup() -> (MemoryHost, Worker) {
        let mut config: Value = serde_json::from_slice(&config_bytes()).unwrap();
        config["mcp"] = json!({
            "rules": ["mcp.tool.name == \"echo\" || \"admin\" in jwt.roles"],
            "scopes": {"tools": {"echo": ["mcp:tools"], "whoami": ["mcp:admin"]}}
        });
        let host = MemoryHost::new(NOW_MS);
        let mut worker = Worker::configure(&host, config.to_string().as_bytes()).unwrap();
        arrive(&host, &mut worker, 100, &keycloak_token());
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        (host, worker)
    }

    fn post(host: &MemoryHost, worker: &mut Worker, id: u32, token: &str, body: &Value) -> Flow {
        assert_eq!(arrive(host, worker, id, token), Flow::Pause, "waits for the body");
        let body = body.to_string().into_bytes();
        host.set_request_body(id, &body[..body.len() / 2]);
        assert_eq!(worker.on_request_body(host, id, body.len() / 2, false), Flow::Pause);
        host.set_request_body(id, &body);
        worker.on_request_body(host, id, body.len(), true)
    }

    fn call(name: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": {}}})
    }

    #[test]
    fn mcp_a_permitted_call_goes_on_after_its_body() {
        let (host, mut worker) = mcp_setup();
        assert_eq!(post(&host, &mut worker, 1, &keycloak_token(), &call("echo")), Flow::Continue);
        assert_eq!(status_sent(&host, 1), None);
        worker.on_tick(&host);
        assert_eq!(host.counter("mcp_auth.mcp.allowed"), 1);
    }

    #[test]
    fn mcp_a_missing_scope_is_a_step_up_challenge() {
        let (host, mut worker) = mcp_setup();
        assert_eq!(post(&host, &mut worker, 1, &keycloak_token(), &call("whoami")), Flow::Pause);
        let sent = host.request(1).sent.unwrap();
        assert_eq!(sent.status, 403);
        let challenge = sent.header("www-authenticate").unwrap();
        assert!(
            challenge.contains(r#"error="insufficient_scope", scope="mcp:admin""#),
            "{challenge}"
        );
    }

    #[test]
    fn mcp_a_rule_refusal_carries_the_request_id() {
        let (host, mut worker) = mcp_setup();
        let admin_scope = testkeys::claims_with(json!({"scope": "mcp:tools mcp:admin"}));
        let token = testkeys::mint(
            &json!({"alg": "RS256", "typ": "JWT", "kid": testkeys::RSA_KID}),
            &admin_scope,
        );
        assert_eq!(post(&host, &mut worker, 1, &token, &call("whoami")), Flow::Pause);
        let sent = host.request(1).sent.unwrap();
        assert_eq!(sent.status, 403);
        assert!(sent.header("www-authenticate").is_none());
        let body: Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(body["id"], 7);
    }

    #[test]
    fn mcp_a_body_that_ended_while_waiting_for_keys_is_judged_on_resume() {
        let mut config: Value = serde_json::from_slice(&config_bytes()).unwrap();
        config["mcp"] = json!({"scopes": {"tools": {"whoami": ["mcp:admin"]}}});
        let host = MemoryHost::new(NOW_MS);
        let mut worker = Worker::configure(&host, config.to_string().as_bytes()).unwrap();
        assert_eq!(arrive(&host, &mut worker, 1, &keycloak_token()), Flow::Pause);
        let body = call("whoami").to_string().into_bytes();
        host.set_request_body(1, &body);
        assert_eq!(worker.on_request_body(&host, 1, body.len(), true), Flow::Pause);
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        assert_eq!(host.request(1).resumed, 0);
        assert_eq!(status_sent(&host, 1), Some(403));
    }

    #[test]
    fn mcp_lists_are_shortened_in_json_and_in_sse() {
        let (host, mut worker) = mcp_setup();
        let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
        let result = json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": [
            {"name": "echo", "inputSchema": {}}, {"name": "whoami", "inputSchema": {}}
        ], "nextCursor": "c1"}});
        // JSON.
        assert_eq!(post(&host, &mut worker, 1, &keycloak_token(), &list), Flow::Continue);
        host.set_response_headers(
            1,
            &[("content-type", "application/json"), ("content-length", "99")],
        );
        assert_eq!(worker.on_response_headers(&host, 1), Flow::Continue);
        let r = host.request(1);
        assert!(r.response_headers.iter().all(|(n, _)| n != "content-length"));
        assert!(r.response_headers.contains(&("cache-control".into(), "private, no-store".into())));
        let bytes = result.to_string().into_bytes();
        host.set_response_chunk(1, &bytes);
        assert_eq!(worker.on_response_body(&host, 1, bytes.len(), true), Flow::Continue);
        let out: Value = serde_json::from_slice(&host.request(1).response_body).unwrap();
        assert_eq!(out["result"]["tools"].as_array().unwrap().len(), 1);
        assert_eq!(out["result"]["nextCursor"], "c1");
        // SSE, in two chunks.
        assert_eq!(post(&host, &mut worker, 2, &keycloak_token(), &list), Flow::Continue);
        host.set_response_headers(
            2,
            &[("content-type", "text/event-stream"), ("content-length", "99")],
        );
        worker.on_response_headers(&host, 2);
        assert!(host.request(2).response_headers.iter().all(|(n, _)| n != "content-length"));
        let event = format!("event: message\ndata: {result}\n\n").into_bytes();
        let (a, b) = event.split_at(10);
        host.set_response_chunk(2, a);
        worker.on_response_body(&host, 2, a.len(), false);
        let first = host.request(2).response_body;
        host.set_response_chunk(2, b);
        worker.on_response_body(&host, 2, b.len(), true);
        let mut all = first;
        all.extend(host.request(2).response_body);
        let text = String::from_utf8(all).unwrap();
        assert!(text.contains("echo") && !text.contains("whoami"), "{text}");
        worker.on_tick(&host);
        assert_eq!(host.counter("mcp_auth.mcp.list_filtered"), 2);
    }

    /// A worker whose `mcp` policy trusts the routing headers, its keys loaded.
    fn trusting_setup() -> (MemoryHost, Worker) {
        let mut config: Value = serde_json::from_slice(&config_bytes()).unwrap();
        config["mcp"] = json!({
            "rules": ["mcp.tool.name == \"echo\""],
            "trust_routing_headers": true
        });
        let host = MemoryHost::new(NOW_MS);
        let mut worker = Worker::configure(&host, config.to_string().as_bytes()).unwrap();
        arrive(&host, &mut worker, 100, &keycloak_token());
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        (host, worker)
    }

    #[test]
    fn mcp_repeated_routing_headers_go_upstream_as_the_one_judged() {
        let (host, mut worker) = trusting_setup();
        let routing = [
            ("mcp-method", "tools/call"),
            ("mcp-method", "tools/list"),
            ("mcp-name", "echo"),
            ("mcp-name", "secret"),
        ];
        arrive_post(&host, 1, "/mcp", &keycloak_token(), &routing);
        // Judged on the first values (as Envoy hands them over), the body not read.
        assert_eq!(worker.on_request_headers(&host, 1, false), Flow::Continue);
        let sent: Vec<(String, String)> =
            host.request(1).headers.into_iter().filter(|(n, _)| n.starts_with("mcp-")).collect();
        assert_eq!(
            sent,
            [("mcp-method".into(), "tools/call".into()), ("mcp-name".into(), "echo".into())]
        );
    }

    #[test]
    fn mcp_lists_are_asked_for_uncompressed_and_a_compressed_one_is_not_passed() {
        let (host, mut worker) = mcp_setup();
        let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
        for (id, media) in [(1, "application/json"), (2, "text/event-stream")] {
            assert_eq!(arrive(&host, &mut worker, id, &keycloak_token()), Flow::Pause);
            host.set_request_header("accept-encoding", Some("gzip, br"));
            let body = list.to_string().into_bytes();
            host.set_request_body(id, &body);
            assert_eq!(worker.on_request_body(&host, id, body.len(), true), Flow::Continue);
            assert_eq!(host.header_of(id, "accept-encoding"), None);
            // A server that compresses anyway.
            host.set_response_headers(id, &[("content-type", media), ("content-encoding", "gzip")]);
            worker.on_response_headers(&host, id);
            let headers = host.request(id).response_headers;
            assert!(headers.iter().all(|(n, _)| n != "content-encoding"), "{headers:?}");
            let compressed = b"\x1f\x8b\x08\x00data: {\"tools\":[]}\n\n";
            host.set_response_chunk(id, compressed);
            assert_eq!(worker.on_response_body(&host, id, compressed.len(), false), Flow::Pause);
            worker.on_response_body(&host, id, compressed.len(), true);
            let out: Value = serde_json::from_slice(&host.request(id).response_body).unwrap();
            assert_eq!(out["id"], 3);
            assert!(out["error"].is_object(), "{out}");
        }
    }

    #[test]
    fn mcp_get_and_other_paths_pass_on_the_token() {
        let (host, mut worker) = mcp_setup();
        let auth = bearer(&keycloak_token());
        host.arrive(1, &[(":path", "/mcp"), (":method", "GET"), ("authorization", &auth)]);
        assert_eq!(worker.on_request_headers(&host, 1, true), Flow::Continue);
        host.arrive(2, &[(":path", "/other"), (":method", "POST"), ("authorization", &auth)]);
        assert_eq!(worker.on_request_headers(&host, 2, false), Flow::Continue);
    }

    /// A worker with its keys loaded (request 1, alice's, fetched them) and two users' tokens.
    fn alice_and_bob_setup() -> (MemoryHost, Worker, String, String) {
        let (host, mut worker) = setup();
        let alice = keycloak_token();
        let bob = testkeys::mint(
            &json!({"alg": "RS256", "typ": "JWT", "kid": testkeys::RSA_KID}),
            &testkeys::claims_with(json!({"sub": "bob"})),
        );
        arrive(&host, &mut worker, 1, &alice);
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        (host, worker, alice, bob)
    }

    #[test]
    fn a_session_id_is_bound_to_the_subject_that_started_it() {
        let (host, mut worker, alice, bob) = alice_and_bob_setup();
        // The server hands out a session on the response to alice's first request.
        host.set_response_headers(1, &[("mcp-session-id", "s-1")]);
        worker.on_response_headers(&host, 1);
        let with_session = |id: u32, token: &str| {
            arrive_post(&host, id, "/mcp", token, &[("mcp-session-id", "s-1")])
        };
        with_session(2, &alice);
        assert_eq!(worker.on_request_headers(&host, 2, false), Flow::Continue);
        with_session(3, &bob);
        assert_eq!(worker.on_request_headers(&host, 3, false), Flow::Pause);
        assert_eq!(status_sent(&host, 3), Some(404));
        // An unknown session id passes: the server judges it.
        arrive_post(&host, 4, "/mcp", &bob, &[("mcp-session-id", "s-9")]);
        assert_eq!(worker.on_request_headers(&host, 4, false), Flow::Continue);
        worker.on_tick(&host);
        assert_eq!(host.counter("mcp_auth.denied.session_mismatch"), 1);
        // Bob's unknown session id with alice's behind it: only the judged one goes on.
        let both = [("mcp-session-id", "s-9"), ("mcp-session-id", "s-1")];
        arrive_post(&host, 5, "/mcp", &bob, &both);
        assert_eq!(worker.on_request_headers(&host, 5, false), Flow::Continue);
        let sent: Vec<String> = host
            .request(5)
            .headers
            .into_iter()
            .filter(|(n, _)| n == "mcp-session-id")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(sent, ["s-9"]);
        // Another spelling of the endpoint, or another path: the server may take it for its
        // endpoint, so the binding holds there too.
        for (id, path) in [(6, "/mcp/"), (7, "/MCP"), (8, "/other")] {
            arrive_post(&host, id, path, &bob, &[("mcp-session-id", "s-1")]);
            assert_eq!(worker.on_request_headers(&host, id, false), Flow::Pause, "{path}");
            assert_eq!(status_sent(&host, id), Some(404), "{path}");
        }
    }

    #[test]
    fn only_a_post_without_a_session_id_may_start_one() {
        let (host, mut worker, alice, bob) = alice_and_bob_setup();
        worker.on_request_gone(1);
        let request =
            |worker: &mut Worker, id: u32, method: &str, token: &str, session: Option<&str>| {
                let auth = bearer(token);
                let mut headers =
                    vec![(":path", "/mcp"), (":method", method), ("authorization", &auth)];
                headers.extend(session.map(|s| ("mcp-session-id", s)));
                host.arrive(id, &headers);
                worker.on_request_headers(&host, id, true)
            };
        // A GET's response is not looked at: a session id there stays unbound.
        assert_eq!(request(&mut worker, 2, "GET", &alice, None), Flow::Continue);
        assert!(worker.session_starts.is_empty());
        host.set_response_headers(2, &[("mcp-session-id", "s-get")]);
        worker.on_response_headers(&host, 2);
        assert_eq!(request(&mut worker, 3, "GET", &bob, Some("s-get")), Flow::Continue);
        // A POST's response binds the session id it hands out; a GET with it is judged too.
        assert_eq!(request(&mut worker, 4, "POST", &alice, None), Flow::Continue);
        host.set_response_headers(4, &[("mcp-session-id", "s-post")]);
        worker.on_response_headers(&host, 4);
        assert!(worker.session_starts.is_empty());
        assert_eq!(request(&mut worker, 5, "GET", &bob, Some("s-post")), Flow::Pause);
        assert_eq!(status_sent(&host, 5), Some(404));
        assert_eq!(request(&mut worker, 6, "GET", &alice, Some("s-post")), Flow::Continue);
    }

    #[test]
    fn single_headers_judged_as_they_came_are_not_edited() {
        let (host, mut worker) = trusting_setup();
        let single =
            [("mcp-session-id", "s-1"), ("mcp-method", "tools/call"), ("mcp-name", "echo")];
        arrive_post(&host, 1, "/mcp", &keycloak_token(), &single);
        host.request_header_edits.set(0);
        assert_eq!(worker.on_request_headers(&host, 1, false), Flow::Continue);
        // The token removed and the subject set; nothing else touched.
        assert_eq!(host.request_header_edits.get(), 2);
        assert_eq!(host.header_of(1, "mcp-session-id").as_deref(), Some("s-1"));
        assert_eq!(host.header_of(1, "mcp-name").as_deref(), Some("echo"));
    }

    #[test]
    fn two_authorization_headers_are_refused_whatever_the_first() {
        let (host, mut worker) = setup();
        arrive(&host, &mut worker, 1, &keycloak_token());
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        let auth = bearer(&keycloak_token());
        host.arrive(
            2,
            &[(":path", "/mcp"), ("authorization", &auth), ("authorization", "Bearer other")],
        );
        assert_eq!(worker.on_request_headers(&host, 2, true), Flow::Pause);
        assert_eq!(status_sent(&host, 2), Some(400));
    }

    fn discovery_setup() -> (MemoryHost, Worker) {
        let mut config: Value = serde_json::from_slice(&config_bytes()).unwrap();
        config["jwks"] = json!({"cluster": "idp"});
        let host = MemoryHost::new(NOW_MS);
        let worker = Worker::configure(&host, config.to_string().as_bytes()).unwrap();
        (host, worker)
    }

    fn last_call_path(host: &MemoryHost) -> String {
        host.calls.borrow().last().unwrap().path.clone()
    }

    fn metadata(issuer: &str, jwks_uri: &str) -> Value {
        json!({"issuer": issuer, "jwks_uri": jwks_uri, "token_endpoint": "http://x/token"})
    }

    #[test]
    fn discovery_finds_the_key_set_through_the_openid_configuration() {
        let (host, mut worker) = discovery_setup();
        assert_eq!(arrive(&host, &mut worker, 1, &keycloak_token()), Flow::Pause);
        assert_eq!(last_call_path(&host), "/realms/my-realm/.well-known/openid-configuration");
        assert_eq!(host.calls.borrow()[0].cluster, "idp");
        let doc = metadata(testkeys::ISSUER, "http://localhost:8080/realms/my-realm/keys");
        answer_fetch(&host, &mut worker, "200", &doc);
        assert_eq!(host.calls.borrow().len(), 2);
        assert_eq!(last_call_path(&host), "/realms/my-realm/keys");
        assert_eq!(host.request(1).resumed, 0, "still waiting for the key set");
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        assert_eq!(host.request(1).resumed, 1);
        assert!(host.request(1).sent.is_none());
        // An unknown kid refetches the key set at the discovered path, without discovery.
        host.advance(1000);
        worker.on_tick(&host);
        let rotated = testkeys::mint_rotated(&testkeys::claims());
        assert_eq!(arrive(&host, &mut worker, 2, &rotated), Flow::Pause);
        assert_eq!(host.calls.borrow().len(), 3);
        assert_eq!(last_call_path(&host), "/realms/my-realm/keys");
        // The scheduled refresh discovers again: the issuer may have moved its keys.
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        host.advance(300_000);
        worker.on_tick(&host);
        assert_eq!(host.calls.borrow().len(), 4);
        assert_eq!(last_call_path(&host), "/realms/my-realm/.well-known/openid-configuration");
    }

    #[test]
    fn discovery_falls_back_to_the_rfc8414_form_after_a_404() {
        let (host, mut worker) = discovery_setup();
        arrive(&host, &mut worker, 1, &keycloak_token());
        answer_fetch(&host, &mut worker, "404", &json!({}));
        assert_eq!(
            last_call_path(&host),
            "/.well-known/oauth-authorization-server/realms/my-realm"
        );
        let doc = metadata(testkeys::ISSUER, "http://localhost:8080/certs");
        answer_fetch(&host, &mut worker, "200", &doc);
        assert_eq!(last_call_path(&host), "/certs");
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        assert_eq!(host.request(1).resumed, 1);
    }

    #[test]
    fn discovery_refuses_a_document_of_another_issuer_or_a_key_set_elsewhere() {
        for doc in [
            metadata("http://localhost:8080/realms/other", "http://localhost:8080/certs"),
            metadata(&format!("{}/", testkeys::ISSUER), "http://localhost:8080/certs"),
            metadata(testkeys::ISSUER, "http://evil.example/certs"),
            metadata(testkeys::ISSUER, "https://localhost:8080/certs"),
            json!({"issuer": testkeys::ISSUER}),
        ] {
            let (host, mut worker) = discovery_setup();
            arrive(&host, &mut worker, 1, &keycloak_token());
            answer_fetch(&host, &mut worker, "200", &doc);
            assert_eq!(host.calls.borrow().len(), 1, "no key-set fetch after {doc}");
            host.advance(100);
            worker.on_tick(&host);
            assert_eq!(status_sent(&host, 1), Some(503), "{doc}");
            assert_eq!(host.counter("mcp_auth.jwks_fetch.failed"), 1);
        }
        // A 404 on both forms is a failure too, retried with backoff.
        let (host, mut worker) = discovery_setup();
        arrive(&host, &mut worker, 1, &keycloak_token());
        answer_fetch(&host, &mut worker, "404", &json!({}));
        answer_fetch(&host, &mut worker, "404", &json!({}));
        assert_eq!(host.calls.borrow().len(), 2);
        host.advance(100);
        worker.on_tick(&host);
        assert_eq!(status_sent(&host, 1), Some(503));
    }

    #[test]
    fn discovery_failure_keeps_the_last_good_keys() {
        let (host, mut worker) = discovery_setup();
        arrive(&host, &mut worker, 1, &keycloak_token());
        let doc = metadata(testkeys::ISSUER, "http://localhost:8080/certs");
        answer_fetch(&host, &mut worker, "200", &doc);
        answer_fetch(&host, &mut worker, "200", &testkeys::keycloak_jwks());
        host.advance(300_000);
        worker.on_tick(&host);
        answer_fetch(&host, &mut worker, "500", &json!({}));
        assert_eq!(arrive(&host, &mut worker, 2, &keycloak_token()), Flow::Continue);
    }

    const ISSUER_B: &str = "http://localhost:8081/realms/b";

    /// Two providers: A (the fixtures' issuer, its Keycloak key set) and B (another issuer,
    /// whose set holds only the second RSA key), each through its own cluster.
    fn two_providers() -> (MemoryHost, Worker) {
        let config = json!({
            "providers": [
                {"issuer": testkeys::ISSUER, "audiences": [testkeys::AUDIENCE],
                 "jwks": {"cluster": "idp-a", "uri": "http://localhost:8080/certs"}},
                {"issuer": ISSUER_B, "audiences": ["b-api", testkeys::AUDIENCE],
                 "jwks": {"cluster": "idp-b", "uri": "http://localhost:8081/certs"}}
            ],
            "resource_metadata": {"resource": "http://localhost:9000/mcp"},
            "claims_to_headers": {"sub": "x-mcp-subject"}
        });
        let host = MemoryHost::new(NOW_MS);
        let worker = Worker::configure(&host, config.to_string().as_bytes()).unwrap();
        (host, worker)
    }

    fn keys_of_b() -> Value {
        json!({"keys": [testkeys::rotated_jwk()]})
    }

    /// B's token: B's issuer, signed with B's key.
    fn token_of_b() -> String {
        testkeys::mint_rotated(&testkeys::claims_with(json!({"iss": ISSUER_B})))
    }

    /// Answers the callout to `cluster` in flight.
    fn answer_cluster(
        host: &MemoryHost,
        worker: &mut Worker,
        cluster: &str,
        status: &str,
        body: &Value,
    ) {
        let token = host.calls.borrow().iter().rev().find(|c| c.cluster == cluster).unwrap().token;
        let body = body.to_string().into_bytes();
        host.respond_to_call(&[(":status", status)], &body);
        worker.on_call_response(host, token, body.len());
    }

    fn clusters_called(host: &MemoryHost) -> Vec<String> {
        host.calls.borrow().iter().map(|c| c.cluster.clone()).collect()
    }

    #[test]
    fn two_providers_each_token_verifies_with_its_own_keys_only() {
        let (host, mut worker) = two_providers();
        worker.on_tick(&host);
        assert_eq!(clusters_called(&host), ["idp-a", "idp-b"], "startup fetches every provider");
        answer_cluster(&host, &mut worker, "idp-a", "200", &testkeys::keycloak_jwks());
        answer_cluster(&host, &mut worker, "idp-b", "200", &keys_of_b());
        assert_eq!(arrive(&host, &mut worker, 1, &keycloak_token()), Flow::Continue);
        assert_eq!(arrive(&host, &mut worker, 2, &token_of_b()), Flow::Continue);
        // A's key and kid on a token claiming B: B's set lacks the kid, so B's (and only B's)
        // key set is fetched again, and without the kid the token is refused.
        let claims_b = testkeys::claims_with(json!({"iss": ISSUER_B}));
        let forged = testkeys::mint(
            &json!({"alg": "RS256", "typ": "JWT", "kid": testkeys::RSA_KID}),
            &claims_b,
        );
        assert_eq!(arrive(&host, &mut worker, 3, &forged), Flow::Pause);
        assert_eq!(clusters_called(&host), ["idp-a", "idp-b", "idp-b"]);
        answer_cluster(&host, &mut worker, "idp-b", "200", &keys_of_b());
        assert_eq!(status_sent(&host, 3), Some(401));
        assert_eq!(host.request(3).resumed, 0);
        // Signed by A's key under B's kid: B's key does not verify it.
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": testkeys::RSA2_KID});
        let forged = testkeys::mint(&header, &claims_b);
        assert_eq!(arrive(&host, &mut worker, 4, &forged), Flow::Pause);
        assert_eq!(status_sent(&host, 4), Some(401));
        // A's token stays cached and valid when B's keys change, and the other way round.
        assert_eq!(arrive(&host, &mut worker, 5, &keycloak_token()), Flow::Continue);
        assert_eq!(arrive(&host, &mut worker, 6, &token_of_b()), Flow::Continue);
        worker.on_tick(&host);
        assert_eq!(host.counter("mcp_auth.allowed"), 4);
        assert_eq!(host.counter("mcp_auth.denied.unknown_key"), 1);
        assert_eq!(host.counter("mcp_auth.denied.bad_signature"), 1);
        assert_eq!(host.counter("mcp_auth.jwks_fetch.ok"), 3);
    }

    #[test]
    fn a_token_of_an_unconfigured_issuer_is_refused_without_a_fetch() {
        let (host, mut worker) = two_providers();
        let other = testkeys::mint(
            &json!({"alg": "RS256", "typ": "JWT", "kid": testkeys::RSA_KID}),
            &testkeys::claims_with(json!({"iss": "http://localhost:8082/realms/c"})),
        );
        let without_iss = testkeys::mint(
            &json!({"alg": "RS256", "typ": "JWT", "kid": testkeys::RSA_KID}),
            &testkeys::claims_with(json!({"iss": null})),
        );
        assert_eq!(arrive(&host, &mut worker, 1, &other), Flow::Pause);
        assert_eq!(arrive(&host, &mut worker, 2, &without_iss), Flow::Pause);
        assert_eq!((status_sent(&host, 1), status_sent(&host, 2)), (Some(401), Some(401)));
        assert!(host.calls.borrow().is_empty(), "no key set fetched");
        worker.on_tick(&host);
        assert_eq!(host.counter("mcp_auth.denied.bad_issuer"), 2);
    }

    #[test]
    fn a_failed_fetch_of_one_provider_leaves_the_other_alone() {
        let (host, mut worker) = two_providers();
        assert_eq!(arrive(&host, &mut worker, 1, &keycloak_token()), Flow::Pause);
        assert_eq!(arrive(&host, &mut worker, 2, &token_of_b()), Flow::Pause);
        assert_eq!(clusters_called(&host), ["idp-a", "idp-b"]);
        assert!(worker.providers.get(1).unwrap().waiting.contains(2));
        // B's key set fails: B's waiter gets 503 at once, A's keeps waiting for A's.
        answer_cluster(&host, &mut worker, "idp-b", "500", &json!({}));
        assert_eq!(status_sent(&host, 2), Some(503));
        assert_eq!(status_sent(&host, 1), None);
        assert!(worker.providers.is_waiting(1));
        answer_cluster(&host, &mut worker, "idp-a", "200", &testkeys::keycloak_jwks());
        assert_eq!(host.request(1).resumed, 1);
        assert!(host.request(1).sent.is_none());
        // A's tokens keep passing while B retries with backoff.
        host.advance(500);
        worker.on_tick(&host);
        assert_eq!(arrive(&host, &mut worker, 3, &keycloak_token()), Flow::Continue);
        assert_eq!(clusters_called(&host), ["idp-a", "idp-b"], "B's retry waits for its backoff");
        host.advance(600);
        worker.on_tick(&host);
        assert_eq!(clusters_called(&host), ["idp-a", "idp-b", "idp-b"]);
        answer_cluster(&host, &mut worker, "idp-b", "200", &keys_of_b());
        assert_eq!(arrive(&host, &mut worker, 4, &token_of_b()), Flow::Continue);
        worker.on_tick(&host);
        assert_eq!(host.counter("mcp_auth.jwks_fetch.failed"), 1);
        assert_eq!(host.counter("mcp_auth.jwks_fetch.ok"), 2);
    }

    #[test]
    fn metadata_needs_no_keys_and_names_every_issuer() {
        let (host, mut worker) = two_providers();
        host.arrive(
            1,
            &[(":path", "/.well-known/oauth-protected-resource/mcp"), (":method", "GET")],
        );
        assert_eq!(worker.on_request_headers(&host, 1, true), Flow::Pause);
        let sent = host.request(1).sent.unwrap();
        assert_eq!(sent.status, 200);
        let doc: Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(doc["authorization_servers"], json!([testkeys::ISSUER, ISSUER_B]));
        assert!(host.calls.borrow().is_empty());
    }
}
