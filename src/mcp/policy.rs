//! The MCP policy: which caller may use which tool, prompt and resource.
//!
//! Two checks, in this order, on `tools/call`, `prompts/get` (by `params.name`) and
//! `resources/read`, `resources/subscribe` (by `params.uri`); every other method,
//! notification and client response passes:
//!
//! 1. **Scopes.** Per kind, `*` glob patterns map an item to the scopes it needs. When
//!    several patterns match, the most specific wins: the one with the most literal
//!    (non-`*`) bytes, then the one with the fewest `*`; patterns still tied add their scopes
//!    together. `*` matches any run of bytes, `/` included. An item no pattern matches needs
//!    no scope. A token lacking any of the winning pattern's scopes gets a step-up challenge
//!    naming that pattern's scopes (SEP-2350: this operation's, not every scope the server
//!    knows).
//! 2. **Rules.** CEL expressions with agentgateway's variables: `jwt` (the verified claims),
//!    `mcp.methodName`, and one of `mcp.tool.name`, `mcp.prompt.name`, `mcp.resource.name`
//!    (the URI). An item is permitted when any rule evaluates to `true`; an error (a missing
//!    claim, `mcp.tool` on a prompt, a type mismatch) or a non-boolean counts as `false`.
//!    With no rules, everything is permitted.
//!
//! Lists (`tools/list`, ...) are judged item by item by [`McpPolicy::permits_listed`], as if
//! each item were used (`mcp.methodName` is the method that would use it).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::rc::Rc;
use std::sync::Arc;

use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env};
use serde_json::{json, Map, Value};

use super::jsonrpc::{self, Body, Message, MessageKind, ReadError};
use super::lists::{ArrayId, KeepItems};
use super::{ListKind, PendingList, RequestId};
use crate::response::LocalResponse;

/// JSON-RPC error code of a routing-header disagreement (SEP-2243, HeaderMismatch).
pub const HEADER_MISMATCH: i64 = -32020;
/// JSON-RPC error code the filter uses for a missing scope (server-defined range).
pub const INSUFFICIENT_SCOPE: i64 = -32001;
/// JSON-RPC error code the filter uses for a call the rules forbid (server-defined range).
pub const FORBIDDEN: i64 = -32003;

/// What kind of item a judged method uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Tool,
    Prompt,
    Resource,
}

impl ItemKind {
    /// The judged method's kind; `None` for methods that are not judged.
    pub fn of_method(method: &str) -> Option<ItemKind> {
        match method {
            "tools/call" => Some(ItemKind::Tool),
            "prompts/get" => Some(ItemKind::Prompt),
            "resources/read" | "resources/subscribe" => Some(ItemKind::Resource),
            _ => None,
        }
    }

    fn of_list(kind: ListKind) -> ItemKind {
        match kind {
            ListKind::Tools => ItemKind::Tool,
            ListKind::Prompts => ItemKind::Prompt,
            ListKind::Resources | ListKind::ResourceTemplates => ItemKind::Resource,
        }
    }

    /// The member of `mcp` the rules see the item under.
    fn cel_member(self) -> &'static str {
        match self {
            ItemKind::Tool => "tool",
            ItemKind::Prompt => "prompt",
            ItemKind::Resource => "resource",
        }
    }

    /// The method that uses a listed item.
    fn use_method(self) -> &'static str {
        match self {
            ItemKind::Tool => "tools/call",
            ItemKind::Prompt => "prompts/get",
            ItemKind::Resource => "resources/read",
        }
    }
}

/// One glob pattern and the scopes an item matching it needs.
#[derive(Debug, Clone)]
pub struct ScopePattern {
    glob: String,
    /// The literal pieces between stars.
    pieces: Vec<String>,
    starts_with_star: bool,
    ends_with_star: bool,
    literal_bytes: usize,
    stars: usize,
    scopes: Vec<String>,
}

impl ScopePattern {
    pub fn new(glob: String, scopes: Vec<String>) -> ScopePattern {
        let pieces: Vec<String> =
            glob.split('*').filter(|p| !p.is_empty()).map(str::to_string).collect();
        ScopePattern {
            starts_with_star: glob.starts_with('*'),
            ends_with_star: glob.ends_with('*'),
            literal_bytes: pieces.iter().map(String::len).sum(),
            stars: glob.matches('*').count(),
            pieces,
            glob,
            scopes,
        }
    }

    pub fn glob(&self) -> &str {
        &self.glob
    }

    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Whether `name` matches: leftmost-first placement of each literal piece, which is
    /// exact for `*`-only globs and linear in the name per piece (no backtracking).
    pub fn matches(&self, name: &str) -> bool {
        if self.stars == 0 {
            return name == self.glob;
        }
        let mut rest = name;
        let mut pieces = self.pieces.as_slice();
        if !self.starts_with_star {
            let Some((first, others)) = pieces.split_first() else { return true };
            let Some(after) = rest.strip_prefix(first.as_str()) else { return false };
            rest = after;
            pieces = others;
        }
        let last = if self.ends_with_star {
            None
        } else {
            let Some((last, others)) = pieces.split_last() else { return true };
            pieces = others;
            Some(last)
        };
        for piece in pieces {
            match rest.find(piece.as_str()) {
                Some(at) => rest = rest.get(at + piece.len()..).unwrap_or(""),
                None => return false,
            }
        }
        match last {
            Some(last) => rest.len() >= last.len() && rest.ends_with(last.as_str()),
            None => true,
        }
    }

    fn specificity(&self) -> (usize, std::cmp::Reverse<usize>) {
        (self.literal_bytes, std::cmp::Reverse(self.stars))
    }
}

/// The scope patterns of each kind.
#[derive(Debug, Clone, Default)]
pub struct ScopeTable {
    pub tools: Vec<ScopePattern>,
    pub prompts: Vec<ScopePattern>,
    pub resources: Vec<ScopePattern>,
}

impl ScopeTable {
    fn of(&self, kind: ItemKind) -> &[ScopePattern] {
        match kind {
            ItemKind::Tool => &self.tools,
            ItemKind::Prompt => &self.prompts,
            ItemKind::Resource => &self.resources,
        }
    }

    /// The scopes `name` needs: the most specific matching pattern's (ties add up).
    pub fn required(&self, kind: ItemKind, name: &str) -> Vec<&str> {
        let mut best: Option<(usize, std::cmp::Reverse<usize>)> = None;
        let mut scopes: Vec<&str> = Vec::new();
        for pattern in self.of(kind) {
            if !pattern.matches(name) {
                continue;
            }
            let rank = pattern.specificity();
            if best.is_some_and(|b| rank < b) {
                continue;
            }
            if best.is_some_and(|b| rank > b) {
                scopes.clear();
            }
            best = Some(rank);
            for s in &pattern.scopes {
                if !scopes.contains(&s.as_str()) {
                    scopes.push(s);
                }
            }
        }
        scopes
    }
}

/// One compiled CEL rule.
///
/// Parsed with cel-rust's hand-written Pratt parser (feature `parser_pratt`) rather than its
/// default ANTLR one: the same grammar, macros (`has`, `all`, `exists`, ...) and AST, without
/// the ANTLR runtime and tables, which would add about 150 KB to the filter.
#[derive(Debug)]
pub struct Rule {
    source: String,
    expression: cel::IdedExpr,
}

impl Rule {
    /// Parses a rule; the error is the CEL parser's message.
    pub fn compile(source: &str) -> Result<Rule, String> {
        let expression = cel::parser::PrattParser::new()
            // Rules are short; a deep one is a mistake, and deep recursion costs stack.
            .max_recursion_depth(64)
            .parse(source)
            .map_err(|e| e.to_string())?;
        Ok(Rule { source: source.to_string(), expression })
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The verified caller as the policy sees it, built once per token (cache it with the
/// token's verdict): the claims as a CEL value, the granted scopes, and the rules' answers
/// so far. A caller belongs to the policy that built it: build new ones after reconfiguring.
#[derive(Debug)]
pub struct Caller {
    jwt: Box<dyn Val>,
    scopes: Vec<String>,
    /// The rules' answers by the fingerprint of (method, item): they depend only on the claims,
    /// the method and the item, so a repeated call, or a list response of the items seen
    /// before, costs lookups instead of CEL evaluations. Bounded.
    answers: RefCell<HashMap<u64, Answer, BuildHasherDefault<Fingerprint>>>,
    /// Its verdicts on the list arrays a worker remembers (most recent first, bounded): the
    /// same array again costs one lookup instead of one per item.
    list_verdicts: RefCell<VecDeque<(ArrayId, Rc<[bool]>)>>,
    /// The policy that built it: another policy's rules ignore the answers.
    policy: u64,
}

/// How many arrays' verdicts a caller keeps.
const LIST_VERDICTS_PER_CALLER: usize = 4;

/// Judges a list response's items for one caller ([`McpPolicy::permits_listed`]), keeping its
/// verdicts on the arrays the worker remembers in the caller.
pub struct ListJudge<'a> {
    policy: &'a McpPolicy,
    caller: &'a Caller,
}

impl KeepItems for ListJudge<'_> {
    fn keep(&self, kind: ListKind, name: Option<&str>) -> bool {
        self.policy.permits_listed(kind, name, self.caller)
    }

    fn remembered_verdicts(&self, array: ArrayId) -> Option<Rc<[bool]>> {
        if self.caller.policy != self.policy.id {
            return None;
        }
        let verdicts = self.caller.list_verdicts.try_borrow().ok()?;
        verdicts.iter().find(|(id, _)| *id == array).map(|(_, verdicts)| Rc::clone(verdicts))
    }

    fn remember_verdicts(&self, array: ArrayId, verdicts: &[bool]) {
        if self.caller.policy != self.policy.id {
            return;
        }
        if let Ok(mut kept) = self.caller.list_verdicts.try_borrow_mut() {
            kept.push_front((array, verdicts.into()));
            kept.truncate(LIST_VERDICTS_PER_CALLER);
        }
    }
}

/// One remembered answer of the rules, with what it answers (a fingerprint may collide).
#[derive(Debug)]
struct Answer {
    method: String,
    item: String,
    permitted: bool,
}

/// Hashes the fingerprints that key [`Caller::answers`] as they are: they are hashes already.
#[derive(Debug, Default)]
struct Fingerprint(u64);

impl std::hash::Hasher for Fingerprint {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (the keys are u64); fold anything else in anyway.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, fingerprint: u64) {
        self.0 = fingerprint;
    }
}

/// How many rule answers a caller remembers (a client calls few distinct tools; a list
/// response of many items fills it once and then stops adding).
const ANSWERS_PER_CALLER: usize = 64;

static NEXT_POLICY_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Caller {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
}

/// The request headers the policy reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct McpHeaders<'a> {
    pub content_encoding: Option<&'a str>,
    /// SEP-2243 `Mcp-Method`.
    pub mcp_method: Option<&'a str>,
    /// SEP-2243 `Mcp-Name`.
    pub mcp_name: Option<&'a str>,
}

/// Why a body was refused before any policy was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadBody {
    /// Over `max_body_bytes`: 413.
    TooLarge,
    /// A `Content-Encoding` other than identity: 415.
    Encoding,
    /// Not UTF-8, or not JSON: 400, -32700.
    Parse,
    /// Nesting deeper than the bound: 400, -32600.
    TooDeep,
    /// A member name twice where the policy reads: 400, -32600.
    DuplicateMember,
    /// Not a JSON-RPC 2.0 message or batch: 400, -32600.
    NotMessage,
    /// A judged method without a string item: 400, -32602.
    InvalidParams,
}

impl BadBody {
    pub fn status(self) -> u32 {
        match self {
            BadBody::TooLarge => 413,
            BadBody::Encoding => 415,
            _ => 400,
        }
    }

    pub fn code(self) -> i64 {
        match self {
            BadBody::Parse => -32700,
            BadBody::InvalidParams => -32602,
            _ => -32600,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            BadBody::TooLarge => "request body too large",
            BadBody::Encoding => "request body must not be content-encoded",
            BadBody::Parse => "parse error: the body is not UTF-8 JSON",
            BadBody::TooDeep => "invalid request: nested too deeply",
            BadBody::DuplicateMember => "invalid request: duplicate member name",
            BadBody::NotMessage => "invalid request: not a JSON-RPC 2.0 message or batch",
            BadBody::InvalidParams => "invalid params: the tool, prompt or resource is not named",
        }
    }

    fn from_read(e: ReadError) -> BadBody {
        match e {
            ReadError::Utf8 | ReadError::Syntax => BadBody::Parse,
            ReadError::TooDeep => BadBody::TooDeep,
            ReadError::DuplicateMember => BadBody::DuplicateMember,
            ReadError::NotMessage => BadBody::NotMessage,
            ReadError::InvalidParams => BadBody::InvalidParams,
        }
    }
}

/// The method and item a verdict is about, for the debug log (never arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub method: String,
    pub item: Option<String>,
}

/// The decision on one POST to the endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum McpVerdict {
    /// Forward the body unchanged; `lists` are the list requests whose responses must be
    /// filtered (empty when nothing is to be filtered).
    Forward { lists: Vec<PendingList>, target: Option<Target> },
    /// 403 with a step-up challenge naming the scopes this operation needs.
    InsufficientScope { scopes: Vec<String>, id: Option<RequestId>, target: Option<Target> },
    /// 403, JSON-RPC error with the request's id, no challenge.
    Forbidden { id: Option<RequestId>, target: Option<Target> },
    /// 400 / 413 / 415, JSON-RPC error.
    BadBody { reason: BadBody, id: Option<RequestId> },
    /// 400, JSON-RPC error -32020: the routing headers and the body disagree.
    HeaderMismatch { id: Option<RequestId> },
}

/// Outcomes, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpOutcome {
    Allowed,
    DeniedScope,
    DeniedRule,
    BadBody,
}

impl McpOutcome {
    /// The counter's name.
    pub fn counter(self) -> &'static str {
        match self {
            McpOutcome::Allowed => "mcp.allowed",
            McpOutcome::DeniedScope => "mcp.denied.scope",
            McpOutcome::DeniedRule => "mcp.denied.rule",
            McpOutcome::BadBody => "mcp.bad_body",
        }
    }
}

impl McpVerdict {
    pub fn outcome(&self) -> McpOutcome {
        match self {
            McpVerdict::Forward { .. } => McpOutcome::Allowed,
            McpVerdict::InsufficientScope { .. } => McpOutcome::DeniedScope,
            McpVerdict::Forbidden { .. } => McpOutcome::DeniedRule,
            McpVerdict::BadBody { .. } | McpVerdict::HeaderMismatch { .. } => McpOutcome::BadBody,
        }
    }

    pub fn target(&self) -> Option<&Target> {
        match self {
            McpVerdict::Forward { target, .. }
            | McpVerdict::InsufficientScope { target, .. }
            | McpVerdict::Forbidden { target, .. } => target.as_ref(),
            _ => None,
        }
    }
}

/// The compiled `mcp` section.
pub struct McpPolicy {
    endpoint: String,
    max_body_bytes: usize,
    rules: Vec<Rule>,
    scopes: ScopeTable,
    hide_unscoped: bool,
    trust_routing_headers: bool,
    env: Arc<Env>,
    /// Tells this policy's callers from another's.
    id: u64,
}

impl std::fmt::Debug for McpPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpPolicy")
            .field("endpoint", &self.endpoint)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("rules", &self.rules.iter().map(Rule::source).collect::<Vec<_>>())
            .field("scopes", &self.scopes)
            .field("hide_unscoped", &self.hide_unscoped)
            .field("trust_routing_headers", &self.trust_routing_headers)
            .finish()
    }
}

/// One message's decision, before a batch's are combined.
enum Decision {
    Allow(Option<PendingList>),
    NeedScopes(Vec<String>),
    Deny,
}

impl McpPolicy {
    pub fn new(
        endpoint: String,
        max_body_bytes: usize,
        rules: Vec<Rule>,
        scopes: ScopeTable,
        hide_unscoped: bool,
        trust_routing_headers: bool,
    ) -> McpPolicy {
        McpPolicy {
            endpoint,
            max_body_bytes,
            rules,
            scopes,
            hide_unscoped,
            trust_routing_headers,
            env: Arc::new(Env::stdlib()),
            id: NEXT_POLICY_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    pub fn hide_unscoped(&self) -> bool {
        self.hide_unscoped
    }

    pub fn trust_routing_headers(&self) -> bool {
        self.trust_routing_headers
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn scope_table(&self) -> &ScopeTable {
        &self.scopes
    }

    /// Every scope the patterns name, each once (for `scopes_supported`).
    pub fn scopes_named(&self) -> impl Iterator<Item = &str> {
        let mut seen: Vec<&str> = Vec::new();
        for pattern in
            self.scopes.tools.iter().chain(&self.scopes.prompts).chain(&self.scopes.resources)
        {
            for s in &pattern.scopes {
                if !seen.contains(&s.as_str()) {
                    seen.push(s);
                }
            }
        }
        seen.into_iter()
    }

    /// Whether responses of this list kind may need filtering at all.
    pub fn filters_list(&self, kind: ListKind) -> bool {
        !self.rules.is_empty()
            || (self.hide_unscoped && !self.scopes.of(ItemKind::of_list(kind)).is_empty())
    }

    /// Builds the caller from verified claims: scopes from `scope` (space separated) or
    /// `scp` (an array or a space-separated string), as `token::missing_scopes` reads them.
    pub fn caller(&self, claims: &Map<String, Value>) -> Caller {
        let mut scopes: Vec<String> = Vec::new();
        for name in ["scope", "scp"] {
            match claims.get(name) {
                Some(Value::String(s)) => {
                    scopes.extend(s.split(' ').filter(|s| !s.is_empty()).map(str::to_string))
                }
                Some(Value::Array(list)) => {
                    scopes.extend(list.iter().filter_map(Value::as_str).map(str::to_string))
                }
                _ => {}
            }
        }
        let jwt = cel_value_of_object(claims);
        let jwt: Box<dyn Val> = match jwt.try_into() {
            Ok(v) => v,
            // Never happens for JSON-made values; an empty map keeps every claim missing.
            Err(_) => Box::new(cel::common::types::CelMap::from(HashMap::new())),
        };
        Caller {
            jwt,
            scopes,
            answers: RefCell::default(),
            list_verdicts: RefCell::default(),
            policy: self.id,
        }
    }

    /// Whether the decision needs the body: always, unless `trust_routing_headers` is set,
    /// the request carries `Mcp-Method`, and its response needs no list filtering.
    pub fn needs_body(&self, headers: &McpHeaders) -> bool {
        if !self.trust_routing_headers {
            return true;
        }
        match headers.mcp_method {
            None => true,
            Some(method) => ListKind::from_method(method).is_some_and(|k| self.filters_list(k)),
        }
    }

    /// Judges a POST to the endpoint. `body` is `None` only when [`Self::needs_body`] said
    /// it is not needed; a missing body that was needed is refused.
    pub fn judge(&self, headers: &McpHeaders, body: Option<&[u8]>, caller: &Caller) -> McpVerdict {
        // `Mcp-Name` as the server will read it: a `=?base64?…?=` value is judged decoded.
        let decoded_name = match headers.mcp_name.map(decode_routing_value) {
            Some(None) => return McpVerdict::HeaderMismatch { id: None },
            Some(Some(name)) => Some(name),
            None => None,
        };
        let headers = &McpHeaders {
            content_encoding: headers.content_encoding,
            mcp_method: headers.mcp_method,
            mcp_name: decoded_name.as_deref(),
        };
        if let Some(method) = headers.mcp_method {
            let names = jsonrpc::names_item(method);
            if names != headers.mcp_name.is_some() {
                // A named method without its name, or a name on a method that names nothing.
                return McpVerdict::HeaderMismatch { id: None };
            }
        }
        let Some(body) = body else {
            return match (headers.mcp_method, self.needs_body(headers)) {
                (Some(method), false) => {
                    let message = Message {
                        kind: MessageKind::Request,
                        method: Some(method.to_string()),
                        id: None,
                        item: headers.mcp_name.map(str::to_string),
                    };
                    self.single(&message, caller)
                }
                _ => McpVerdict::BadBody { reason: BadBody::NotMessage, id: None },
            };
        };
        if let Some(encoding) = headers.content_encoding {
            let encoding = encoding.trim();
            if !encoding.is_empty() && !encoding.eq_ignore_ascii_case("identity") {
                return McpVerdict::BadBody { reason: BadBody::Encoding, id: None };
            }
        }
        if body.len() > self.max_body_bytes {
            return McpVerdict::BadBody { reason: BadBody::TooLarge, id: None };
        }
        let parsed = match jsonrpc::read(body) {
            Ok(parsed) => parsed,
            Err(e) => return McpVerdict::BadBody { reason: BadBody::from_read(e), id: None },
        };
        if headers.mcp_method.is_some() || headers.mcp_name.is_some() {
            // The headers must say what the body says (SEP-2243); routing headers describe
            // one message, so a batch cannot agree with them.
            let Body::Single(message) = &parsed else {
                return McpVerdict::HeaderMismatch { id: None };
            };
            let method_agrees =
                headers.mcp_method.is_none_or(|m| message.method.as_deref() == Some(m));
            let name_agrees = match headers.mcp_name {
                Some(name) => message.item.as_deref() == Some(name),
                None => true,
            };
            if !method_agrees || !name_agrees {
                return McpVerdict::HeaderMismatch { id: message.id.clone() };
            }
        }
        match &parsed {
            Body::Single(message) => self.single(message, caller),
            Body::Batch(messages) => self.batch(messages, caller),
        }
    }

    fn single(&self, message: &Message, caller: &Caller) -> McpVerdict {
        let target = target_of(message);
        match self.decide(message, caller) {
            Decision::Allow(list) => {
                McpVerdict::Forward { lists: list.into_iter().collect(), target }
            }
            Decision::NeedScopes(scopes) => {
                McpVerdict::InsufficientScope { scopes, id: message.id.clone(), target }
            }
            Decision::Deny => McpVerdict::Forbidden { id: message.id.clone(), target },
        }
    }

    /// A batch is refused as a whole if any element is; missing scopes first (one step-up
    /// for all of them), then the rules. The refusal carries a null id.
    fn batch(&self, messages: &[Message], caller: &Caller) -> McpVerdict {
        let mut lists = Vec::new();
        let mut scopes: Vec<String> = Vec::new();
        let mut denied: Option<Option<Target>> = None;
        let mut scoped_target = None;
        for message in messages {
            match self.decide(message, caller) {
                Decision::Allow(list) => lists.extend(list),
                Decision::NeedScopes(needed) => {
                    scoped_target.get_or_insert_with(|| target_of(message));
                    for s in needed {
                        if !scopes.contains(&s) {
                            scopes.push(s);
                        }
                    }
                }
                Decision::Deny => {
                    denied.get_or_insert_with(|| target_of(message));
                }
            }
        }
        if !scopes.is_empty() {
            return McpVerdict::InsufficientScope {
                scopes,
                id: None,
                target: scoped_target.flatten(),
            };
        }
        if let Some(target) = denied {
            return McpVerdict::Forbidden { id: None, target };
        }
        McpVerdict::Forward { lists, target: None }
    }

    fn decide(&self, message: &Message, caller: &Caller) -> Decision {
        let Some(method) = message.method.as_deref() else {
            return Decision::Allow(None);
        };
        if let Some(kind) = ItemKind::of_method(method) {
            // The reader guarantees an item for judged methods; without one, refuse.
            let Some(item) = message.item.as_deref() else { return Decision::Deny };
            let needed = self.scopes.required(kind, item);
            if needed.iter().any(|s| !caller.has_scope(s)) {
                return Decision::NeedScopes(needed.into_iter().map(str::to_string).collect());
            }
            if !self.rules_permit(method, kind, item, caller) {
                return Decision::Deny;
            }
            return Decision::Allow(None);
        }
        if let (Some(kind), Some(id)) = (ListKind::from_method(method), &message.id) {
            if message.kind == MessageKind::Request && self.filters_list(kind) {
                return Decision::Allow(Some(PendingList { id: id.clone(), kind }));
            }
        }
        Decision::Allow(None)
    }

    /// What judges a list response for `caller`: [`Self::permits_listed`] item by item, with
    /// its verdicts on a remembered array kept in the caller.
    pub fn list_judge<'a>(&'a self, caller: &'a Caller) -> ListJudge<'a> {
        ListJudge { policy: self, caller }
    }

    /// Whether any rule permits `item` (true with no rules).
    fn rules_permit(&self, method: &str, kind: ItemKind, item: &str, caller: &Caller) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        if caller.policy != self.id {
            return self.evaluate_rules(method, kind, item, caller);
        }
        let key = answer_key(method, item);
        if let Ok(answers) = caller.answers.try_borrow() {
            if let Some(answer) = answers.get(&key) {
                if answer.item == item && answer.method == method {
                    return answer.permitted;
                }
                // Another (method, item) with the same fingerprint: answered afresh.
            }
        }
        let permitted = self.evaluate_rules(method, kind, item, caller);
        if let Ok(mut answers) = caller.answers.try_borrow_mut() {
            if answers.len() < ANSWERS_PER_CALLER {
                let answer =
                    Answer { method: method.to_string(), item: item.to_string(), permitted };
                answers.entry(key).or_insert(answer);
            }
        }
        permitted
    }

    fn evaluate_rules(&self, method: &str, kind: ItemKind, item: &str, caller: &Caller) -> bool {
        let mcp = mcp_value(method, kind, item);
        let vars = Vars { jwt: caller.jwt.as_ref(), mcp: mcp.as_ref() };
        self.rules.iter().any(|rule| {
            let mut context = Context::with_env(Arc::clone(&self.env));
            context.set_variable_resolver(&vars);
            matches!(context.resolve(&rule.expression), Ok(cel::Value::Bool(true)))
        })
    }

    /// Whether a list response may show `item` to `caller`: the rules (as if the item were
    /// used: `mcp.methodName` is `tools/call`, `prompts/get` or `resources/read`) and, with
    /// `hide_unscoped`, the scopes. Items are named by `name` (tools, prompts), `uri`
    /// (resources) and `uriTemplate` (resource templates, judged by the template string
    /// itself against the resource patterns and rules). An item without its name is hidden
    /// whenever anything is to be checked.
    ///
    /// `name` is the value of the item's naming member ([`ListKind::naming_member`]), `None`
    /// when it is missing or not a string.
    pub fn permits_listed(&self, kind: ListKind, name: Option<&str>, caller: &Caller) -> bool {
        if !self.filters_list(kind) {
            return true;
        }
        let Some(name) = name else { return false };
        let item_kind = ItemKind::of_list(kind);
        if self.hide_unscoped
            && self.scopes.required(item_kind, name).iter().any(|s| !caller.has_scope(s))
        {
            return false;
        }
        self.rules_permit(item_kind.use_method(), item_kind, name, caller)
    }
}

/// A fingerprint of a remembered answer's (method, item) (FNV-1a; 0xff, never in UTF-8, between
/// them): a list response looks up one answer per item.
fn answer_key(method: &str, item: &str) -> u64 {
    let bytes = method.bytes().chain([0xff]).chain(item.bytes());
    bytes.fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An SEP-2243 header value as a server decodes it: a value wrapped as `=?base64?…?=`
/// (what clients send for a name that is not plain printable ASCII) is canonical padded
/// Base64 of UTF-8; anything else is taken as it is. `None`: a wrapped value that does not
/// decode, which the server refuses too.
pub fn decode_routing_value(value: &str) -> Option<Cow<'_, str>> {
    use base64::Engine as _;
    let value = value.trim_matches([' ', '\t']);
    let Some(encoded) = value.strip_prefix("=?base64?").and_then(|v| v.strip_suffix("?=")) else {
        return Some(Cow::Borrowed(value));
    };
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

fn target_of(message: &Message) -> Option<Target> {
    message.method.as_ref().map(|m| Target { method: m.clone(), item: message.item.clone() })
}

/// The rules' variables: `jwt` borrowed from the cached caller, `mcp` built per item.
struct Vars<'a> {
    jwt: &'a dyn Val,
    mcp: &'a dyn Val,
}

impl VariableResolver for Vars<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        match variable {
            "jwt" => Some(CowVal::Borrowed(self.jwt)),
            "mcp" => Some(CowVal::Borrowed(self.mcp)),
            _ => None,
        }
    }
}

/// `mcp` as agentgateway shapes it: `{"methodName": m, "<kind>": {"name": item}}`.
fn mcp_value(method: &str, kind: ItemKind, item: &str) -> Box<dyn Val> {
    let mut inner: HashMap<cel::objects::Key, cel::Value> = HashMap::with_capacity(1);
    inner.insert("name".to_string().into(), item.into());
    let mut outer: HashMap<cel::objects::Key, cel::Value> = HashMap::with_capacity(2);
    outer.insert("methodName".to_string().into(), method.into());
    outer.insert(kind.cel_member().to_string().into(), cel::Value::from(inner));
    match cel::Value::from(outer).try_into() {
        Ok(v) => v,
        Err(_) => Box::new(cel::common::types::CelMap::from(HashMap::new())),
    }
}

fn cel_value_of_object(object: &Map<String, Value>) -> cel::Value {
    let map: HashMap<cel::objects::Key, cel::Value> =
        object.iter().map(|(k, v)| (k.clone().into(), cel_value(v))).collect();
    cel::Value::from(map)
}

fn cel_value(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                cel::Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                cel::Value::UInt(u)
            } else {
                cel::Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => s.as_str().into(),
        Value::Array(list) => cel::Value::List(Arc::new(list.iter().map(cel_value).collect())),
        Value::Object(object) => cel_value_of_object(object),
    }
}

/// The response for a refusal (`None` for [`McpVerdict::Forward`]): JSON-RPC error bodies
/// carrying the request's id (null when unknown); the step-up challenge on
/// `InsufficientScope` only.
pub fn response(verdict: &McpVerdict, resource_metadata_url: &str) -> Option<LocalResponse> {
    let (status, id, code, message, extra) = match verdict {
        McpVerdict::Forward { .. } => return None,
        McpVerdict::InsufficientScope { scopes, id, .. } => {
            let scope = scopes.join(" ");
            let challenge = format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{resource_metadata_url}\""
            );
            (
                403,
                id,
                INSUFFICIENT_SCOPE,
                "insufficient scope",
                Some((challenge, json!({"scope": scope}))),
            )
        }
        McpVerdict::Forbidden { id, .. } => (403, id, FORBIDDEN, "forbidden by policy", None),
        McpVerdict::BadBody { reason, id } => {
            (reason.status(), id, reason.code(), reason.message(), None)
        }
        McpVerdict::HeaderMismatch { id } => (
            400,
            id,
            HEADER_MISMATCH,
            "header mismatch: Mcp-Method / Mcp-Name do not match the body",
            None,
        ),
    };
    let id = id.as_ref().map_or(Value::Null, |id| id.0.clone());
    let mut error = json!({"code": code, "message": message});
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("cache-control", "no-store".to_string()),
    ];
    if let Some((challenge, data)) = extra {
        headers.push(("www-authenticate", challenge));
        if let Some(e) = error.as_object_mut() {
            e.insert("data".into(), data);
        }
    }
    let body = json!({"jsonrpc": "2.0", "id": id, "error": error});
    Some(LocalResponse { status, headers, body: body.to_string().into_bytes() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::config::compile_value;
    use serde_json::json;

    /// The issue's example policy.
    fn issue_policy() -> McpPolicy {
        compile_value(
            json!({
                "rules": ["mcp.tool.name == \"echo\" && \"admin\" in jwt.roles"],
                "scopes": {
                    "tools": {"echo": ["mcp:tools"], "admin_*": ["mcp:admin"]},
                    "prompts": {"*": ["mcp:prompts"]},
                    "resources": {"file:///private/*": ["mcp:private"]}
                }
            }),
            "/mcp",
        )
        .unwrap()
    }

    fn policy(v: Value) -> McpPolicy {
        compile_value(v, "/mcp").unwrap()
    }

    fn caller(p: &McpPolicy, claims: Value) -> Caller {
        p.caller(claims.as_object().unwrap())
    }

    fn admin(p: &McpPolicy) -> Caller {
        caller(p, json!({"sub": "eitan", "scope": "openid mcp:tools", "roles": ["admin", "user"]}))
    }

    fn call(name: &str) -> Vec<u8> {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": name, "arguments": {"text": "secret"}}})
        .to_string()
        .into_bytes()
    }

    fn judge(p: &McpPolicy, c: &Caller, body: &[u8]) -> McpVerdict {
        p.judge(&McpHeaders::default(), Some(body), c)
    }

    fn forwards(v: &McpVerdict) -> bool {
        matches!(v, McpVerdict::Forward { .. })
    }

    #[test]
    fn tutorial_rule_verbatim() {
        let p = issue_policy();
        let v = judge(&p, &admin(&p), &call("echo"));
        assert!(forwards(&v), "{v:?}");
        assert_eq!(v.outcome(), McpOutcome::Allowed);
        assert_eq!(
            v.target(),
            Some(&Target { method: "tools/call".into(), item: Some("echo".into()) })
        );
        // Same scopes, no admin role: the rule forbids; more scopes would not help.
        let user = caller(&p, json!({"sub": "alice", "scope": "mcp:tools", "roles": ["user"]}));
        let v = judge(&p, &user, &call("echo"));
        assert_eq!(
            v,
            McpVerdict::Forbidden { id: Some(RequestId(json!(1))), target: v.target().cloned() }
        );
        assert_eq!(v.outcome(), McpOutcome::DeniedRule);
    }

    #[test]
    fn missing_claim_makes_the_rule_false_not_an_error_that_allows() {
        let p = issue_policy();
        for claims in [
            json!({"scope": "mcp:tools"}),
            json!({"scope": "mcp:tools", "roles": "admin"}),
            json!({"scope": "mcp:tools", "roles": null}),
        ] {
            let v = judge(&p, &caller(&p, claims.clone()), &call("echo"));
            assert_eq!(v.outcome(), McpOutcome::DeniedRule, "{claims}: {v:?}");
        }
        // (`"admin" in {"admin": true}` is a key test in CEL, true: CEL's semantics.)
    }

    #[test]
    fn scopes_before_rules_and_the_challenge_names_this_operations_scopes() {
        let p = issue_policy();
        // No mcp:tools: step up first, even though the rule would also refuse.
        let c = caller(&p, json!({"scope": "openid", "roles": []}));
        let v = judge(&p, &c, &call("echo"));
        assert_eq!(
            v,
            McpVerdict::InsufficientScope {
                scopes: vec!["mcp:tools".into()],
                id: Some(RequestId(json!(1))),
                target: v.target().cloned()
            }
        );
        assert_eq!(v.outcome(), McpOutcome::DeniedScope);
        // admin_* needs mcp:admin only: the challenge names that, not mcp:tools.
        let v = judge(&p, &admin(&p), &call("admin_reset"));
        match &v {
            McpVerdict::InsufficientScope { scopes, .. } => assert_eq!(scopes, &["mcp:admin"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unscoped_items_need_no_scope_and_no_rules_permits_all() {
        let p = policy(json!({"scopes": {"tools": {"echo": ["mcp:tools"]}}}));
        let nobody = caller(&p, json!({}));
        assert!(forwards(&judge(&p, &nobody, &call("other"))));
        assert_eq!(judge(&p, &nobody, &call("echo")).outcome(), McpOutcome::DeniedScope);
        let p = policy(json!({}));
        assert!(forwards(&judge(&p, &nobody, &call("anything"))));
    }

    #[test]
    fn most_specific_pattern_wins() {
        let p = policy(json!({"scopes": {"tools": {
            "*": ["any"],
            "admin_*": ["admin"],
            "admin_reset": ["reset"],
            "a*_*t": ["weird"],
            "*_x": ["x"],
            "a_x": ["ax"]
        }}}));
        let t = p.scope_table();
        assert_eq!(t.required(ItemKind::Tool, "echo"), ["any"]);
        assert_eq!(t.required(ItemKind::Tool, "admin_list"), ["admin"]);
        assert_eq!(t.required(ItemKind::Tool, "admin_reset"), ["reset"]);
        // "admin_*" (6 literal bytes) beats "a*_*t" (3) for admin_set.
        assert_eq!(t.required(ItemKind::Tool, "admin_set"), ["admin"]);
        assert_eq!(t.required(ItemKind::Tool, "ab_ct"), ["weird"]);
        assert_eq!(t.required(ItemKind::Tool, "a_x"), ["ax"]);
        assert_eq!(t.required(ItemKind::Tool, "b_x"), ["x"]);
        // Equal literal bytes: fewer stars wins ("ab*" vs "a*b*": 2 literal bytes each).
        let p = policy(json!({"scopes": {"tools": {"ab*": ["one"], "a*b*": ["two"]}}}));
        assert_eq!(p.scope_table().required(ItemKind::Tool, "abc"), ["one"]);
        // A full tie adds the scopes together (fail closed), in the patterns' byte order.
        let p = policy(json!({"scopes": {"tools": {"a*": ["s1"], "*a": ["s2"]}}}));
        assert_eq!(p.scope_table().required(ItemKind::Tool, "aa"), ["s2", "s1"]);
    }

    #[test]
    fn glob_matching() {
        let cases = [
            ("echo", "echo", true),
            ("echo", "echo2", false),
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("a*", "a", true),
            ("a*", "ba", false),
            ("*a", "ba", true),
            ("*a", "ab", false),
            ("a*b", "ab", true),
            ("a*b", "aXb", true),
            ("a*b", "aXbX", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYbZc", true),
            ("a*b*c", "acb", false),
            ("*ab*ab*", "abab", true),
            ("*ab*ab*", "aba", false),
            ("a*a", "a", false),
            ("aa*aa", "aaa", false),
            ("aa*aa", "aaaa", true),
            ("file:///private/*", "file:///private/x/y", true),
            ("file:///private/*", "file:///public/x", false),
            ("*é*", "café!", true),
        ];
        for (glob, name, expected) in cases {
            let pattern = ScopePattern::new(glob.into(), vec!["s".into()]);
            assert_eq!(pattern.matches(name), expected, "{glob} vs {name}");
        }
    }

    #[test]
    fn prompts_and_resources() {
        let p = issue_policy();
        let c = caller(&p, json!({"scope": "mcp:tools mcp:prompts", "roles": ["admin"]}));
        let get = br#"{"jsonrpc":"2.0","id":"p","method":"prompts/get","params":{"name":"greet"}}"#;
        // Scopes pass; the only rule is about tools, `mcp.tool` is absent on a prompt: false.
        assert_eq!(judge(&p, &c, get).outcome(), McpOutcome::DeniedRule);
        let p2 = policy(json!({
            "rules": ["has(mcp.prompt) && mcp.prompt.name == \"greet\"",
                      "mcp.resource.name.startsWith(\"file:///public/\")",
                      "mcp.methodName == \"resources/subscribe\" && jwt.sub == \"eitan\""],
            "scopes": {"resources": {"file:///private/*": ["mcp:private"]}}
        }));
        let c = caller(&p2, json!({"sub": "eitan"}));
        assert!(forwards(&judge(&p2, &c, get)));
        let read = |uri: &str, method: &str| {
            json!({"jsonrpc":"2.0","id":2,"method":method,"params":{"uri":uri}}).to_string()
        };
        assert!(forwards(&judge(&p2, &c, read("file:///public/a", "resources/read").as_bytes())));
        assert_eq!(
            judge(&p2, &c, read("file:///other", "resources/read").as_bytes()).outcome(),
            McpOutcome::DeniedRule
        );
        assert!(forwards(&judge(&p2, &c, read("file:///other", "resources/subscribe").as_bytes())));
        assert_eq!(
            judge(&p2, &c, read("file:///private/k", "resources/read").as_bytes()),
            McpVerdict::InsufficientScope {
                scopes: vec!["mcp:private".into()],
                id: Some(RequestId(json!(2))),
                target: Some(Target {
                    method: "resources/read".into(),
                    item: Some("file:///private/k".into())
                })
            }
        );
        // Unsubscribing is not judged.
        assert!(forwards(&judge(
            &p2,
            &c,
            read("file:///private/k", "resources/unsubscribe").as_bytes()
        )));
    }

    #[test]
    fn other_methods_notifications_and_responses_pass() {
        let p = policy(json!({"rules": ["false"], "scopes": {"tools": {"*": ["s"]}}}));
        let c = caller(&p, json!({}));
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":5,"result":{"action":"accept"}}"#,
            r#"{"jsonrpc":"2.0","id":5,"error":{"code":1,"message":"no"}}"#,
        ] {
            let v = judge(&p, &c, body.as_bytes());
            assert_eq!(
                v,
                McpVerdict::Forward { lists: vec![], target: v.target().cloned() },
                "{body}"
            );
        }
        // A judged method sent as a notification is judged all the same (no id to answer).
        let v = judge(&p, &c, br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#);
        assert_eq!(
            v,
            McpVerdict::InsufficientScope {
                scopes: vec!["s".into()],
                id: None,
                target: v.target().cloned()
            }
        );
    }

    #[test]
    fn list_requests_are_reported_only_when_filtering_can_apply() {
        let list = br#"{"jsonrpc":"2.0","id":"L","method":"tools/list"}"#;
        let p = policy(json!({"rules": ["true"]}));
        let c = caller(&p, json!({}));
        assert_eq!(
            judge(&p, &c, list),
            McpVerdict::Forward {
                lists: vec![PendingList { id: RequestId(json!("L")), kind: ListKind::Tools }],
                target: Some(Target { method: "tools/list".into(), item: None })
            }
        );
        let p = policy(json!({"scopes": {"tools": {"*": ["s"]}}}));
        assert!(
            matches!(judge(&p, &c, list), McpVerdict::Forward { lists, .. } if lists.is_empty())
        );
        let p = policy(json!({"scopes": {"tools": {"*": ["s"]}}, "hide_unscoped": true}));
        assert!(
            matches!(judge(&p, &c, list), McpVerdict::Forward { lists, .. } if lists.len() == 1)
        );
        assert!(!p.filters_list(ListKind::Prompts));
        assert!(p.filters_list(ListKind::Tools));
        // A list "notification" has no response to filter.
        let p = policy(json!({"rules": ["true"]}));
        let v = judge(&p, &c, br#"{"jsonrpc":"2.0","method":"tools/list"}"#);
        assert!(matches!(v, McpVerdict::Forward { lists, .. } if lists.is_empty()));
    }

    #[test]
    fn batches_are_refused_whole() {
        let p = issue_policy();
        let c = admin(&p);
        let ok = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
        let list = r#"{"jsonrpc":"2.0","id":2,"method":"resources/templates/list"}"#;
        let denied = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"other"}}"#;
        let scoped =
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"admin_x"}}"#;
        let v = judge(&p, &c, format!("[{ok},{list}]").as_bytes());
        assert_eq!(
            v,
            McpVerdict::Forward {
                lists: vec![PendingList {
                    id: RequestId(json!(2)),
                    kind: ListKind::ResourceTemplates
                }],
                target: None
            }
        );
        let v = judge(&p, &c, format!("[{ok},{denied}]").as_bytes());
        assert!(matches!(v, McpVerdict::Forbidden { id: None, .. }), "{v:?}");
        // Scopes first across the batch.
        let v = judge(&p, &c, format!("[{denied},{ok},{scoped}]").as_bytes());
        assert!(
            matches!(&v, McpVerdict::InsufficientScope { scopes, id: None, .. } if scopes == &["mcp:admin"]),
            "{v:?}"
        );
        let v = judge(
            &p,
            &c,
            format!(
                r#"[{ok},{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{{"name":7}}}}]"#
            )
            .as_bytes(),
        );
        assert_eq!(v, McpVerdict::BadBody { reason: BadBody::InvalidParams, id: None });
    }

    #[test]
    fn bad_bodies() {
        let p = policy(json!({"max_body_bytes": 200}));
        let c = caller(&p, json!({}));
        let cases: Vec<(Vec<u8>, BadBody)> = vec![
            (b"not json".to_vec(), BadBody::Parse),
            (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xc3\"}".to_vec(), BadBody::Parse),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}"#.to_vec(),
                BadBody::DuplicateMember,
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}"#.to_vec(),
                BadBody::InvalidParams,
            ),
            (br#"[]"#.to_vec(), BadBody::NotMessage),
            (
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"x","params":{{"a":{}1{}}}}}"#,
                    "[".repeat(70),
                    "]".repeat(70)
                )
                .into_bytes(),
                BadBody::TooDeep,
            ),
            (vec![b' '; 201], BadBody::TooLarge),
        ];
        for (body, reason) in cases {
            let v = judge(&p, &c, &body);
            assert_eq!(
                v,
                McpVerdict::BadBody { reason, id: None },
                "{}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(v.outcome(), McpOutcome::BadBody);
        }
        for encoding in ["gzip", "br", "identity, gzip", "deflate"] {
            let h = McpHeaders { content_encoding: Some(encoding), ..Default::default() };
            let v = p.judge(&h, Some(&call("e")), &c);
            assert_eq!(
                v,
                McpVerdict::BadBody { reason: BadBody::Encoding, id: None },
                "{encoding}"
            );
        }
        for encoding in ["identity", "IDENTITY", ""] {
            let h = McpHeaders { content_encoding: Some(encoding), ..Default::default() };
            assert!(forwards(&p.judge(&h, Some(&call("e")), &c)), "{encoding}");
        }
        // Escaped names are judged decoded.
        let p = issue_policy();
        let body =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools\u002fcall","params":{"name":"ech\u006f"}}"#;
        let user = caller(&p, json!({"scope": "mcp:tools", "roles": ["user"]}));
        assert_eq!(judge(&p, &user, body).outcome(), McpOutcome::DeniedRule);
        let body =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"admin\u005fx"}}"#;
        assert_eq!(judge(&p, &admin(&p), body).outcome(), McpOutcome::DeniedScope);
    }

    fn headers<'a>(method: Option<&'a str>, name: Option<&'a str>) -> McpHeaders<'a> {
        McpHeaders { content_encoding: None, mcp_method: method, mcp_name: name }
    }

    #[test]
    fn routing_headers_agreeing() {
        let p = issue_policy();
        let c = admin(&p);
        let v = p.judge(&headers(Some("tools/call"), Some("echo")), Some(&call("echo")), &c);
        assert!(forwards(&v), "{v:?}");
        let v = p.judge(&headers(Some("tools/call"), Some("admin_x")), Some(&call("admin_x")), &c);
        assert_eq!(v.outcome(), McpOutcome::DeniedScope);
        let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let v = p.judge(&headers(Some("tools/list"), None), Some(list), &c);
        assert!(matches!(v, McpVerdict::Forward { lists, .. } if lists.len() == 1));
        let discover =
            br#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{}}}"#;
        assert!(forwards(&p.judge(&headers(Some("server/discover"), None), Some(discover), &c)));
    }

    #[test]
    fn routing_headers_disagreeing_are_refused_never_forwarded() {
        let p = issue_policy();
        let c = admin(&p);
        let id1 = Some(RequestId(json!(1)));
        let mismatch = |v: McpVerdict| {
            assert!(matches!(v, McpVerdict::HeaderMismatch { .. }), "{v:?}");
            assert_eq!(v.outcome(), McpOutcome::BadBody);
            v
        };
        // The confused deputy: header names the permitted tool, body calls another.
        let v = mismatch(p.judge(
            &headers(Some("tools/call"), Some("echo")),
            Some(&call("admin_x")),
            &c,
        ));
        assert_eq!(v, McpVerdict::HeaderMismatch { id: id1.clone() });
        mismatch(p.judge(&headers(Some("tools/list"), None), Some(&call("echo")), &c));
        mismatch(p.judge(&headers(Some("tools/call"), None), Some(&call("echo")), &c));
        mismatch(p.judge(
            &headers(Some("tools/list"), Some("echo")),
            Some(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            &c,
        ));
        mismatch(p.judge(&headers(Some("prompts/get"), Some("echo")), Some(&call("echo")), &c));
        mismatch(p.judge(&headers(Some("tools/call"), Some("Echo")), Some(&call("echo")), &c));
        mismatch(p.judge(&headers(None, Some("echo")), Some(&call("admin_x")), &c));
        let batch = format!("[{}]", String::from_utf8(call("echo")).unwrap());
        mismatch(p.judge(&headers(Some("tools/call"), Some("echo")), Some(batch.as_bytes()), &c));
        // Escapes in the body are decoded before comparing.
        let body =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ech\u006f"}}"#;
        assert!(forwards(&p.judge(&headers(Some("tools/call"), Some("echo")), Some(body), &c)));
        // A body the reader refuses is a bad body, headers or not.
        let v = p.judge(&headers(Some("tools/call"), Some("echo")), Some(b"{"), &c);
        assert_eq!(v, McpVerdict::BadBody { reason: BadBody::Parse, id: None });
    }

    #[test]
    fn trusted_routing_headers_skip_the_body() {
        let p = policy(json!({
            "rules": ["mcp.tool.name == \"echo\""],
            "scopes": {"tools": {"admin_*": ["mcp:admin"]}},
            "trust_routing_headers": true
        }));
        let c = caller(&p, json!({}));
        let h = headers(Some("tools/call"), Some("echo"));
        assert!(!p.needs_body(&h));
        assert!(forwards(&p.judge(&h, None, &c)));
        let h = headers(Some("tools/call"), Some("other"));
        assert_eq!(
            p.judge(&h, None, &c),
            McpVerdict::Forbidden { id: None, target: p.judge(&h, None, &c).target().cloned() }
        );
        let h = headers(Some("tools/call"), Some("admin_x"));
        assert_eq!(p.judge(&h, None, &c).outcome(), McpOutcome::DeniedScope);
        // Missing or extra Mcp-Name: refused from the headers alone.
        let h = headers(Some("tools/call"), None);
        assert_eq!(p.judge(&h, None, &c), McpVerdict::HeaderMismatch { id: None });
        let h = headers(Some("ping"), Some("x"));
        assert_eq!(p.judge(&h, None, &c), McpVerdict::HeaderMismatch { id: None });
        // Lists to filter need the body (the id); no Mcp-Method needs it; untrusted needs it.
        assert!(p.needs_body(&headers(Some("tools/list"), None)));
        assert!(!p.needs_body(&headers(Some("ping"), None)));
        assert!(p.needs_body(&headers(None, None)));
        assert_eq!(
            p.judge(&headers(None, None), None, &c),
            McpVerdict::BadBody { reason: BadBody::NotMessage, id: None }
        );
        let untrusted = issue_policy();
        assert!(untrusted.needs_body(&headers(Some("tools/call"), Some("echo"))));
        let v =
            untrusted.judge(&headers(Some("tools/call"), Some("echo")), None, &admin(&untrusted));
        assert_eq!(v.outcome(), McpOutcome::BadBody);
        // With the body at hand anyway, it is still checked.
        let v = p.judge(&headers(Some("tools/call"), Some("echo")), Some(&call("other")), &c);
        assert!(matches!(v, McpVerdict::HeaderMismatch { .. }));
    }

    #[test]
    fn routing_values_are_judged_as_the_server_decodes_them() {
        // SEP-2243 clients (the TypeScript SDK 2.x) wrap names that are not plain printable
        // ASCII as `=?base64?…?=`, and may wrap any name; the server decodes before comparing.
        assert_eq!(decode_routing_value("echo").as_deref(), Some("echo"));
        assert_eq!(decode_routing_value("=?base64?Y2Fmw6k=?=").as_deref(), Some("café"));
        assert_eq!(decode_routing_value("=?base64?YWRtaW5feA==?=").as_deref(), Some("admin_x"));
        assert_eq!(decode_routing_value("=?base64??=").as_deref(), Some(""));
        assert_eq!(decode_routing_value("=?base64?YWRtaW5feA?="), None); // unpadded
        assert_eq!(decode_routing_value("=?base64?/w==?="), None); // not UTF-8
        assert_eq!(decode_routing_value("=?base64?@@@@?="), None);

        let p = issue_policy();
        let c = admin(&p);
        let wrapped = headers(Some("tools/call"), Some("=?base64?ZWNobw==?="));
        assert!(forwards(&p.judge(&wrapped, Some(&call("echo")), &c)));
        let bad = headers(Some("tools/call"), Some("=?base64?ZWNobw?="));
        assert_eq!(p.judge(&bad, Some(&call("echo")), &c), McpVerdict::HeaderMismatch { id: None });
        let other = headers(Some("tools/call"), Some("=?base64?ZWNobw==?="));
        assert!(matches!(
            p.judge(&other, Some(&call("admin_x")), &c),
            McpVerdict::HeaderMismatch { .. }
        ));

        // Trusting the headers, a wrapped name must meet its pattern's scopes, not dodge them.
        let trusting = policy(json!({
            "scopes": {"tools": {"admin_*": ["mcp:admin"]}},
            "trust_routing_headers": true
        }));
        let plain = caller(&trusting, json!({"scope": "mcp:tools"}));
        let h = headers(Some("tools/call"), Some("=?base64?YWRtaW5feA==?="));
        assert!(!trusting.needs_body(&h));
        assert_eq!(trusting.judge(&h, None, &plain).outcome(), McpOutcome::DeniedScope);
        let h = headers(Some("tools/call"), Some("=?base64?YWRtaW5feA?="));
        assert_eq!(trusting.judge(&h, None, &plain), McpVerdict::HeaderMismatch { id: None });
    }

    #[test]
    fn listed_items() {
        let p = policy(json!({
            "rules": ["mcp.tool.name == \"echo\" && \"admin\" in jwt.roles",
                      "has(mcp.prompt)",
                      "mcp.methodName == \"resources/read\" && mcp.resource.name.startsWith(\"file:///pub\")"],
            "scopes": {"tools": {"echo": ["mcp:tools"]}, "resources": {"file:///pub/s*": ["mcp:s"]}},
        }));
        let a = caller(&p, json!({"roles": ["admin"]}));
        let u = caller(&p, json!({"roles": ["user"]}));
        // An item as the list rewriter shows it to the policy: its naming member's string.
        let item = |v: Value| v.as_object().unwrap().clone();
        let named = |kind: ListKind, item: &Map<String, Value>| {
            item.get(kind.naming_member()).and_then(Value::as_str).map(str::to_owned)
        };
        let echo = item(json!({"name": "echo", "description": "d", "inputSchema": {}}));
        // Without hide_unscoped the token's scopes do not hide an item.
        assert!(p.permits_listed(ListKind::Tools, named(ListKind::Tools, &echo).as_deref(), &a));
        assert!(!p.permits_listed(ListKind::Tools, named(ListKind::Tools, &echo).as_deref(), &u));
        assert!(p.permits_listed(
            ListKind::Prompts,
            named(ListKind::Prompts, &item(json!({"name": "x"}))).as_deref(),
            &u
        ));
        assert!(p.permits_listed(
            ListKind::Resources,
            named(ListKind::Resources, &item(json!({"uri": "file:///pub/a", "name": "a"})))
                .as_deref(),
            &u
        ));
        assert!(!p.permits_listed(
            ListKind::Resources,
            named(ListKind::Resources, &item(json!({"uri": "file:///x", "name": "file:///pub"})))
                .as_deref(),
            &u
        ));
        assert!(p.permits_listed(
            ListKind::ResourceTemplates,
            named(ListKind::ResourceTemplates, &item(json!({"uriTemplate": "file:///pub/{x}"})))
                .as_deref(),
            &u
        ));
        assert!(!p.permits_listed(
            ListKind::ResourceTemplates,
            named(ListKind::ResourceTemplates, &item(json!({"uriTemplate": "file:///{x}"})))
                .as_deref(),
            &u
        ));
        // Unnamed items are hidden when anything is checked.
        assert!(!p.permits_listed(
            ListKind::Tools,
            named(ListKind::Tools, &item(json!({"title": "echo"}))).as_deref(),
            &a
        ));
        assert!(!p.permits_listed(
            ListKind::Tools,
            named(ListKind::Tools, &item(json!({"name": 1}))).as_deref(),
            &a
        ));
        // hide_unscoped adds the scopes.
        let h = policy(json!({
            "scopes": {"tools": {"echo": ["mcp:tools"]}, "resources": {"file:///s*": ["mcp:s"]}},
            "hide_unscoped": true
        }));
        let none = caller(&h, json!({}));
        let some = caller(&h, json!({"scp": ["mcp:tools"]}));
        assert!(!h.permits_listed(
            ListKind::Tools,
            named(ListKind::Tools, &echo).as_deref(),
            &none
        ));
        assert!(h.permits_listed(ListKind::Tools, named(ListKind::Tools, &echo).as_deref(), &some));
        assert!(h.permits_listed(
            ListKind::Tools,
            named(ListKind::Tools, &item(json!({"name": "other"}))).as_deref(),
            &none
        ));
        assert!(!h.permits_listed(
            ListKind::ResourceTemplates,
            named(ListKind::ResourceTemplates, &item(json!({"uriTemplate": "file:///s/{x}"})))
                .as_deref(),
            &some
        ));
        // Nothing to check: everything shows, named or not.
        let open = policy(json!({"scopes": {"tools": {"echo": ["mcp:tools"]}}}));
        assert!(open.permits_listed(
            ListKind::Tools,
            named(ListKind::Tools, &item(json!({}))).as_deref(),
            &none
        ));
    }

    #[test]
    fn caller_scopes_like_the_token_check() {
        let p = policy(json!({}));
        let c = caller(&p, json!({"scope": "a  b", "scp": "c d"}));
        assert_eq!(c.scopes(), ["a", "b", "c", "d"]);
        let c = caller(&p, json!({"scp": ["x", 1, "y"]}));
        assert_eq!(c.scopes(), ["x", "y"]);
        assert!(c.has_scope("y") && !c.has_scope("z"));
    }

    #[test]
    fn jwt_values_in_cel() {
        let p = policy(json!({"rules": [
            "jwt.sub == \"u\" && jwt.n == 3 && jwt.big > 10 && jwt.f > 1.0 && jwt.nested.key == \"v\" && jwt.flag && jwt.none == null"
        ]}));
        let c = caller(
            &p,
            json!({"sub": "u", "n": 3, "big": u64::MAX, "f": 1.5, "nested": {"key": "v"}, "flag": true, "none": null}),
        );
        assert!(forwards(&judge(&p, &c, &call("t"))));
        let c = caller(&p, json!({"sub": "u"}));
        assert_eq!(judge(&p, &c, &call("t")).outcome(), McpOutcome::DeniedRule);
        // A rule that is not boolean permits nothing.
        let p = policy(json!({"rules": ["jwt.sub", "1"]}));
        let c = caller(&p, json!({"sub": "u"}));
        assert_eq!(judge(&p, &c, &call("t")).outcome(), McpOutcome::DeniedRule);
        // Any true rule permits.
        let p = policy(json!({"rules": ["jwt.missing == 1", "mcp.tool.name == \"t\""]}));
        assert!(forwards(&judge(&p, &c, &call("t"))));
    }

    fn body_json(r: &LocalResponse) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn local_responses() {
        let url = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";
        assert_eq!(response(&McpVerdict::Forward { lists: vec![], target: None }, url), None);
        let v = McpVerdict::InsufficientScope {
            scopes: vec!["mcp:admin".into(), "mcp:x".into()],
            id: Some(RequestId(json!("abc"))),
            target: None,
        };
        let r = response(&v, url).unwrap();
        assert_eq!(r.status, 403);
        assert_eq!(
            r.header("www-authenticate"),
            Some(format!("Bearer error=\"insufficient_scope\", scope=\"mcp:admin mcp:x\", resource_metadata=\"{url}\"").as_str())
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        let b = body_json(&r);
        assert_eq!(b["jsonrpc"], "2.0");
        assert_eq!(b["id"], "abc");
        assert_eq!(b["error"]["code"], INSUFFICIENT_SCOPE);

        let r =
            response(&McpVerdict::Forbidden { id: Some(RequestId(json!(7))), target: None }, url)
                .unwrap();
        assert_eq!(r.status, 403);
        assert_eq!(r.header("www-authenticate"), None, "no challenge: the client must not loop");
        assert_eq!(body_json(&r)["id"], 7);
        assert_eq!(body_json(&r)["error"]["code"], FORBIDDEN);

        let r = response(&McpVerdict::Forbidden { id: None, target: None }, url).unwrap();
        assert_eq!(body_json(&r)["id"], Value::Null);

        let r =
            response(&McpVerdict::HeaderMismatch { id: Some(RequestId(json!(1))) }, url).unwrap();
        assert_eq!((r.status, body_json(&r)["error"]["code"].clone()), (400, json!(-32020)));
        assert_eq!(r.header("www-authenticate"), None);

        for (reason, status, code) in [
            (BadBody::TooLarge, 413, -32600),
            (BadBody::Encoding, 415, -32600),
            (BadBody::Parse, 400, -32700),
            (BadBody::TooDeep, 400, -32600),
            (BadBody::DuplicateMember, 400, -32600),
            (BadBody::NotMessage, 400, -32600),
            (BadBody::InvalidParams, 400, -32602),
        ] {
            let r = response(&McpVerdict::BadBody { reason, id: None }, url).unwrap();
            assert_eq!(r.status, status, "{reason:?}");
            let b = body_json(&r);
            assert_eq!(b["error"]["code"], code, "{reason:?}");
            assert_eq!(b["id"], Value::Null);
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
    }

    #[test]
    fn list_verdicts_are_remembered_per_caller_and_array() {
        use crate::mcp::lists::{rewrite_json_body, ListMemo, ListRewrite};
        let p = issue_policy();
        let memo = ListMemo::default();
        let body =
            br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo"},{"name":"other"}]}}"#;
        let pending = vec![PendingList { id: RequestId(json!(3)), kind: ListKind::Tools }];
        let listed = |c: &Caller| match rewrite_json_body(body, &pending, &p.list_judge(c), &memo) {
            ListRewrite::Filtered { body, .. } => String::from_utf8(body).unwrap(),
            other => panic!("{other:?}"),
        };
        let (a, u) = (admin(&p), caller(&p, json!({"scope": "mcp:tools", "roles": ["user"]})));
        for _ in 0..3 {
            assert_eq!(
                listed(&a),
                r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo"}]}}"#
            );
            assert_eq!(listed(&u), r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]}}"#);
        }
        // One array, one entry each, reused.
        assert_eq!(memo.len(), 1);
        assert_eq!(a.list_verdicts.borrow().len(), 1);
        assert_eq!(u.list_verdicts.borrow().len(), 1);
        // A caller of another policy (reconfigured) neither uses nor keeps verdicts here.
        let other = issue_policy();
        let stale = admin(&other);
        assert!(p.list_judge(&stale).remembered_verdicts(ArrayId::next()).is_none());
        assert_eq!(
            listed(&stale),
            r#"{"jsonrpc":"2.0","id":3,"result":{"tools":[{"name":"echo"}]}}"#
        );
        assert!(stale.list_verdicts.borrow().is_empty());
        // Bounded.
        let judge = p.list_judge(&a);
        for _ in 0..(LIST_VERDICTS_PER_CALLER + 2) {
            judge.remember_verdicts(ArrayId::next(), &[true]);
        }
        assert_eq!(a.list_verdicts.borrow().len(), LIST_VERDICTS_PER_CALLER);
    }

    #[test]
    fn remembered_answers_equal_fresh_ones() {
        let p = issue_policy();
        let a = admin(&p);
        let u = caller(&p, json!({"scope": "mcp:tools", "roles": ["user"]}));
        for _ in 0..3 {
            assert!(forwards(&judge(&p, &a, &call("echo"))));
            assert_eq!(judge(&p, &u, &call("echo")).outcome(), McpOutcome::DeniedRule);
        }
        // The method is part of the key: a prompt named like a permitted tool is not.
        let c = caller(&p, json!({"scope": "mcp:tools mcp:prompts", "roles": ["admin"]}));
        assert!(forwards(&judge(&p, &c, &call("echo"))));
        let get = br#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"echo"}}"#;
        assert_eq!(judge(&p, &c, get).outcome(), McpOutcome::DeniedRule);
        // Past the bound, answers are computed, still right.
        for i in 0..(ANSWERS_PER_CALLER + 10) {
            assert_eq!(judge(&p, &a, &call(&format!("t{i}"))).outcome(), McpOutcome::DeniedRule);
        }
        assert!(forwards(&judge(&p, &a, &call("echo"))));
        assert_eq!(a.answers.borrow().len(), ANSWERS_PER_CALLER);
    }

    #[test]
    fn counters() {
        assert_eq!(McpOutcome::Allowed.counter(), "mcp.allowed");
        assert_eq!(McpOutcome::DeniedScope.counter(), "mcp.denied.scope");
        assert_eq!(McpOutcome::DeniedRule.counter(), "mcp.denied.rule");
        assert_eq!(McpOutcome::BadBody.counter(), "mcp.bad_body");
    }
}
