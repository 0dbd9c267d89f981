//! Oracles for `list_rewrite`: what an EventSource client and a JSON client would see.

use mcp_auth_filter::mcp::lists::{ArrayId, KeepItems};
use mcp_auth_filter::mcp::{ListKind, PendingList, RequestId};
use serde_json::{json, Value};

/// The lists the fuzzed responses may answer: a `tools/list` with id 5, a `prompts/list`
/// with id "p".
pub fn pending() -> Vec<PendingList> {
    vec![
        PendingList { id: RequestId(json!(5)), kind: ListKind::Tools },
        PendingList { id: RequestId(json!("p")), kind: ListKind::Prompts },
    ]
}

/// The policy: an item is shown when its name is a string not starting with `secret`.
pub fn keep(_: ListKind, name: Option<&str>) -> bool {
    name.is_some_and(|name| !name.starts_with("secret"))
}

/// Judges as [`keep`], and keeps its verdicts on the arrays a memo remembers, as the filter's
/// callers do (`McpPolicy::list_judge`): the same array again is judged by them.
#[derive(Default)]
pub struct RememberingKeep {
    verdicts: std::cell::RefCell<Vec<(ArrayId, std::rc::Rc<[bool]>)>>,
}

impl KeepItems for RememberingKeep {
    fn keep(&self, kind: ListKind, name: Option<&str>) -> bool {
        keep(kind, name)
    }

    fn remembered_verdicts(&self, array: ArrayId) -> Option<std::rc::Rc<[bool]>> {
        let verdicts = self.verdicts.borrow();
        verdicts.iter().find(|(id, _)| *id == array).map(|(_, kept)| std::rc::Rc::clone(kept))
    }

    fn remember_verdicts(&self, array: ArrayId, verdicts: &[bool]) {
        let mut kept = self.verdicts.borrow_mut();
        kept.insert(0, (array, verdicts.into()));
        kept.truncate(8);
    }
}

/// The events a WHATWG EventSource client dispatches from a whole stream, as data strings
/// (a BOM skipped, lines ending in CRLF, LF or CR, an incomplete last event discarded).
pub fn client_events(stream: &[u8]) -> Vec<String> {
    let stream = stream.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(stream);
    let text = String::from_utf8_lossy(stream).replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines.pop();
    let mut events = Vec::new();
    let mut data: Option<String> = None;
    for line in lines {
        if line.is_empty() {
            events.extend(data.take());
            continue;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if name == "data" {
            match data.as_mut() {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => data = Some(value.to_string()),
            }
        }
    }
    events
}

/// Panics if a client parsing `message` (as JSON, last duplicate wins) would be shown an item
/// the policy refuses in the response to a pending list.
pub fn assert_no_forbidden_item(message: &str) {
    let Ok(value) = serde_json::from_str::<Value>(message) else { return };
    let responses = match value {
        Value::Array(elements) => elements,
        other => vec![other],
    };
    for response in responses {
        let Some(id) = response.get("id") else { continue };
        for list in pending() {
            if !mcp_auth_filter::mcp::lists::id_matches(id, &list.id) {
                continue;
            }
            let Some(items) = response.get("result").and_then(|r| r.get(list.kind.member())) else {
                continue;
            };
            let Some(items) = items.as_array() else {
                assert!(items.is_null(), "a non-array list was shown: {message}");
                continue;
            };
            for item in items {
                let shown = item.as_object().is_some_and(|item| {
                    let name = item.get(list.kind.naming_member()).and_then(Value::as_str);
                    keep(list.kind, name)
                });
                assert!(shown, "forbidden item {item} shown in {message}");
            }
        }
    }
}

/// Whether the rewriter may change an event with this data: it could be a JSON-RPC message
/// (its first non-whitespace character is `{` or `[`), or it is only whitespace: an event
/// dropped after its whitespace data lines went out is ended, so the client sees whitespace
/// (not JSON, never shown) rather than that whitespace joining the next event. (A data line of
/// more than 4096 bytes of whitespace would be replaced too; fuzz inputs are shorter.)
pub fn may_be_message(data: &str) -> bool {
    matches!(
        data.trim_start_matches([' ', '\t', '\n', '\r']).chars().next(),
        None | Some('{' | '[')
    )
}
