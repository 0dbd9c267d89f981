//! The list-response rewriter: omits the items a caller may not see from the responses to
//! `tools/list`, `prompts/list`, `resources/list` and `resources/templates/list`.
//!
//! Only the item arrays are spliced: the bytes of kept items and of everything around the array
//! (`nextCursor`, `_meta`, whitespace, other batch elements) go out as the server sent them, and
//! a list with nothing removed stays byte-identical. A message that answers a pending list but
//! cannot be judged is replaced by a JSON-RPC error: an item is never shown unjudged.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{ListKind, PendingList, RequestId};

/// Decides whether the caller may see one list item, given the value of the item's naming
/// member ([`ListKind::naming_member`]): `None` when it is missing or not a string (see
/// [`ItemName`]).
pub type KeepItem<'k> = dyn Fn(ListKind, Option<&str>) -> bool + 'k;

/// JSON-RPC "internal error": what a client gets instead of a list the filter could not judge.
pub const UNJUDGED_LIST_CODE: i64 = -32603;
const UNJUDGED_LIST_MESSAGE: &str = "the list response could not be checked against the policy";

/// What became of an `application/json` response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListRewrite {
    /// No pending list was answered, or nothing was removed: send the original bytes.
    Unchanged,
    /// Forbidden items were removed: send `body` instead.
    Filtered { body: Vec<u8>, removed: usize },
    /// The body may answer a pending list but could not be read (not JSON, too deep, numbers
    /// out of range): send `body`, a JSON-RPC error for every pending list, instead.
    Unjudgeable { body: Vec<u8> },
}

/// Rewrites one `application/json` response body: a JSON-RPC response, or an array of them (a
/// batch), of which only the elements whose `id` matches a pending list are touched.
pub fn rewrite_json_body(body: &[u8], pending: &[PendingList], keep: &KeepItem) -> ListRewrite {
    if pending.is_empty() {
        return ListRewrite::Unchanged;
    }
    // Clients decode invalid UTF-8 leniently (U+FFFD) before parsing; judge what they will see.
    let text = decode_leniently(body);
    match rewrite_message(&text, pending) {
        Ok(plan) => match plan.apply(&text, keep) {
            Some((rewritten, removed)) if removed > 0 => {
                ListRewrite::Filtered { body: rewritten.into_bytes(), removed }
            }
            Some(_) => ListRewrite::Unchanged,
            None => ListRewrite::Unjudgeable { body: error_response_body(pending) },
        },
        Err(Unreadable) => ListRewrite::Unjudgeable { body: error_response_body(pending) },
    }
}

/// `bytes` as a client decodes them: invalid UTF-8 replaced by U+FFFD, as
/// `String::from_utf8_lossy` does, but with the faster validation when (as nearly always) there
/// is nothing to replace.
pub(crate) fn decode_leniently(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// A JSON-RPC error response for each pending list (one object, or an array for several).
pub fn error_response_body(pending: &[PendingList]) -> Vec<u8> {
    let errors: Vec<Value> = pending.iter().map(|list| error_response(&list.id)).collect();
    let value = match <[Value; 1]>::try_from(errors) {
        Ok([one]) => one,
        Err(many) => Value::Array(many),
    };
    value.to_string().into_bytes()
}

/// One JSON-RPC error response for `id`.
pub fn error_response(id: &RequestId) -> Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.0,
        "error": {"code": UNJUDGED_LIST_CODE, "message": UNJUDGED_LIST_MESSAGE},
    })
}

/// Whether a response id answers a pending request. Numbers compare by value (a JavaScript
/// client matches `1.0` to `1`), so that no spelling of an id escapes the filter.
pub fn id_matches(response_id: &Value, pending: &RequestId) -> bool {
    match (response_id, &pending.0) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
        (a, b) => a == b,
    }
}

/// The message text could not be parsed as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unreadable;

/// The item arrays to filter in one message, as byte ranges of its text.
#[derive(Debug, Default)]
pub(crate) struct Plan<'t> {
    /// (start, end, kind, items) of each array (or non-array member value) to rewrite; the
    /// items when the single pass already found them.
    members: Vec<(usize, usize, ListKind, Option<Vec<&'t RawValue>>)>,
    /// Indices into the pending lists of those this message answers.
    pub(crate) answered: Vec<usize>,
}

/// Finds, in one message's text, the item arrays of the pending lists it answers.
pub(crate) fn rewrite_message<'t>(
    text: &'t str,
    pending: &[PendingList],
) -> Result<Plan<'t>, Unreadable> {
    match single_pass_plan(text, pending)? {
        Some(plan) => Ok(plan),
        // A list member that is neither an array nor null: the slower reading finds its span.
        None => member_by_member_plan(text, pending),
    }
}

/// Reads the message once, collecting the items of every list member on the way; `None` when
/// a pending list's member is neither an array nor null.
fn single_pass_plan<'t>(
    text: &'t str,
    pending: &[PendingList],
) -> Result<Option<Plan<'t>>, Unreadable> {
    let responses = match serde_json::from_str::<Lists>(text).map_err(|_| Unreadable)? {
        Lists::One(response) => vec![response],
        Lists::Batch(responses) => responses,
        Lists::Other => Vec::new(),
    };
    let mut plan = Plan::default();
    for response in responses {
        let kinds = plan.matched_kinds(response.ids.iter().map(|id| id.get()), pending);
        for (name, members) in &response.lists {
            for &kind in kinds.iter().filter(|kind| name == kind.member()) {
                let items = match members {
                    Members::Items(items) => items,
                    Members::Null => continue,
                    Members::Other => return Ok(None),
                };
                let (Some(first), Some(last)) = (items.first(), items.last()) else { continue };
                let start = offset_in(text, first.get()).ok_or(Unreadable)?;
                let last_end = offset_in(text, last.get()).ok_or(Unreadable)? + last.get().len();
                let before = text.get(..start).ok_or(Unreadable)?.trim_end_matches(JSON_SPACE);
                let after = text.get(last_end..).ok_or(Unreadable)?;
                let close = last_end + (after.len() - after.trim_start_matches(JSON_SPACE).len());
                if !before.ends_with('[') || text.get(close..close + 1) != Some("]") {
                    return Err(Unreadable);
                }
                plan.members.push((before.len() - 1, close + 1, kind, Some(items.clone())));
            }
        }
    }
    Ok(Some(plan))
}

/// JSON's insignificant whitespace.
const JSON_SPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// Reads the message a level at a time (each level scanned again).
fn member_by_member_plan<'t>(
    text: &'t str,
    pending: &[PendingList],
) -> Result<Plan<'t>, Unreadable> {
    let mut plan = Plan::default();
    match serde_json::from_str::<Message>(text).map_err(|_| Unreadable)? {
        Message::Object(entries) => plan.response(text, &entries, pending)?,
        Message::Batch(elements) => {
            for element in elements {
                // An element that reads as a value but not member by member (a lone surrogate
                // in a name): a client may read it, so it is not skipped.
                let element = serde_json::from_str::<Message>(element.get());
                if let Message::Object(entries) = element.map_err(|_| Unreadable)? {
                    plan.response(text, &entries, pending)?;
                }
            }
        }
        Message::Other => {}
    }
    Ok(plan)
}

impl<'t> Plan<'t> {
    /// The kinds of the pending lists a response answers, by its ids (all of them, when the
    /// name is repeated: clients differ on which one wins); notes them as answered.
    fn matched_kinds<'i>(
        &mut self,
        ids: impl Iterator<Item = &'i str>,
        pending: &[PendingList],
    ) -> Vec<ListKind> {
        let mut kinds: Vec<ListKind> = Vec::new();
        for raw in ids {
            // An id that does not parse (a number out of range) equals no pending id.
            let Ok(id) = serde_json::from_str::<Value>(raw) else { continue };
            for (index, list) in pending.iter().enumerate() {
                if id_matches(&id, &list.id) {
                    if !self.answered.contains(&index) {
                        self.answered.push(index);
                    }
                    if !kinds.contains(&list.kind) {
                        kinds.push(list.kind);
                    }
                }
            }
        }
        kinds
    }

    /// Adds the lists of one response object, if its `id` matches a pending list.
    fn response(
        &mut self,
        text: &'t str,
        entries: &[(Cow<str>, &RawValue)],
        pending: &[PendingList],
    ) -> Result<(), Unreadable> {
        let ids = entries.iter().filter(|(name, _)| name == "id").map(|(_, raw)| raw.get());
        let kinds = self.matched_kinds(ids, pending);
        if kinds.is_empty() {
            return Ok(());
        }
        for (_, result) in entries.iter().filter(|(name, _)| name == "result") {
            let result = serde_json::from_str::<Message>(result.get()).map_err(|_| Unreadable)?;
            let Message::Object(members) = result else {
                // A result that is not an object holds no items.
                continue;
            };
            for (name, value) in &members {
                // Two pending lists of different kinds with one id: filter by every kind.
                for &kind in &kinds {
                    if name == kind.member() {
                        let start = offset_in(text, value.get()).ok_or(Unreadable)?;
                        self.members.push((start, start + value.get().len(), kind, None));
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies the plan: the rewritten text and the number of items removed, or `None` when
    /// the ranges do not fit the text (never expected; the caller fails closed).
    pub(crate) fn apply(&self, text: &str, keep: &KeepItem) -> Option<(String, usize)> {
        if self.members.is_empty() {
            return Some((String::new(), 0));
        }
        let mut members: Vec<_> = self.members.iter().collect();
        members.sort_by_key(|&&(start, _, _, _)| start);
        let mut out = String::with_capacity(text.len());
        let mut removed = 0;
        let mut at = 0;
        for &(start, end, kind, ref items) in members {
            // Ranges never overlap (each is one member of one result); skip rather than trust.
            if start < at {
                continue;
            }
            out.push_str(text.get(at..start)?);
            let value = text.get(start..end)?;
            let judge = |name: Option<&str>| keep(kind, name);
            removed +=
                filter_array(value, items.as_deref(), kind.naming_member(), &judge, &mut out);
            at = end;
        }
        out.push_str(text.get(at..)?);
        Some((out, removed))
    }
}

/// Writes `value` (an item array's text) to `out` without the items `keep` refuses, keeping
/// the bytes of the rest, and returns how many were removed. Items that are not objects, or
/// repeat a member name, cannot be judged and are removed; a value that is not an array
/// (other than `null`) becomes `[]`.
fn filter_array(
    value: &str,
    known_items: Option<&[&RawValue]>,
    naming_member: &str,
    keep: &dyn Fn(Option<&str>) -> bool,
    out: &mut String,
) -> usize {
    let parsed = match known_items {
        Some(items) => Ok(items.to_vec()),
        None => serde_json::from_str::<Vec<&RawValue>>(value),
    };
    let items: Vec<&RawValue> = match parsed {
        Ok(items) => items,
        Err(_) if value == "null" => {
            out.push_str(value);
            return 0;
        }
        Err(_) => {
            out.push_str("[]");
            return 1;
        }
    };
    let judged: Vec<bool> = items
        .iter()
        .map(|item| match read_item_name(item.get(), naming_member) {
            Ok(ItemName(name)) => keep(name.as_deref()),
            Err(_) => false,
        })
        .collect();
    let removed = judged.iter().filter(|kept| !**kept).count();
    if removed == 0 {
        out.push_str(value);
        return 0;
    }
    // Offsets of each item within `value`; the text between items (whitespace and the comma)
    // goes out with the item after it, the first kept item getting the leading whitespace.
    let mut spans = Vec::with_capacity(items.len());
    for item in &items {
        match offset_in(value, item.get()) {
            Some(start) => spans.push((start, start + item.get().len())),
            None => {
                out.push_str("[]");
                return items.len();
            }
        }
    }
    let open = 1; // past `[`: `RawValue` spans start at the value's first byte
    let close = spans.last().map_or(open, |&(_, end)| end);
    out.push('[');
    let mut previous_end = open;
    let mut first_kept = true;
    for (&(start, end), &kept) in spans.iter().zip(&judged) {
        if kept {
            let gap = if first_kept {
                value.get(open..spans.first().map_or(open, |&(s, _)| s)).unwrap_or("")
            } else {
                value.get(previous_end..start).unwrap_or(",")
            };
            out.push_str(gap);
            out.push_str(value.get(start..end).unwrap_or(""));
            first_kept = false;
        }
        previous_end = end;
    }
    out.push_str(value.get(close..).unwrap_or("]"));
    removed
}

/// Where `part` (a slice of `whole`, as `RawValue` hands them out) starts in `whole`.
fn offset_in(whole: &str, part: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len() && std::ptr::eq(whole.get(start..end)?.as_ptr(), part.as_ptr()))
        .then_some(start)
}

/// A JSON value read one level deep: an object's members (repeats kept, in order), an array's
/// elements, or anything else.
enum Message<'a> {
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    Batch(Vec<&'a RawValue>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Message<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MessageVisitor;
        impl<'de> Visitor<'de> for MessageVisitor {
            type Value = Message<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(Name(name)) = map.next_key()? {
                    entries.push((name, map.next_value::<&RawValue>()?));
                }
                Ok(Message::Object(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut elements = Vec::new();
                while let Some(element) = seq.next_element::<&RawValue>()? {
                    elements.push(element);
                }
                Ok(Message::Batch(elements))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Message::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Message::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Message::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Message::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Message::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Message::Other)
            }
        }
        deserializer.deserialize_any(MessageVisitor)
    }
}

/// A message read in one pass for its lists: a response, a batch of them, or anything else.
enum Lists<'a> {
    One(ListResponse<'a>),
    Batch(Vec<ListResponse<'a>>),
    Other,
}

/// One response object: its ids (raw) and the list members of its results, by name.
#[derive(Default)]
struct ListResponse<'a> {
    ids: Vec<&'a RawValue>,
    lists: Vec<(Cow<'a, str>, Members<'a>)>,
}

/// A list member's value.
enum Members<'a> {
    Items(Vec<&'a RawValue>),
    Null,
    Other,
}

/// The result members that can hold items (of any kind: the id is not known yet).
fn is_list_member(name: &str) -> bool {
    ListKind::ALL.iter().any(|kind| kind.member() == name)
}

/// Implements the scalar visits of a visitor as one value.
macro_rules! scalars_are {
    ($value:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<de::IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
    Ok(())
}

fn read_response<'de, A: MapAccess<'de>>(mut map: A) -> Result<ListResponse<'de>, A::Error> {
    let mut response = ListResponse::default();
    while let Some(Name(name)) = map.next_key()? {
        match name.as_ref() {
            "id" => response.ids.push(map.next_value()?),
            "result" => response.lists.extend(map.next_value::<ResultLists>()?.0),
            _ => {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
    }
    Ok(response)
}

impl<'de: 'a, 'a> Deserialize<'de> for Lists<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListsVisitor;
        impl<'de> Visitor<'de> for ListsVisitor {
            type Value = Lists<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            scalars_are!(Lists::Other);
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Ok(Lists::One(read_response(map)?))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut responses = Vec::new();
                while let Some(BatchElement(element)) = seq.next_element()? {
                    responses.extend(element);
                }
                Ok(Lists::Batch(responses))
            }
        }
        deserializer.deserialize_any(ListsVisitor)
    }
}

/// A batch element: a response object, or anything else (skipped).
struct BatchElement<'a>(Option<ListResponse<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for BatchElement<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ElementVisitor;
        impl<'de> Visitor<'de> for ElementVisitor {
            type Value = BatchElement<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            scalars_are!(BatchElement(None));
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Ok(BatchElement(Some(read_response(map)?)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq)?;
                Ok(BatchElement(None))
            }
        }
        deserializer.deserialize_any(ElementVisitor)
    }
}

/// The list members of a `result` (none when it is not an object).
struct ResultLists<'a>(Vec<(Cow<'a, str>, Members<'a>)>);

impl<'de: 'a, 'a> Deserialize<'de> for ResultLists<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ResultVisitor;
        impl<'de> Visitor<'de> for ResultVisitor {
            type Value = ResultLists<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            scalars_are!(ResultLists(Vec::new()));
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut lists = Vec::new();
                while let Some(Name(name)) = map.next_key()? {
                    if is_list_member(&name) {
                        lists.push((name, map.next_value()?));
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                Ok(ResultLists(lists))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq)?;
                Ok(ResultLists(Vec::new()))
            }
        }
        deserializer.deserialize_any(ResultVisitor)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Members<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Members::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Members::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Members::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Members::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Members::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Members::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<&RawValue>()? {
                    items.push(item);
                }
                Ok(Members::Items(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map)?;
                Ok(Members::Other)
            }
        }
        deserializer.deserialize_any(MembersVisitor)
    }
}

/// A member name, borrowed when it has no escapes, decoded when it has.
struct Name<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Name<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// A list item as the policy sees it: only its naming member (`name`, `uri` or
/// `uriTemplate`, as the list's kind says), borrowed from the text unless it has escapes
/// (decoded: `"ech\u006f"` is `echo`); `None` when the item has no such member or its value is
/// not a string. The other members are read past without being built, but still read in full:
/// a string with a lone surrogate escape or a number out of range at the top level makes the
/// item unjudgeable, as it would for a client that reads the item whole. An item that repeats
/// a member name could be read one way here and another way by the client, so it is not
/// judged at all (an error, and the item is removed).
struct ItemName<'a>(Option<Cow<'a, str>>);

/// Reads one item for its naming member `member`.
fn read_item_name<'a>(item: &'a str, member: &str) -> Result<ItemName<'a>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(item);
    let name = de::DeserializeSeed::deserialize(ItemSeed { member }, &mut deserializer)?;
    deserializer.end()?;
    Ok(name)
}

/// Reads an item object, keeping only the value of `member`.
struct ItemSeed<'m> {
    member: &'m str,
}

impl<'de, 'm> de::DeserializeSeed<'de> for ItemSeed<'m> {
    type Value = ItemName<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 'm> Visitor<'de> for ItemSeed<'m> {
    type Value = ItemName<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut name = None;
        // Every member name so far, for the repeat check: a short list scanned, and a set
        // once the item has many members (the check stays linear overall).
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        let mut seen_many: std::collections::BTreeSet<Cow<'de, str>> = Default::default();
        let mut nested = 0;
        while let Some(Name(key)) = map.next_key()? {
            let capture = key == self.member;
            match map.next_value_seed(MemberSeed { capture })? {
                Member::Text(text) => name = Some(text),
                Member::Scalar => {}
                Member::Nested => nested += 1,
            }
            let repeated = if seen.len() < FEW_MEMBERS {
                let repeated = seen.contains(&key);
                seen.push(key);
                repeated
            } else {
                if seen_many.is_empty() {
                    seen_many.extend(seen.iter().cloned());
                }
                !seen_many.insert(key)
            };
            if repeated {
                return Err(de::Error::custom("a repeated member name"));
            }
            if nested > MAX_NESTED_MEMBERS {
                return Err(de::Error::custom("too many object members"));
            }
        }
        Ok(ItemName(name))
    }
}

/// Up to this many member names, the repeat check scans a list rather than a set.
const FEW_MEMBERS: usize = 16;

/// Bounds the members of an item whose values are objects or arrays.
const MAX_NESTED_MEMBERS: usize = 64;

/// A member value: the naming member's string; any other scalar, read (and so checked) but
/// not kept; or an object or array, read past without building it.
enum Member<'a> {
    Text(Cow<'a, str>),
    Scalar,
    Nested,
}

/// Reads a member value, keeping its string only when `capture` (the naming member).
struct MemberSeed {
    capture: bool,
}

impl<'de> de::DeserializeSeed<'de> for MemberSeed {
    type Value = Member<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MemberSeed {
    type Value = Member<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Member::Scalar)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Member::Scalar)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Member::Scalar)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Member::Scalar)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Member::Scalar)
    }
    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(if self.capture { Member::Text(Cow::Borrowed(text)) } else { Member::Scalar })
    }
    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(if self.capture { Member::Text(Cow::Owned(text.to_owned())) } else { Member::Scalar })
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
        Ok(Member::Nested)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Member::Nested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools_list(id: i64) -> Vec<PendingList> {
        vec![PendingList { id: RequestId(json!(id)), kind: ListKind::Tools }]
    }

    /// Keeps every item whose naming member (`name`, `uri`, `uriTemplate`) does not start with
    /// `secret`.
    fn not_secret(_: ListKind, name: Option<&str>) -> bool {
        name.is_some_and(|name| !name.starts_with("secret"))
    }

    fn filtered(body: &str, pending: &[PendingList]) -> (String, usize) {
        match rewrite_json_body(body.as_bytes(), pending, &not_secret) {
            ListRewrite::Filtered { body, removed } => (String::from_utf8(body).unwrap(), removed),
            other => panic!("expected Filtered, got {other:?}"),
        }
    }

    #[test]
    fn removes_forbidden_tools_and_keeps_every_other_byte() {
        let body = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}, {"name":"secret_a"},{"name":"whoami"}],"nextCursor":"c2"}}"#;
        let (out, removed) = filtered(body, &tools_list(1));
        assert_eq!(removed, 1);
        assert_eq!(
            out,
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}},{"name":"whoami"}],"nextCursor":"c2"}}"#
        );
    }

    #[test]
    fn first_last_and_all_items_removed_from_pretty_printed_json() {
        let body = "{\n  \"id\": 1,\n  \"result\": {\n    \"tools\": [\n      {\"name\": \"secret_1\"},\n      {\"name\": \"a\"},\n      {\"name\": \"b\"},\n      {\"name\": \"secret_2\"}\n    ]\n  }\n}";
        let (out, removed) = filtered(body, &tools_list(1));
        assert_eq!(removed, 2);
        assert_eq!(
            out,
            "{\n  \"id\": 1,\n  \"result\": {\n    \"tools\": [\n      {\"name\": \"a\"},\n      {\"name\": \"b\"}\n    ]\n  }\n}"
        );
        let all = r#"{"id":1,"result":{"tools":[ {"name":"secret_1"} , {"name":"secret_2"} ]}}"#;
        let (out, removed) = filtered(all, &tools_list(1));
        assert_eq!((out.as_str(), removed), (r#"{"id":1,"result":{"tools":[ ]}}"#, 2));
    }

    #[test]
    fn an_unchanged_list_other_ids_and_errors_stay_byte_identical() {
        let pending = tools_list(1);
        for body in [
            r#"{"id":1,"result":{"tools":[{"name":"echo"}]}}"#,
            r#"{"id":2,"result":{"tools":[{"name":"secret"}]}}"#,
            r#"{"id":"1","result":{"tools":[{"name":"secret"}]}}"#,
            r#"{"id":1,"error":{"code":-32601,"message":"no"}}"#,
            r#"{"id":1,"result":{"prompts":[{"name":"secret"}]}}"#,
            r#"{"id":1,"result":"tools"}"#,
            r#"{"id":1,"result":{"tools":null}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#,
            r#""a string""#,
        ] {
            assert_eq!(
                rewrite_json_body(body.as_bytes(), &pending, &not_secret),
                ListRewrite::Unchanged,
                "{body}"
            );
        }
        assert_eq!(rewrite_json_body(b"not json", &[], &not_secret), ListRewrite::Unchanged);
    }

    #[test]
    fn a_batch_has_only_the_list_response_touched() {
        let pending = vec![
            PendingList { id: RequestId(json!("t")), kind: ListKind::Tools },
            PendingList { id: RequestId(json!(7)), kind: ListKind::Resources },
        ];
        let body = r#"[{"id":"x","result":{"tools":[{"name":"secret"}]}}, {"id":"t","result":{"tools":[{"name":"secret"},{"name":"ok"}]}},{"id":7,"result":{"resources":[{"uri":"secret://a"},{"uri":"file:///b","name":"b"}]}}]"#;
        let (out, removed) = filtered(body, &pending);
        assert_eq!(removed, 2);
        assert_eq!(
            out,
            r#"[{"id":"x","result":{"tools":[{"name":"secret"}]}}, {"id":"t","result":{"tools":[{"name":"ok"}]}},{"id":7,"result":{"resources":[{"uri":"file:///b","name":"b"}]}}]"#
        );
    }

    #[test]
    fn escaped_names_repeated_members_and_numeric_spellings_are_judged() {
        // Escaped member names and item names are read decoded.
        let body =
            r#"{"i\u0064":1,"resul\u0074":{"tool\u0073":[{"name":"\u0073ecret"},{"name":"ok"}]}}"#;
        assert_eq!(filtered(body, &tools_list(1)).1, 1);
        // A repeated `id`: any match counts; a repeated `result` or member: each is filtered.
        let body = r#"{"id":2,"id":1,"result":{"tools":[{"name":"secret"}]},"result":{"tools":[{"name":"a"}],"tools":[{"name":"secret"}]}}"#;
        let (out, removed) = filtered(body, &tools_list(1));
        assert_eq!(removed, 2);
        assert_eq!(
            out,
            r#"{"id":2,"id":1,"result":{"tools":[]},"result":{"tools":[{"name":"a"}],"tools":[]}}"#
        );
        // 1.0 and 1e0 are the id 1 to a JavaScript client.
        for id in ["1.0", "1e0"] {
            let body = format!(r#"{{"id":{id},"result":{{"tools":[{{"name":"secret"}}]}}}}"#);
            assert_eq!(filtered(&body, &tools_list(1)).1, 1, "{id}");
        }
    }

    #[test]
    fn items_that_cannot_be_judged_are_removed() {
        let body = r#"{"id":1,"result":{"tools":[{"name":"ok"},{"name":"ok","name":"secret"},"secret",[{"name":"x"}],{"name":"ok2"}]}}"#;
        let (out, removed) = filtered(body, &tools_list(1));
        assert_eq!(removed, 3);
        assert_eq!(out, r#"{"id":1,"result":{"tools":[{"name":"ok"},{"name":"ok2"}]}}"#);
        let body = r#"{"id":1,"result":{"tools":{"0":{"name":"secret"}},"nextCursor":"n"}}"#;
        let (out, removed) = filtered(body, &tools_list(1));
        assert_eq!(
            (out.as_str(), removed),
            (r#"{"id":1,"result":{"tools":[],"nextCursor":"n"}}"#, 1)
        );
    }

    #[test]
    fn unreadable_bodies_become_errors_for_the_pending_lists() {
        for body in [
            r#"{"id":1,"result":{"tools":[{"name":"secret"}]"#,
            r#"{"id":1,"result":{"tools":[{"name":"secret"}]}} trailing"#,
            r#"{"id":1,"result":{"tools":[{"name":"secret"}],}}"#,
        ] {
            match rewrite_json_body(body.as_bytes(), &tools_list(1), &not_secret) {
                ListRewrite::Unjudgeable { body } => {
                    let error: Value = serde_json::from_slice(&body).unwrap();
                    assert_eq!(error["id"], json!(1));
                    assert_eq!(error["error"]["code"], json!(UNJUDGED_LIST_CODE));
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        // Names a client reads but serde_json decodes only as skipped values (lone surrogates).
        for body in [
            r#"[{"id":1,"result":{"tools":[{"name":"secret"}]},"\ud800":0}]"#,
            r#"{"id":1,"result":{"tools":[{"name":"secret"}],"\ud800":0}}"#,
            r#"{"id":1,"\ud800":0,"result":{"tools":[{"name":"secret"}]}}"#,
        ] {
            let out = rewrite_json_body(body.as_bytes(), &tools_list(1), &not_secret);
            assert!(matches!(out, ListRewrite::Unjudgeable { .. }), "{body}: {out:?}");
        }
        let two = [tools_list(1), tools_list(2)].concat();
        let errors: Value = serde_json::from_slice(&error_response_body(&two)).unwrap();
        assert_eq!(errors[1]["id"], json!(2));
    }

    #[test]
    fn deep_nesting_is_skipped_and_huge_numbers_judged_where_read() {
        // JavaScript reads both; serde_json's value parser would not. Skipped values (outside
        // the items, and objects inside them) are never built, so depth does not matter; a
        // number the policy would read but cannot be represented makes its item unjudgeable.
        let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
        let body = format!(
            r#"{{"id":1,"x":{deep},"y":1e400,"result":{{"tools":[{{"name":"secret"}},{{"name":"ok"}},{{"name":"deep","d":{deep}}},{{"name":"big","n":1e400}}]}}}}"#
        );
        let (out, removed) = filtered(&body, &tools_list(1));
        assert_eq!(removed, 2);
        assert_eq!(
            out,
            format!(
                r#"{{"id":1,"x":{deep},"y":1e400,"result":{{"tools":[{{"name":"ok"}},{{"name":"deep","d":{deep}}}]}}}}"#
            )
        );
    }

    #[test]
    fn the_policy_sees_the_naming_member_decoded() {
        let seen = std::cell::RefCell::new(Vec::new());
        let record = |_: ListKind, name: Option<&str>| {
            seen.borrow_mut().push(name.map(str::to_owned));
            true
        };
        let body = r#"{"id":1,"result":{"tools":[{"n\u0061me":"ech\u006f","x":1,"t":true,"u":null,"inputSchema":{"type":"object"},"icons":[1]}]}}"#;
        assert_eq!(
            rewrite_json_body(body.as_bytes(), &tools_list(1), &record),
            ListRewrite::Unchanged
        );
        assert_eq!(seen.borrow().clone(), vec![Some("echo".to_owned())]);
        // A name that is not a string is not shown; the other members never are.
        seen.borrow_mut().clear();
        let body = r#"{"id":1,"result":{"tools":[{"name":1,"uri":"a"},{"title":"x"}]}}"#;
        assert_eq!(
            rewrite_json_body(body.as_bytes(), &tools_list(1), &record),
            ListRewrite::Unchanged
        );
        assert_eq!(seen.into_inner(), vec![None, None]);
        // A lone surrogate in another top-level string makes the item unjudgeable.
        let body = r#"{"id":1,"result":{"tools":[{"name":"a","t":"\ud800"},{"name":"b"}]}}"#;
        assert_eq!(
            filtered(body, &tools_list(1)),
            (r#"{"id":1,"result":{"tools":[{"name":"b"}]}}"#.into(), 1)
        );
        // A repeated name, even of a skipped member, makes the item unjudgeable.
        let body =
            r#"{"id":1,"result":{"tools":[{"name":"a","s":{},"s":[]},{"name":"b","s":1,"s":{}}]}}"#;
        assert_eq!(filtered(body, &tools_list(1)), (r#"{"id":1,"result":{"tools":[]}}"#.into(), 2));
    }

    #[test]
    fn a_repeated_name_is_found_among_many_members() {
        let members: String = (0..40).map(|i| format!(r#","m{i}":{i}"#)).collect();
        let body = format!(
            r#"{{"id":1,"result":{{"tools":[{{"name":"a"{members},"m3":{{}}}},{{"name":"b"{members}}},{{"name":"c"{members},"name":"c"}}]}}}}"#
        );
        let kept = format!(r#"{{"id":1,"result":{{"tools":[{{"name":"b"{members}}}]}}}}"#);
        assert_eq!(filtered(&body, &tools_list(1)), (kept, 2));
    }

    #[test]
    fn the_single_pass_and_the_level_by_level_reading_agree() {
        let bodies = [
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[ {"name":"secret"} ,{"name":"a"}, {"name":"secret2"} ],"nextCursor":"x"}}"#,
            r#"[{"id":1,"result":{"tools":[{"name":"secret"}]}},{"id":2,"result":{"tools":[{"name":"secret"}]}}]"#,
            r#"{"id":1,"id":1,"result":{"tools":[{"name":"secret"}],"tools":[],"tools":null},"result":{"tools":[{"name":"b"},{"name":"secret"}]}}"#,
            r#"{"result":{"tools":[{"name":"secret"}]},"id":1.0}"#,
            r#"{"id":1,"result":[{"tools":[{"name":"secret"}]}]}"#,
        ];
        for body in bodies {
            let one = single_pass_plan(body, &tools_list(1)).unwrap().unwrap();
            let other = member_by_member_plan(body, &tools_list(1)).unwrap();
            assert_eq!(one.apply(body, &not_secret), other.apply(body, &not_secret), "{body}");
            assert_eq!(one.answered, other.answered, "{body}");
        }
        // A list that is neither an array nor null is left to the level-by-level reading.
        let body = r#"{"id":1,"result":{"tools":{"name":"secret"}}}"#;
        assert!(single_pass_plan(body, &tools_list(1)).unwrap().is_none());
    }

    #[test]
    fn invalid_utf8_is_judged_as_a_client_decodes_it() {
        let mut body = br#"{"id":1,"result":{"tools":[{"name":"secret","x":""#.to_vec();
        body.push(0xff);
        body.extend_from_slice(br#""},{"name":"ok"}]}}"#);
        match rewrite_json_body(&body, &tools_list(1), &not_secret) {
            ListRewrite::Filtered { body, removed: 1 } => {
                assert_eq!(body, br#"{"id":1,"result":{"tools":[{"name":"ok"}]}}"#.to_vec())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_kind_filters_its_own_member() {
        for kind in ListKind::ALL {
            let pending = vec![PendingList { id: RequestId(json!(3)), kind }];
            let body = format!(
                r#"{{"id":3,"result":{{"{}":[{{"name":"secret","uri":"secret:x","uriTemplate":"secret:{{x}}"}},{{"name":"a","uri":"a:x","uriTemplate":"a:{{x}}"}}]}}}}"#,
                kind.member()
            );
            assert_eq!(filtered(&body, &pending).1, 1, "{kind:?}");
        }
    }
}
