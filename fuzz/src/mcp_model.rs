//! A reference model of the MCP policy for the `mcp_judge` target, written from the issue's
//! rules over a whole parsed tree (serde_json does the lexing; objects keep every member in
//! order, so duplicates are visible), with the fixed policy's rules and scopes hand-coded
//! instead of CEL and a backtracking glob matcher instead of the filter's piecewise one.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Number, Value};

/// The fixed policy the target compiles for the filter; the model hard-codes its meaning.
pub fn policy_json() -> Value {
    json!({
        "rules": [
            "mcp.tool.name == \"echo\" && \"admin\" in jwt.roles",
            "has(mcp.prompt) && mcp.prompt.name.startsWith(\"p\")",
            "mcp.methodName == \"resources/subscribe\" && jwt.sub == \"eitan\"",
            "mcp.resource.name == \"file:///public\""
        ],
        "scopes": {
            "tools": {"echo": ["t"], "admin_*": ["a"], "*_x": ["x"], "a*_x": ["ax", "a"]},
            "prompts": {"*": ["p"]},
            "resources": {"file:///private/*": ["r"], "file:///*": ["f"]}
        },
        "max_body_bytes": 4096
    })
}

pub const MAX_BODY: usize = 4096;
pub const MAX_DEPTH: usize = 64;
pub const MAX_ITEM: usize = 8192;

/// The callers the target picks from.
pub fn claims(choice: u8) -> Value {
    match choice % 4 {
        0 => json!({"sub": "eitan", "scope": "t a x ax p r f", "roles": ["admin"]}),
        1 => json!({"sub": "alice", "scope": "t p", "roles": ["user"]}),
        2 => json!({"sub": "eitan", "scp": ["f", "r"]}),
        _ => json!({}),
    }
}

fn granted(choice: u8) -> Vec<&'static str> {
    match choice % 4 {
        0 => vec!["t", "a", "x", "ax", "p", "r", "f"],
        1 => vec!["t", "p"],
        2 => vec!["f", "r"],
        _ => vec![],
    }
}

/// A JSON value with objects as member lists.
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    Null,
    Bool(bool),
    Num(Number),
    Str(String),
    Arr(Vec<Tree>),
    Obj(Vec<(String, Tree)>),
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tree, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tree;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Tree, E> {
                Ok(Tree::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tree, E> {
                Ok(Tree::Num(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tree, E> {
                Ok(Tree::Num(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tree, E> {
                Number::from_f64(v).map(Tree::Num).ok_or_else(|| E::custom("nan"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tree, E> {
                Ok(Tree::Str(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element()? {
                    out.push(v);
                }
                Ok(Tree::Arr(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Tree>()? {
                    out.push((k, v));
                }
                Ok(Tree::Obj(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn depth(t: &Tree) -> usize {
    match t {
        Tree::Arr(v) => 1 + v.iter().map(depth).max().unwrap_or(0),
        Tree::Obj(v) => 1 + v.iter().map(|(_, t)| depth(t)).max().unwrap_or(0),
        _ => 0,
    }
}

fn get<'a>(members: &'a [(String, Tree)], key: &str) -> Option<&'a Tree> {
    members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn has_duplicates(members: &[(String, Tree)]) -> bool {
    members.iter().enumerate().any(|(i, (k, _))| members[..i].iter().any(|(j, _)| j == k))
}

/// What the model expects; refusals named like the filter's `BadBody`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    Forward {
        lists: Vec<(Value, &'static str)>,
    },
    Scope {
        scopes: Vec<String>,
        id: Option<Value>,
    },
    Forbid {
        id: Option<Value>,
    },
    /// Any refusal of the body itself (serde refused it: which reason is the filter's).
    Unparsable,
    Bad(&'static str),
    Mismatch {
        id: Option<Value>,
    },
}

struct Msg {
    method: Option<String>,
    id: Option<Value>,
    is_request: bool,
    item: Option<String>,
}

fn message(t: &Tree) -> Result<Msg, &'static str> {
    let Tree::Obj(m) = t else { return Err("NotMessage") };
    if has_duplicates(m) {
        return Err("DuplicateMember");
    }
    if let Some(Tree::Obj(p)) = get(m, "params") {
        if has_duplicates(p) {
            return Err("DuplicateMember");
        }
    }
    if get(m, "jsonrpc") != Some(&Tree::Str("2.0".into())) {
        return Err("NotMessage");
    }
    let result = get(m, "result").is_some() || get(m, "error").is_some();
    let id = match get(m, "id") {
        None => None,
        Some(Tree::Str(s)) => Some(Value::String(s.clone())),
        Some(Tree::Num(n)) => Some(Value::Number(n.clone())),
        Some(Tree::Null) => {
            if get(m, "method").is_none() && result {
                Some(Value::Null)
            } else {
                return Err("NotMessage");
            }
        }
        Some(_) => return Err("NotMessage"),
    };
    let params = get(m, "params");
    match params {
        None | Some(Tree::Obj(_)) | Some(Tree::Arr(_)) => {}
        Some(_) => return Err("NotMessage"),
    }
    let method = match get(m, "method") {
        None => None,
        Some(Tree::Str(s)) => Some(s.clone()),
        Some(_) => return Err("NotMessage"),
    };
    let Some(method) = method else {
        if !result || id.is_none() || params.is_some() {
            return Err("NotMessage");
        }
        return Ok(Msg { method: None, id, is_request: false, item: None });
    };
    if result {
        return Err("NotMessage");
    }
    let field = match method.as_str() {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        _ => None,
    };
    let judged = matches!(
        method.as_str(),
        "tools/call" | "prompts/get" | "resources/read" | "resources/subscribe"
    );
    let item = match (field, params) {
        (Some(f), Some(Tree::Obj(p))) => match get(p, f) {
            Some(Tree::Str(s)) if s.len() <= MAX_ITEM => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    if judged && item.is_none() {
        return Err("InvalidParams");
    }
    Ok(Msg { is_request: id.is_some(), method: Some(method), id, item })
}

/// Backtracking `*` glob.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

fn patterns(kind: &str) -> Vec<(&'static str, Vec<&'static str>)> {
    match kind {
        "tool" => vec![
            ("echo", vec!["t"]),
            ("admin_*", vec!["a"]),
            ("*_x", vec!["x"]),
            ("a*_x", vec!["ax", "a"]),
        ],
        "prompt" => vec![("*", vec!["p"])],
        _ => vec![("file:///private/*", vec!["r"]), ("file:///*", vec!["f"])],
    }
}

/// Most literal bytes, then fewest stars; ties add up in the patterns' byte order.
fn required(kind: &str, name: &str) -> Vec<String> {
    let mut matching: Vec<(&str, Vec<&str>)> =
        patterns(kind).into_iter().filter(|(g, _)| glob(g.as_bytes(), name.as_bytes())).collect();
    matching.sort_by_key(|(g, _)| *g);
    let rank = |g: &str| (g.len() - g.matches('*').count(), usize::MAX - g.matches('*').count());
    let Some(best) = matching.iter().map(|(g, _)| rank(g)).max() else { return vec![] };
    let mut out: Vec<String> = Vec::new();
    for (g, scopes) in &matching {
        if rank(g) == best {
            for s in scopes {
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_string());
                }
            }
        }
    }
    out
}

fn rules(caller: u8, method: &str, kind: &str, name: &str) -> bool {
    let admin = caller.is_multiple_of(4);
    let eitan = matches!(caller % 4, 0 | 2);
    (kind == "tool" && name == "echo" && admin)
        || (kind == "prompt" && name.starts_with('p'))
        || (method == "resources/subscribe" && eitan)
        || (kind == "resource" && name == "file:///public")
}

enum D {
    Allow(Option<(Value, &'static str)>),
    Need(Vec<String>),
    Deny,
}

fn decide(msg: &Msg, caller: u8) -> D {
    let Some(method) = msg.method.as_deref() else { return D::Allow(None) };
    let kind = match method {
        "tools/call" => "tool",
        "prompts/get" => "prompt",
        "resources/read" | "resources/subscribe" => "resource",
        _ => {
            let list = match method {
                "tools/list" => Some("tools/list"),
                "prompts/list" => Some("prompts/list"),
                "resources/list" => Some("resources/list"),
                "resources/templates/list" => Some("resources/templates/list"),
                _ => None,
            };
            // Every list kind may be filtered: the policy has rules.
            return match (list, &msg.id) {
                (Some(l), Some(id)) if msg.is_request => D::Allow(Some((id.clone(), l))),
                _ => D::Allow(None),
            };
        }
    };
    let name = msg.item.as_deref().unwrap_or_default();
    let need = required(kind, name);
    let have = granted(caller);
    if need.iter().any(|s| !have.contains(&s.as_str())) {
        return D::Need(need);
    }
    if rules(caller, method, kind, name) {
        D::Allow(None)
    } else {
        D::Deny
    }
}

/// Headers as the target sends them.
pub struct Headers {
    pub encoding: Option<String>,
    pub method: Option<String>,
    pub name: Option<String>,
}

pub fn expect(body: &[u8], headers: &Headers, caller: u8) -> Expect {
    if let Some(m) = &headers.method {
        let named = matches!(
            m.as_str(),
            "tools/call"
                | "prompts/get"
                | "resources/read"
                | "resources/subscribe"
                | "resources/unsubscribe"
        );
        if named != headers.name.is_some() {
            return Expect::Mismatch { id: None };
        }
    }
    if let Some(e) = &headers.encoding {
        if !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity") {
            return Expect::Bad("Encoding");
        }
    }
    if body.len() > MAX_BODY {
        return Expect::Bad("TooLarge");
    }
    let Ok(tree) = serde_json::from_slice::<Tree>(body) else { return Expect::Unparsable };
    if depth(&tree) > MAX_DEPTH {
        return Expect::Bad("TooDeep");
    }
    let elements: Vec<&Tree> = match &tree {
        Tree::Arr(list) => {
            if list.is_empty() {
                return Expect::Bad("NotMessage");
            }
            list.iter().collect()
        }
        Tree::Obj(_) => vec![&tree],
        _ => return Expect::Bad("NotMessage"),
    };
    let mut msgs = Vec::new();
    for e in elements {
        match message(e) {
            Ok(m) => msgs.push(m),
            Err(why) => return Expect::Bad(why),
        }
    }
    if headers.method.is_some() || headers.name.is_some() {
        let (Tree::Obj(_), [msg]) = (&tree, msgs.as_slice()) else {
            return Expect::Mismatch { id: None };
        };
        let id = msg.id.clone().filter(|v| !v.is_null());
        if headers.method.as_ref().is_some_and(|m| msg.method.as_ref() != Some(m)) {
            return Expect::Mismatch { id };
        }
        if headers.name.as_ref().is_some_and(|n| msg.item.as_ref() != Some(n)) {
            return Expect::Mismatch { id };
        }
    }
    let single = matches!(tree, Tree::Obj(_));
    let mut lists = Vec::new();
    let mut need: Vec<String> = Vec::new();
    let mut deny = false;
    for m in &msgs {
        match decide(m, caller) {
            D::Allow(l) => lists.extend(l),
            D::Need(s) => {
                for x in s {
                    if !need.contains(&x) {
                        need.push(x);
                    }
                }
            }
            D::Deny => deny = true,
        }
    }
    let id = if single { msgs[0].id.clone().filter(|v| !v.is_null()) } else { None };
    if !need.is_empty() {
        return Expect::Scope { scopes: need, id };
    }
    if deny {
        return Expect::Forbid { id };
    }
    Expect::Forward { lists }
}
