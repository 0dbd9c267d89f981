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

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, Program};
use serde_json::{json, Map, Value};

use super::jsonrpc::{self, Body, Message, MessageKind, ReadError};
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
#[derive(Debug)]
pub struct Rule {
    source: String,
    program: Program,
}

impl Rule {
    /// Parses a rule; the error is the CEL parser's message.
    pub fn compile(source: &str) -> Result<Rule, String> {
        let program = Program::compile(source).map_err(|e| e.to_string())?;
        Ok(Rule { source: source.to_string(), program })
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The verified caller as the policy sees it, built once per token (cache it with the
/// token's verdict): the claims as a CEL value, and the granted scopes.
#[derive(Debug)]
pub struct Caller {
    jwt: Box<dyn Val>,
    scopes: Vec<String>,
}

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
        Caller { jwt, scopes }
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

    /// Whether any rule permits `item` (true with no rules).
    fn rules_permit(&self, method: &str, kind: ItemKind, item: &str, caller: &Caller) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        let mcp = mcp_value(method, kind, item);
        let vars = Vars { jwt: caller.jwt.as_ref(), mcp: mcp.as_ref() };
        self.rules.iter().any(|rule| {
            let mut context = Context::with_env(Arc::clone(&self.env));
            context.set_variable_resolver(&vars);
            matches!(rule.program.execute(&context), Ok(cel::Value::Bool(true)))
        })
    }

    /// Whether a list response may show `item` to `caller`: the rules (as if the item were
    /// used: `mcp.methodName` is `tools/call`, `prompts/get` or `resources/read`) and, with
    /// `hide_unscoped`, the scopes. Items are named by `name` (tools, prompts), `uri`
    /// (resources) and `uriTemplate` (resource templates, judged by the template string
    /// itself against the resource patterns and rules). An item without its name is hidden
    /// whenever anything is to be checked.
    pub fn permits_listed(
        &self,
        kind: ListKind,
        item: &Map<String, Value>,
        caller: &Caller,
    ) -> bool {
        if !self.filters_list(kind) {
            return true;
        }
        let member = match kind {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::ResourceTemplates => "uriTemplate",
        };
        let Some(name) = item.get(member).and_then(Value::as_str) else { return false };
        let item_kind = ItemKind::of_list(kind);
        if self.hide_unscoped
            && self.scopes.required(item_kind, name).iter().any(|s| !caller.has_scope(s))
        {
            return false;
        }
        self.rules_permit(item_kind.use_method(), item_kind, name, caller)
    }
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
