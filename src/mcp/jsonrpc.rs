//! A strict reader of an MCP request body: one JSON-RPC 2.0 message or a batch of them.
//!
//! What the policy reads must mean one thing to the filter and to the server behind it, so
//! the reader refuses what a lenient parser would resolve its own way: duplicate member
//! names (in a message and in its `params`; serde_json's `Value` would keep the last one, a
//! server might keep the first), nesting deeper than [`MAX_DEPTH`], invalid UTF-8, a batch
//! with any bad element, an item name that is not a string. Escapes are decoded by
//! serde_json before anything is compared, so `"ech\u006f"` is `echo`.
//!
//! The reader never builds a tree: serde_json drives visitors that keep only the envelope's
//! members and `params.name` / `params.uri`, and skip everything else while counting depth.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use super::RequestId;

/// The deepest nesting of arrays and objects accepted (a lone message is at depth 1, its
/// `params` at 2). serde_json's own limit (128) is never reached.
pub const MAX_DEPTH: usize = 64;
/// The longest item name or URI judged; longer ones are refused (MCP tool names are at most
/// 128 characters; this leaves room for long URIs while bounding glob matching).
pub const MAX_ITEM_BYTES: usize = 8192;

/// What kind of JSON-RPC message a batch element or a lone body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Notification,
    /// A client's answer to a server request (`result` or `error`).
    Response,
}

/// The parts of one message the policy reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: MessageKind,
    /// `None` only for a response.
    pub method: Option<String>,
    /// `None` for a notification (and a response with a null id).
    pub id: Option<RequestId>,
    /// `params.name` for `tools/call` and `prompts/get`, `params.uri` for
    /// `resources/read|subscribe|unsubscribe`, when it is a string.
    pub item: Option<String>,
}

/// A body: one message, or a batch (a JSON array, MCP 2025-03-26).
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Single(Message),
    Batch(Vec<Message>),
}

impl Body {
    pub fn messages(&self) -> &[Message] {
        match self {
            Body::Single(m) => std::slice::from_ref(m),
            Body::Batch(list) => list,
        }
    }
}

/// Why a body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Not UTF-8.
    Utf8,
    /// Not JSON (syntax, a lone surrogate, a number out of range, trailing bytes).
    Syntax,
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A member name twice in a message or in its `params`.
    DuplicateMember,
    /// JSON, but not a JSON-RPC 2.0 message or a non-empty batch of them.
    NotMessage,
    /// A judged method whose `params.name` / `params.uri` is missing, not a string, or
    /// longer than [`MAX_ITEM_BYTES`].
    InvalidParams,
}

/// Methods whose item is named by `params.name`.
pub fn names_by_name(method: &str) -> bool {
    matches!(method, "tools/call" | "prompts/get")
}

/// Methods whose item is named by `params.uri`.
pub fn names_by_uri(method: &str) -> bool {
    matches!(method, "resources/read" | "resources/subscribe" | "resources/unsubscribe")
}

/// Methods that name an item (SEP-2243: those that carry `Mcp-Name`).
pub fn names_item(method: &str) -> bool {
    names_by_name(method) || names_by_uri(method)
}

/// Methods the policy judges; the item must be a string for these. (Unsubscribing
/// reveals nothing and is not judged.)
pub fn is_judged(method: &str) -> bool {
    matches!(method, "tools/call" | "prompts/get" | "resources/read" | "resources/subscribe")
}

/// Reads a body. Never panics; memory is bounded by the body (no tree is kept).
pub fn read(body: &[u8]) -> Result<Body, ReadError> {
    let text = std::str::from_utf8(body).map_err(|_| ReadError::Utf8)?;
    let failure = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = TopSeed { failure: &failure }.deserialize(&mut de);
    let body = match parsed {
        Ok(body) => body,
        Err(e) => {
            return Err(failure.get().unwrap_or(match e.classify() {
                serde_json::error::Category::Data => ReadError::NotMessage,
                _ => ReadError::Syntax,
            }))
        }
    };
    de.end().map_err(|_| ReadError::Syntax)?;
    Ok(body)
}

fn fail<E: de::Error>(failure: &Cell<Option<ReadError>>, why: ReadError) -> E {
    // The first reason wins: an inner failure propagates out through the outer visitors.
    if failure.get().is_none() {
        failure.set(Some(why));
    }
    E::custom("refused")
}

struct TopSeed<'a> {
    failure: &'a Cell<Option<ReadError>>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Body;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Body, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Body;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message or batch")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Body, A::Error> {
        let message = EnvelopeSeed { failure: self.failure, depth: 1 }.visit_map(map)?;
        Ok(Body::Single(message))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body, A::Error> {
        let mut list = Vec::new();
        while let Some(message) =
            seq.next_element_seed(EnvelopeSeed { failure: self.failure, depth: 2 })?
        {
            list.push(message);
        }
        if list.is_empty() {
            return Err(fail(self.failure, ReadError::NotMessage));
        }
        Ok(Body::Batch(list))
    }
    // Scalars at the top are valid JSON but no message: the default visit_* methods report
    // a type error, which `read` classifies as NotMessage.
}

/// Member names seen in one object, to refuse a second one. Names without escapes are
/// borrowed from the body: no allocation for the usual few members.
struct Seen<'de>(Vec<Cow<'de, str>>);

impl<'de> Seen<'de> {
    fn insert<E: de::Error>(
        &mut self,
        key: Cow<'de, str>,
        failure: &Cell<Option<ReadError>>,
    ) -> Result<usize, E> {
        if self.0.contains(&key) {
            return Err(fail(failure, ReadError::DuplicateMember));
        }
        self.0.push(key);
        Ok(self.0.len() - 1)
    }

    fn name(&self, at: usize) -> &str {
        self.0.get(at).map_or("", |k| k.as_ref())
    }
}

/// A member name, borrowed when serde_json can (no escapes in it).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

/// One message: an object at `depth`.
struct EnvelopeSeed<'a> {
    failure: &'a Cell<Option<ReadError>>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Message;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Message, D::Error> {
        d.deserialize_any(self)
    }
}

/// A member the reader keeps as a string, or notes as being something else.
#[derive(Debug, Default)]
enum Member {
    #[default]
    Absent,
    Str(String),
    Other,
}

/// A JSON-RPC id as the envelope holds it.
enum IdMember {
    Absent,
    Null,
    Valid(Value),
    Invalid,
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Message;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-RPC message object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        if self.depth > MAX_DEPTH {
            return Err(fail(self.failure, ReadError::TooDeep));
        }
        let mut seen = Seen(Vec::with_capacity(4));
        let mut jsonrpc = Member::Absent;
        let mut method = Member::Absent;
        let mut id = IdMember::Absent;
        let mut params: Option<Params> = None;
        let mut has_result_or_error = false;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let at = seen.insert(key, self.failure)?;
            let inner = self.depth + 1;
            match seen.name(at) {
                "jsonrpc" => {
                    jsonrpc =
                        map.next_value_seed(StrSeed { failure: self.failure, depth: inner })?
                }
                "method" => {
                    method = map.next_value_seed(StrSeed { failure: self.failure, depth: inner })?
                }
                "id" => id = map.next_value_seed(IdSeed { failure: self.failure, depth: inner })?,
                "params" => {
                    params = Some(
                        map.next_value_seed(ParamsSeed { failure: self.failure, depth: inner })?,
                    )
                }
                other => {
                    if other == "result" || other == "error" {
                        has_result_or_error = true;
                    }
                    map.next_value_seed(Skip { failure: self.failure, depth: inner })?;
                }
            }
        }
        if !matches!(&jsonrpc, Member::Str(v) if v == "2.0") {
            return Err(fail(self.failure, ReadError::NotMessage));
        }
        let id_present = !matches!(id, IdMember::Absent);
        let id = match id {
            IdMember::Absent => None,
            IdMember::Null => {
                // Only an error response may carry a null id (JSON-RPC 2.0 section 5).
                if matches!(method, Member::Absent) && has_result_or_error {
                    None
                } else {
                    return Err(fail(self.failure, ReadError::NotMessage));
                }
            }
            IdMember::Valid(v) => Some(RequestId(v)),
            IdMember::Invalid => return Err(fail(self.failure, ReadError::NotMessage)),
        };
        let method = match method {
            Member::Absent => None,
            Member::Str(m) => Some(m),
            Member::Other => return Err(fail(self.failure, ReadError::NotMessage)),
        };
        let Some(method) = method else {
            // A response: `result` or `error`, and an id (null only for an error); no params.
            if !has_result_or_error || !id_present || params.is_some() {
                return Err(fail(self.failure, ReadError::NotMessage));
            }
            return Ok(Message { kind: MessageKind::Response, method: None, id, item: None });
        };
        if has_result_or_error {
            // A request that is also a response means something different to each reader.
            return Err(fail(self.failure, ReadError::NotMessage));
        }
        let kind = if id.is_some() { MessageKind::Request } else { MessageKind::Notification };
        let params = params.unwrap_or_default();
        let wanted = if names_by_name(&method) {
            Some(params.name)
        } else if names_by_uri(&method) {
            Some(params.uri)
        } else {
            None
        };
        let item = match wanted {
            Some(Member::Str(s)) if s.len() <= MAX_ITEM_BYTES => Some(s),
            Some(_) if is_judged(&method) => {
                return Err(fail(self.failure, ReadError::InvalidParams));
            }
            _ => None,
        };
        Ok(Message { kind, method: Some(method), id, item })
    }
}

/// A member kept only if it is a string.
struct StrSeed<'a> {
    failure: &'a Cell<Option<ReadError>>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for StrSeed<'_> {
    type Value = Member;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Member, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrSeed<'_> {
    type Value = Member;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Member, E> {
        Ok(Member::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Member, E> {
        Ok(Member::Str(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Member, E> {
        Ok(Member::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Member, E> {
        Ok(Member::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Member, E> {
        Ok(Member::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Member, E> {
        Ok(Member::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Member, E> {
        Ok(Member::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Member, A::Error> {
        Skip { failure: self.failure, depth: self.depth }.visit_seq(seq)?;
        Ok(Member::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Member, A::Error> {
        Skip { failure: self.failure, depth: self.depth }.visit_map(map)?;
        Ok(Member::Other)
    }
}

/// The `id` member: a string or a number (kept as a JSON value), null, or something else.
struct IdSeed<'a> {
    failure: &'a Cell<Option<ReadError>>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for IdSeed<'_> {
    type Value = IdMember;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<IdMember, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IdSeed<'_> {
    type Value = IdMember;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<IdMember, E> {
        Ok(IdMember::Valid(Value::String(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<IdMember, E> {
        Ok(IdMember::Valid(Value::String(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<IdMember, E> {
        Ok(IdMember::Valid(Value::Number(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<IdMember, E> {
        Ok(IdMember::Valid(Value::Number(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<IdMember, E> {
        Ok(Number::from_f64(v).map_or(IdMember::Invalid, |n| IdMember::Valid(Value::Number(n))))
    }
    fn visit_unit<E: de::Error>(self) -> Result<IdMember, E> {
        Ok(IdMember::Null)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<IdMember, E> {
        Ok(IdMember::Invalid)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<IdMember, A::Error> {
        Skip { failure: self.failure, depth: self.depth }.visit_seq(seq)?;
        Ok(IdMember::Invalid)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<IdMember, A::Error> {
        Skip { failure: self.failure, depth: self.depth }.visit_map(map)?;
        Ok(IdMember::Invalid)
    }
}

/// What the reader keeps of `params`.
#[derive(Debug, Default)]
struct Params {
    name: Member,
    uri: Member,
}

struct ParamsSeed<'a> {
    failure: &'a Cell<Option<ReadError>>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ParamsSeed<'_> {
    type Value = Params;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Params, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ParamsSeed<'_> {
    type Value = Params;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("params: an object or an array")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
        if self.depth > MAX_DEPTH {
            return Err(fail(self.failure, ReadError::TooDeep));
        }
        let mut seen = Seen(Vec::with_capacity(4));
        let mut params = Params::default();
        let inner = self.depth + 1;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let at = seen.insert(key, self.failure)?;
            match seen.name(at) {
                "name" => {
                    params.name =
                        map.next_value_seed(StrSeed { failure: self.failure, depth: inner })?
                }
                "uri" => {
                    params.uri =
                        map.next_value_seed(StrSeed { failure: self.failure, depth: inner })?
                }
                _ => map.next_value_seed(Skip { failure: self.failure, depth: inner })?,
            }
        }
        Ok(params)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Params, A::Error> {
        // By-position params name nothing: a judged method then lacks its item.
        Skip { failure: self.failure, depth: self.depth }.visit_seq(seq)?;
        Ok(Params { name: Member::Other, uri: Member::Other })
    }
    // JSON-RPC params are structured: scalars are a type error, classified NotMessage.
}

/// Any value, skipped, with its depth counted (`depth` is the depth of the value itself).
struct Skip<'a> {
    failure: &'a Cell<Option<ReadError>>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Skip<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth > MAX_DEPTH {
            return Err(fail(self.failure, ReadError::TooDeep));
        }
        while seq
            .next_element_seed(Skip { failure: self.failure, depth: self.depth + 1 })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth > MAX_DEPTH {
            return Err(fail(self.failure, ReadError::TooDeep));
        }
        // Member names below `params` are not read by the policy: duplicates there are the
        // server's business, and skipping them keeps the reader allocation-free.
        while map.next_key_seed(SkipKey)?.is_some() {
            map.next_value_seed(Skip { failure: self.failure, depth: self.depth + 1 })?;
        }
        Ok(())
    }
}

/// A member name, skipped (still decoded by serde_json, so bad escapes are refused).
struct SkipKey;

impl<'de> DeserializeSeed<'de> for SkipKey {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for SkipKey {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(body: &str) -> Message {
        match read(body.as_bytes()) {
            Ok(Body::Single(m)) => m,
            other => panic!("{body}: {other:?}"),
        }
    }

    fn err(body: &[u8]) -> ReadError {
        read(body).expect_err(&String::from_utf8_lossy(body))
    }

    #[test]
    fn tools_call() {
        let m = one(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"x":[1,{"y":null}]}}}"#,
        );
        assert_eq!(m.kind, MessageKind::Request);
        assert_eq!(m.method.as_deref(), Some("tools/call"));
        assert_eq!(m.id, Some(RequestId(json!(7))));
        assert_eq!(m.item.as_deref(), Some("echo"));
    }

    #[test]
    fn member_order_does_not_matter() {
        let m = one(
            r#"{"params":{"arguments":{},"name":"echo"},"method":"tools/call","id":"a","jsonrpc":"2.0"}"#,
        );
        assert_eq!(m.item.as_deref(), Some("echo"));
        assert_eq!(m.id, Some(RequestId(json!("a"))));
    }

    #[test]
    fn escapes_are_decoded() {
        let m = one(
            r#"{"jsonrpc":"2.0","id":1,"me\u0074hod":"tools\/call","params":{"n\u0061me":"ech\u006f"}}"#,
        );
        assert_eq!(m.method.as_deref(), Some("tools/call"));
        assert_eq!(m.item.as_deref(), Some("echo"));
    }

    #[test]
    fn resources_by_uri_and_prompts_by_name() {
        for method in ["resources/read", "resources/subscribe", "resources/unsubscribe"] {
            let m = one(&format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"uri":"file:///a","name":"x"}}}}"#
            ));
            assert_eq!(m.item.as_deref(), Some("file:///a"), "{method}");
        }
        let m = one(
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","uri":"u"}}"#,
        );
        assert_eq!(m.item.as_deref(), Some("p"));
        let m = one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"p"}}"#);
        assert_eq!(m.item, None);
    }

    #[test]
    fn kinds() {
        let n = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!((n.kind, n.id.clone()), (MessageKind::Notification, None));
        let r = one(r#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#);
        assert_eq!((r.kind, r.method.clone()), (MessageKind::Response, None));
        let e = one(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"x"}}"#);
        assert_eq!((e.kind, e.id.clone()), (MessageKind::Response, None));
    }

    #[test]
    fn batch() {
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/x"}]"#;
        match read(body).unwrap() {
            Body::Batch(list) => assert_eq!(list.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(err(b"[]"), ReadError::NotMessage);
        assert_eq!(err(br#"[{"jsonrpc":"2.0","id":1,"method":"a"}, 1]"#), ReadError::NotMessage);
        assert_eq!(err(br#"[[{"jsonrpc":"2.0","id":1,"method":"a"}]]"#), ReadError::NotMessage);
    }

    #[test]
    fn duplicates_refused_where_the_policy_reads() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","meth\u006fd":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","extra":1,"extra":2}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}]"#,
        ] {
            assert_eq!(err(body.as_bytes()), ReadError::DuplicateMember, "{body}");
        }
        // Below params, names are the server's business.
        one(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"k":1,"k":2}}}"#,
        );
    }

    #[test]
    fn item_must_be_a_string() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["echo"]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":null}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["echo"]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":{}}}"#,
            r#"{"jsonrpc":"2.0","method":"prompts/get","params":{"name":false}}"#,
        ] {
            assert_eq!(err(body.as_bytes()), ReadError::InvalidParams, "{body}");
        }
        let long = "a".repeat(MAX_ITEM_BYTES + 1);
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{long}"}}}}"#
        );
        assert_eq!(err(body.as_bytes()), ReadError::InvalidParams);
        // Unsubscribing is not judged: its uri may be anything.
        let m =
            one(r#"{"jsonrpc":"2.0","id":1,"method":"resources/unsubscribe","params":{"uri":5}}"#);
        assert_eq!(m.item, None);
    }

    #[test]
    fn not_messages() {
        for body in [
            r#"1"#,
            r#""tools/call""#,
            r#"null"#,
            r#"{}"#,
            r#"{"id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":2.0,"id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            r#"{"jsonrpc":"2.0","id":true,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":{},"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"e"},"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"params":{}}"#,
        ] {
            assert_eq!(err(body.as_bytes()), ReadError::NotMessage, "{body}");
        }
    }

    #[test]
    fn syntax_and_utf8() {
        assert_eq!(err(b""), ReadError::Syntax);
        assert_eq!(err(b"{"), ReadError::Syntax);
        assert_eq!(err(br#"{"jsonrpc":"2.0","id":1,"method":"a"} x"#), ReadError::Syntax);
        assert_eq!(err(br#"{"jsonrpc":"2.0","id":1,"method":"a"}{}"#), ReadError::Syntax);
        assert_eq!(err(br#"{"jsonrpc":"2.0","id":1,"method":"\ud800"}"#), ReadError::Syntax);
        assert_eq!(err(br#"{"jsonrpc":"2.0","id":1e999,"method":"a"}"#), ReadError::Syntax);
        assert_eq!(err(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}"), ReadError::Utf8);
        assert_eq!(err(b"\xef\xbb\xbf{}"), ReadError::Syntax, "a BOM is not JSON");
        // Whitespace around the value is JSON.
        one(" \n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"}\r\n ");
    }

    #[test]
    fn depth_bound() {
        let nest = |n: usize| {
            // The message is at depth 1, params 2, then arrays at depths 3..=n.
            let inner = "[".repeat(n - 2) + &"]".repeat(n - 2);
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"e","arguments":{inner}}}}}"#
            )
        };
        one(&nest(MAX_DEPTH));
        assert_eq!(err(nest(MAX_DEPTH + 1).as_bytes()), ReadError::TooDeep);
        // Far past serde_json's own limit: still ours, never a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(read(deep.as_bytes()).is_err());
        let deep = format!(r#"{{"jsonrpc":"2.0","x":{}"#, "{\"a\":".repeat(50_000));
        assert_eq!(err(deep.as_bytes()), ReadError::TooDeep);
    }
}
