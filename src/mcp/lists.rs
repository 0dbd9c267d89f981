//! The list-response rewriter: omits the items a caller may not see from the responses to
//! `tools/list`, `prompts/list`, `resources/list` and `resources/templates/list`.
//!
//! Only the item arrays are spliced: the bytes of kept items and of everything around the array
//! (`nextCursor`, `_meta`, whitespace, other batch elements) go out as the server sent them, and
//! a list with nothing removed stays byte-identical. A message that answers a pending list but
//! cannot be judged is replaced by a JSON-RPC error: an item is never shown unjudged.
//!
//! Two readings give the same answers: a single scan over the bytes (`scan`: the grammar
//! checked, each item's span and naming member noted, no tree built), and the reference
//! reading with serde_json. The scan answers the messages it can vouch for; anything else
//! (malformed text, a surrogate escape where serde_json decodes, a list that is neither an
//! array nor null, deep nesting) goes to the reference, which also decides every refusal. The
//! unit tests and the `list_rewrite` fuzz target hold the scan to the reference.
//!
//! A server answers every `tools/list` with the same items until its tools change, so each
//! worker keeps the item arrays the scan has read ([`ListMemo`]): an array byte-equal to one
//! read before (whatever the response's id or what surrounds it) is compared, not read. The
//! items are judged for each caller; a judge may keep its verdicts on a remembered array
//! ([`KeepItems`]; the policy keeps them in the caller), so that a caller listing the same
//! array again is not asked about each item again.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{ListKind, PendingList, RequestId};
use crate::host::decode_leniently;

/// Decides which list items the caller may see: item by item, and, for an array the
/// [`ListMemo`] remembers, by the verdicts given on it before (when the implementation keeps
/// them: a caller's verdicts on the same array are the same each time).
pub trait KeepItems {
    /// Whether the caller may see one item, given the value of the item's naming member
    /// ([`ListKind::naming_member`]): `None` when it is missing or not a string (see
    /// [`ItemName`]).
    fn keep(&self, kind: ListKind, name: Option<&str>) -> bool;

    /// The verdicts given before on the remembered array `array`, one per item in order.
    fn remembered_verdicts(&self, _array: ArrayId) -> Option<Rc<[bool]>> {
        None
    }

    /// Keeps the verdicts just given on the remembered array `array`.
    fn remember_verdicts(&self, _array: ArrayId, _verdicts: &[bool]) {}
}

/// Any function of the kind and the name judges item by item, remembering nothing.
impl<F: Fn(ListKind, Option<&str>) -> bool> KeepItems for F {
    fn keep(&self, kind: ListKind, name: Option<&str>) -> bool {
        self(kind, name)
    }
}

/// What the rewriters take: any [`KeepItems`] (a plain function of kind and name included).
pub type KeepItem<'k> = dyn KeepItems + 'k;

/// An array a [`ListMemo`] remembers: unique in the process, never reused (an array forgotten
/// and read again gets a new one), so verdicts kept under it cannot be applied to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayId(u64);

static NEXT_ARRAY_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl ArrayId {
    /// A new id (the memo's; public for tests of verdict stores).
    pub fn next() -> ArrayId {
        ArrayId(NEXT_ARRAY_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

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
pub fn rewrite_json_body(
    body: &[u8],
    pending: &[PendingList],
    keep: &KeepItem,
    memo: &ListMemo,
) -> ListRewrite {
    if pending.is_empty() {
        return ListRewrite::Unchanged;
    }
    // Clients decode invalid UTF-8 leniently (U+FFFD) before parsing; judge what they will see.
    let text = decode_leniently(body);
    match rewrite_text(&text, pending, keep, memo) {
        Ok(Rewritten { text: Some(rewritten), removed, .. }) => {
            ListRewrite::Filtered { body: rewritten.into_bytes(), removed }
        }
        Ok(Rewritten { text: None, .. }) => ListRewrite::Unchanged,
        Err(Unreadable) => ListRewrite::Unjudgeable { body: error_response_body(pending) },
    }
}

/// What became of one message's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The rewritten text; `None` when nothing was removed (the original stands).
    pub text: Option<String>,
    /// Items removed.
    pub removed: usize,
    /// Indices into the pending lists of those this message answers.
    pub answered: Vec<usize>,
}

/// Rewrites one JSON-RPC message (or batch) given as text: by the single scan
/// ([`rewrite_text_fast`]), or, for what the scan leaves to it, by the reference reading.
pub fn rewrite_text(
    text: &str,
    pending: &[PendingList],
    keep: &KeepItem,
    memo: &ListMemo,
) -> Result<Rewritten, Unreadable> {
    match scan::rewrite(text, pending, keep, memo) {
        Some(rewritten) => Ok(rewritten),
        None => rewrite_text_reference(text, pending, keep),
    }
}

/// The single scan alone: `None` for a message it leaves to the reference reading (anything
/// malformed, a surrogate escape where serde_json decodes, a list member that is neither an
/// array nor null, nesting past its bound). Wherever it answers, it answers as
/// [`rewrite_text_reference`] does (the unit tests and the `list_rewrite` fuzz target check).
pub fn rewrite_text_fast(
    text: &str,
    pending: &[PendingList],
    keep: &KeepItem,
    memo: &ListMemo,
) -> Option<Rewritten> {
    scan::rewrite(text, pending, keep, memo)
}

/// Item arrays the scan has read, so that the same array again is judged without being read
/// again: a server answers every `tools/list` with the same items, byte for byte, until its
/// tools change, whatever the request's id. An array matches only byte for byte, and how the
/// scan reads an array depends on nothing but its bytes and its kind, so a match is read as
/// it was the first time; the items are still judged afresh for each caller. One per worker;
/// a few arrays, bounded in bytes.
#[derive(Debug, Default)]
pub struct ListMemo {
    /// The most recently matched or read first.
    arrays: RefCell<VecDeque<ReadArray>>,
}

/// How many arrays a [`ListMemo`] keeps: lists of several kinds, the pages of a paginated
/// list, several servers behind one filter. An array that differs from a kept one is told
/// apart in its first differing bytes, so a longer memo costs little on a miss.
const MEMO_ARRAYS: usize = 16;
/// The most bytes of arrays a [`ListMemo`] keeps; a larger array is read each time.
const MEMO_BYTES: usize = 2 << 20;

/// One array as the scan read it: offsets are from its `[`.
#[derive(Debug)]
struct ReadArray {
    id: ArrayId,
    kind: ListKind,
    /// From `[` to `]`, both included.
    bytes: Box<[u8]>,
    items: Box<[ReadItem]>,
}

#[derive(Debug)]
struct ReadItem {
    start: usize,
    end: usize,
    name: ReadName,
    judgeable: bool,
}

/// An item's naming member as read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadName {
    /// Missing, or not a string.
    Missing,
    /// A string without escapes: its contents are these bytes of the text.
    Plain { start: usize, end: usize },
    /// A string with escapes, decoded.
    Decoded(Box<str>),
}

impl ListMemo {
    /// How many arrays it holds (for tests).
    pub fn len(&self) -> usize {
        self.arrays.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The array of `kind` whose bytes begin `text`: its length and items, moved to the front.
    fn find<T>(
        &self,
        kind: ListKind,
        text: &[u8],
        read: impl FnOnce(&ReadArray) -> T,
    ) -> Option<T> {
        let mut arrays = self.arrays.try_borrow_mut().ok()?;
        let index = arrays.iter().position(|array| {
            array.kind == kind
                && text.get(..array.bytes.len()).is_some_and(|t| same_bytes(t, &array.bytes))
        })?;
        let array = arrays.remove(index)?;
        let answer = read(&array);
        arrays.push_front(array);
        Some(answer)
    }

    /// Keeps `array` (unless it is too large); its id when kept.
    fn remember(&self, array: ReadArray) -> Option<ArrayId> {
        let mut arrays = self.arrays.try_borrow_mut().ok()?;
        if array.bytes.len() > MEMO_BYTES / 2 {
            return None;
        }
        let id = array.id;
        arrays.push_front(array);
        arrays.truncate(MEMO_ARRAYS);
        while arrays.iter().map(|array| array.bytes.len()).sum::<usize>() > MEMO_BYTES {
            arrays.pop_back();
        }
        arrays.iter().any(|array| array.id == id).then_some(id)
    }
}

/// Whether two byte strings of the same length are equal, sixteen bytes at a time (the
/// memo's comparison runs over whole lists, where a byte-at-a-time `memcmp` would cost as much
/// as a fair part of reading them).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_chunks, a_tail) = a.as_chunks::<16>();
    let (b_chunks, b_tail) = b.as_chunks::<16>();
    let chunk_eq = |x: &[u8; 16], y: &[u8; 16]| u128::from_le_bytes(*x) == u128::from_le_bytes(*y);
    a_chunks.iter().zip(b_chunks).all(|(x, y)| chunk_eq(x, y)) && a_tail == b_tail
}

/// The reference reading, with serde_json: the model the single scan is held to, and what
/// decides the messages the scan leaves to it.
pub fn rewrite_text_reference(
    text: &str,
    pending: &[PendingList],
    keep: &KeepItem,
) -> Result<Rewritten, Unreadable> {
    let plan = rewrite_message(text, pending)?;
    let (rewritten, removed) = plan.apply(text, keep).ok_or(Unreadable)?;
    Ok(Rewritten { text: (removed > 0).then_some(rewritten), removed, answered: plan.answered })
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
pub struct Unreadable;

/// The item arrays to filter in one message, as byte ranges of its text.
#[derive(Debug, Default)]
struct Plan<'t> {
    /// (start, end, kind, items) of each array (or non-array member value) to rewrite; the
    /// items when the single pass already found them.
    members: Vec<(usize, usize, ListKind, Option<Vec<&'t RawValue>>)>,
    /// Indices into the pending lists of those this message answers.
    answered: Vec<usize>,
}

/// Finds, in one message's text, the item arrays of the pending lists it answers.
fn rewrite_message<'t>(text: &'t str, pending: &[PendingList]) -> Result<Plan<'t>, Unreadable> {
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
    fn apply(&self, text: &str, keep: &KeepItem) -> Option<(String, usize)> {
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
            let judge = |name: Option<&str>| keep.keep(kind, name);
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

/// The single scan: one pass over the message's bytes that checks the JSON grammar, finds the
/// item arrays of the responses answering pending lists, and reads each item's naming member,
/// building no tree (see [`rewrite_text_fast`]). It answers only where it is sure to answer as
/// the reference reading does; anything else is left to that reading (`Bail`).
mod scan {
    use std::borrow::Cow;
    use std::ops::Range;

    use serde_json::Value;

    use super::{
        id_matches, ArrayId, KeepItem, ListKind, ListMemo, PendingList, ReadArray, ReadItem,
        ReadName, Rewritten, FEW_MEMBERS, MAX_NESTED_MEMBERS,
    };

    /// The scan leaves the message to the reference reading.
    struct Bail;

    type Scan<T> = Result<T, Bail>;

    /// Nesting deeper than this is left to the reference reading (which skips any depth).
    const MAX_DEPTH: usize = 512;

    /// One item of a list array: its bytes, and how the policy will see it.
    struct Item {
        start: usize,
        end: usize,
        /// The naming member (offsets into the text).
        name: ReadName,
        /// False when the item is not an object, repeats a member name, holds a number out of
        /// range at its top level or too many nested members: removed unjudged.
        judgeable: bool,
    }

    /// An item array of a response that answers a pending list of its kind.
    struct List {
        /// The `[`.
        open: usize,
        /// Just past the `]`.
        close: usize,
        kind: ListKind,
        /// Its items, in `Reader::items`.
        items: Range<usize>,
        /// Its id in the memo, when the memo has it.
        array: Option<ArrayId>,
    }

    struct Reader<'t, 'p> {
        text: &'t str,
        bytes: &'t [u8],
        at: usize,
        pending: &'p [PendingList],
        memo: &'p ListMemo,
        items: Vec<Item>,
        lists: Vec<List>,
        answered: Vec<usize>,
        /// The member names of the item being read.
        keys: Vec<Cow<'t, str>>,
    }

    pub(super) fn rewrite(
        text: &str,
        pending: &[PendingList],
        keep: &KeepItem,
        memo: &ListMemo,
    ) -> Option<Rewritten> {
        let mut reader = Reader {
            text,
            bytes: text.as_bytes(),
            at: 0,
            pending,
            memo,
            items: Vec::new(),
            lists: Vec::new(),
            answered: Vec::new(),
            keys: Vec::new(),
        };
        reader.message().ok()?;
        reader.splice(keep)
    }

    impl<'t> Reader<'t, '_> {
        fn peek(&self) -> Option<u8> {
            self.bytes.get(self.at).copied()
        }

        fn eat(&mut self, byte: u8) -> bool {
            let found = self.peek() == Some(byte);
            if found {
                self.at += 1;
            }
            found
        }

        fn expect(&mut self, byte: u8) -> Scan<()> {
            if self.eat(byte) {
                Ok(())
            } else {
                Err(Bail)
            }
        }

        /// JSON's insignificant whitespace.
        #[inline(always)]
        fn space(&mut self) {
            self.at = skip_space(self.bytes, self.at);
        }

        /// After a member or element: `Ok(true)` past a comma, `Ok(false)` past `close`.
        fn next_or_close(&mut self, close: u8) -> Scan<bool> {
            self.space();
            if self.eat(b',') {
                self.space();
                Ok(true)
            } else if self.eat(close) {
                Ok(false)
            } else {
                Err(Bail)
            }
        }

        /// Past `{` or `[` and any whitespace: whether the container is empty (then past its
        /// close too).
        fn open(&mut self, close: u8) -> bool {
            self.at += 1;
            self.space();
            self.eat(close)
        }

        /// The whole message: a response, a batch, or any other JSON value.
        fn message(&mut self) -> Scan<()> {
            self.space();
            match self.peek() {
                Some(b'{') => self.response()?,
                Some(b'[') => {
                    if !self.open(b']') {
                        loop {
                            if self.peek() == Some(b'{') {
                                self.response()?;
                            } else {
                                self.read_value()?;
                            }
                            if !self.next_or_close(b']')? {
                                break;
                            }
                        }
                    }
                }
                _ => self.read_value()?,
            }
            self.space();
            if self.at == self.bytes.len() {
                Ok(())
            } else {
                Err(Bail)
            }
        }

        /// A member name, decoded (as serde_json decodes it: a lone surrogate is left to the
        /// reference reading), then the colon.
        #[inline(always)]
        fn key(&mut self) -> Scan<Cow<'t, str>> {
            self.expect(b'"')?;
            let (start, end, escaped) = self.string()?;
            let key = self.decoded(start, end, escaped)?;
            self.space();
            self.expect(b':')?;
            self.space();
            Ok(key)
        }

        /// One response object: its ids, and the item arrays of its results.
        fn response(&mut self) -> Scan<()> {
            let lists_before = self.lists.len();
            let mut ids: Vec<Range<usize>> = Vec::new();
            if !self.open(b'}') {
                loop {
                    let key = self.key()?;
                    match &*key {
                        "id" => {
                            let start = self.at;
                            self.skip_value()?;
                            ids.push(start..self.at);
                        }
                        "result" => self.result()?,
                        _ => self.skip_value()?,
                    }
                    if !self.next_or_close(b'}')? {
                        break;
                    }
                }
            }
            // The pending lists it answers, by any of its ids (compared as the reference does).
            let mut kinds: Vec<ListKind> = Vec::new();
            for id in ids {
                let raw = self.text.get(id).ok_or(Bail)?;
                let Ok(id) = serde_json::from_str::<Value>(raw) else { continue };
                for (index, list) in self.pending.iter().enumerate() {
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
            let found = self.lists.split_off(lists_before);
            self.lists.extend(found.into_iter().filter(|list| kinds.contains(&list.kind)));
            Ok(())
        }

        /// A response's `result`: its list members are read when some pending list is of
        /// their kind (the response's id is not known yet), the rest skipped.
        fn result(&mut self) -> Scan<()> {
            if self.peek() != Some(b'{') {
                return self.read_value();
            }
            if self.open(b'}') {
                return Ok(());
            }
            loop {
                let key = self.key()?;
                match ListKind::ALL.into_iter().find(|kind| kind.member() == key) {
                    Some(kind) => match self.peek() {
                        Some(b'[') if self.pending.iter().any(|list| list.kind == kind) => {
                            self.list(kind)?
                        }
                        Some(b'[') => self.skip_value()?,
                        Some(b'n') => self.literal(b"null")?,
                        // Neither an array nor null: for the reference reading.
                        _ => return Err(Bail),
                    },
                    None => self.skip_value()?,
                }
                if !self.next_or_close(b'}')? {
                    return Ok(());
                }
            }
        }

        /// An item array: as the memo has it, or read (and then remembered).
        fn list(&mut self, kind: ListKind) -> Scan<()> {
            let open = self.at;
            let first = self.items.len();
            let rest = self.bytes.get(open..).ok_or(Bail)?;
            let items = &mut self.items;
            let remembered = self.memo.find(kind, rest, |array| {
                items.extend(array.items.iter().map(|item| Item {
                    start: open + item.start,
                    end: open + item.end,
                    name: match &item.name {
                        ReadName::Plain { start, end } => {
                            ReadName::Plain { start: open + start, end: open + end }
                        }
                        name => name.clone(),
                    },
                    judgeable: item.judgeable,
                }));
                (array.bytes.len(), array.id)
            });
            let array = if let Some((length, id)) = remembered {
                self.at = open + length;
                Some(id)
            } else {
                if !self.open(b']') {
                    loop {
                        let start = self.at;
                        let (name, judgeable) = self.item(kind.naming_member())?;
                        self.items.push(Item { start, end: self.at, name, judgeable });
                        if !self.next_or_close(b']')? {
                            break;
                        }
                    }
                }
                self.remember(kind, open, first)
            };
            let items = first..self.items.len();
            self.lists.push(List { open, close: self.at, kind, items, array });
            Ok(())
        }

        /// Hands the array just read (from `open` to here, its items from `first`) to the memo;
        /// its id there, if kept.
        fn remember(&self, kind: ListKind, open: usize, first: usize) -> Option<ArrayId> {
            let (Some(bytes), Some(items)) =
                (self.bytes.get(open..self.at), self.items.get(first..))
            else {
                return None;
            };
            let relative = |at: usize| at.checked_sub(open);
            let items: Option<Box<[ReadItem]>> = items
                .iter()
                .map(|item| {
                    Some(ReadItem {
                        start: relative(item.start)?,
                        end: relative(item.end)?,
                        name: match &item.name {
                            ReadName::Plain { start, end } => {
                                ReadName::Plain { start: relative(*start)?, end: relative(*end)? }
                            }
                            name => name.clone(),
                        },
                        judgeable: item.judgeable,
                    })
                })
                .collect();
            let items = items?;
            self.memo.remember(ReadArray { id: ArrayId::next(), kind, bytes: bytes.into(), items })
        }

        /// One item, read as the reference reads it for the policy: its top-level member names
        /// and string values decoded, its numbers checked for range, the names of the members
        /// of its object members decoded, anything deeper only checked for grammar.
        fn item(&mut self, member: &str) -> Scan<(ReadName, bool)> {
            if self.peek() != Some(b'{') {
                self.skip_value()?;
                return Ok((ReadName::Missing, false));
            }
            let mut name = ReadName::Missing;
            let mut judgeable = true;
            let mut nested = 0;
            let mut keys = std::mem::take(&mut self.keys);
            keys.clear();
            if !self.open(b'}') {
                loop {
                    let key = self.key()?;
                    match self.peek() {
                        Some(b'"') => {
                            self.at += 1;
                            let (start, end, escaped) = self.string()?;
                            if key == member {
                                name = if escaped {
                                    let decoded = self.decoded(start, end, escaped)?;
                                    ReadName::Decoded(decoded.into_owned().into_boxed_str())
                                } else {
                                    // As `decoded` would borrow it: on a character boundary.
                                    self.text.get(start..end).ok_or(Bail)?;
                                    ReadName::Plain { start, end }
                                };
                            } else if escaped {
                                self.decoded(start, end, escaped)?;
                            }
                        }
                        Some(b'{') => {
                            nested += 1;
                            self.object_member()?;
                        }
                        Some(b'[') => {
                            nested += 1;
                            self.skip_value()?;
                        }
                        Some(b'-' | b'0'..=b'9') => {
                            let start = self.at;
                            self.number()?;
                            judgeable &= self.in_range(start);
                        }
                        _ => self.skip_value()?,
                    }
                    judgeable &= nested <= MAX_NESTED_MEMBERS;
                    keys.push(key);
                    if !self.next_or_close(b'}')? {
                        break;
                    }
                }
            }
            judgeable &= !repeats_a_name(&keys);
            self.keys = keys;
            Ok((name, judgeable))
        }

        /// An item's member whose value is an object: its member names decoded, their values
        /// skipped.
        fn object_member(&mut self) -> Scan<()> {
            if self.open(b'}') {
                return Ok(());
            }
            loop {
                self.key()?;
                self.skip_value()?;
                if !self.next_or_close(b'}')? {
                    return Ok(());
                }
            }
        }

        /// A value where the reference reads scalars (a message, a batch element, a result that
        /// is not an object): a string it cannot decode or a number out of range is left to
        /// it; arrays and objects are skipped.
        fn read_value(&mut self) -> Scan<()> {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    let (start, end, escaped) = self.string()?;
                    if escaped {
                        self.decoded(start, end, escaped)?;
                    }
                    Ok(())
                }
                Some(b'-' | b'0'..=b'9') => {
                    let start = self.at;
                    self.number()?;
                    if self.in_range(start) {
                        Ok(())
                    } else {
                        Err(Bail)
                    }
                }
                _ => self.skip_value(),
            }
        }

        /// Whether the number from `start` to here is one serde_json reads (not out of range).
        fn in_range(&self, start: usize) -> bool {
            let Some(number) = self.text.get(start..self.at) else { return false };
            let digits = number.strip_prefix('-').unwrap_or(number);
            // Up to 18 digits without a fraction or exponent: an i64 or u64 at most.
            (digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()))
                || serde_json::from_str::<Value>(number).is_ok()
        }

        fn literal(&mut self, word: &[u8]) -> Scan<()> {
            self.at = skip_literal(self.bytes, self.at, word)?;
            Ok(())
        }

        /// A number, by JSON's grammar.
        fn number(&mut self) -> Scan<()> {
            self.at = skip_number(self.bytes, self.at)?;
            Ok(())
        }

        /// A string's contents, from past its opening quote to past its closing one: (start,
        /// end) of the contents and whether they hold escapes.
        #[inline(always)]
        fn string(&mut self) -> Scan<(usize, usize, bool)> {
            let start = self.at;
            let (end, escaped) = string_end(self.bytes, start)?;
            self.at = end + 1;
            Ok((start, end, escaped))
        }

        /// A string's contents decoded, borrowed when they hold no escape. A surrogate escape
        /// other than a well-formed pair is left to the reference reading.
        #[inline(always)]
        fn decoded(&self, start: usize, end: usize, escaped: bool) -> Scan<Cow<'t, str>> {
            let raw = self.text.get(start..end).ok_or(Bail)?;
            if escaped {
                unescaped(raw).map(Cow::Owned)
            } else {
                Ok(Cow::Borrowed(raw))
            }
        }

        /// Any JSON value, checked for grammar and passed over.
        fn skip_value(&mut self) -> Scan<()> {
            self.at = skip_value(self.bytes, self.at)?;
            Ok(())
        }

        /// Judges the items and writes the message without those refused.
        fn splice(self, keep: &KeepItem) -> Option<Rewritten> {
            let mut kept = vec![true; self.items.len()];
            let mut removed = 0;
            for list in &self.lists {
                let items = self.items.get(list.items.clone())?;
                let verdicts = kept.get_mut(list.items.clone())?;
                let known = list.array.and_then(|id| keep.remembered_verdicts(id));
                match known.filter(|known| known.len() == verdicts.len()) {
                    Some(known) => verdicts.copy_from_slice(&known),
                    None => {
                        for (item, verdict) in items.iter().zip(verdicts.iter_mut()) {
                            let name = match &item.name {
                                ReadName::Missing => None,
                                ReadName::Plain { start, end } => {
                                    Some(self.text.get(*start..*end)?)
                                }
                                ReadName::Decoded(name) => Some(&**name),
                            };
                            *verdict = item.judgeable && keep.keep(list.kind, name);
                        }
                        if let Some(id) = list.array {
                            keep.remember_verdicts(id, verdicts);
                        }
                    }
                }
                removed += verdicts.iter().filter(|kept| !**kept).count();
            }
            let answered = self.answered;
            if removed == 0 {
                return Some(Rewritten { text: None, removed, answered });
            }
            let text = self.text;
            let mut out = String::with_capacity(text.len());
            let mut at = 0;
            for list in &self.lists {
                let items = self.items.get(list.items.clone())?;
                let verdicts = kept.get(list.items.clone())?;
                let (Some(first), Some(last)) = (items.first(), items.last()) else { continue };
                if verdicts.iter().all(|kept| *kept) {
                    continue;
                }
                // As the reference writes it: the first kept item gets the whitespace after
                // `[`, each later one the text between it and the item before it.
                let inside = list.open + 1;
                out.push_str(text.get(at..inside)?);
                let mut previous_end = inside;
                let mut first_kept = true;
                for (item, &kept) in items.iter().zip(verdicts) {
                    if kept {
                        if first_kept {
                            out.push_str(text.get(inside..first.start)?);
                            out.push_str(text.get(item.start..item.end)?);
                        } else {
                            out.push_str(text.get(previous_end..item.end)?);
                        }
                        first_kept = false;
                    }
                    previous_end = item.end;
                }
                out.push_str(text.get(last.end..list.close)?);
                at = list.close;
            }
            out.push_str(text.get(at..)?);
            Some(Rewritten { text: Some(out), removed, answered })
        }
    }

    /// A string's contents with their escapes decoded (see `Reader::decoded`).
    #[inline(never)]
    fn unescaped(raw: &str) -> Scan<String> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(backslash) = rest.find('\\') {
            out.push_str(rest.get(..backslash).ok_or(Bail)?);
            let escape = rest.get(backslash + 1..).ok_or(Bail)?;
            let (decoded, after) = match escape.as_bytes().first() {
                Some(b'"') => ('"', 1),
                Some(b'\\') => ('\\', 1),
                Some(b'/') => ('/', 1),
                Some(b'b') => ('\u{8}', 1),
                Some(b'f') => ('\u{c}', 1),
                Some(b'n') => ('\n', 1),
                Some(b'r') => ('\r', 1),
                Some(b't') => ('\t', 1),
                Some(b'u') => {
                    let unit = hex4(escape.as_bytes().get(1..5)).ok_or(Bail)?;
                    match unit {
                        0xD800..=0xDBFF => {
                            let low = match escape.as_bytes().get(5..7) {
                                Some(b"\\u") => hex4(escape.as_bytes().get(7..11)),
                                _ => None,
                            };
                            let Some(low @ 0xDC00..=0xDFFF) = low else { return Err(Bail) };
                            let code = 0x10000
                                + ((u32::from(unit) - 0xD800) << 10)
                                + (u32::from(low) - 0xDC00);
                            (char::from_u32(code).ok_or(Bail)?, 11)
                        }
                        0xDC00..=0xDFFF => return Err(Bail),
                        _ => (char::from_u32(u32::from(unit)).ok_or(Bail)?, 5),
                    }
                }
                _ => return Err(Bail),
            };
            out.push(decoded);
            rest = escape.get(after..).ok_or(Bail)?;
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Past JSON's insignificant whitespace from `at`.
    #[inline(always)]
    fn skip_space(bytes: &[u8], mut at: usize) -> usize {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
            at += 1;
        }
        at
    }

    /// Past the string whose contents start at `at` (just past its opening quote).
    #[inline(always)]
    fn skip_string(bytes: &[u8], at: usize) -> Scan<usize> {
        string_end(bytes, at).map(|(end, _)| end + 1)
    }

    /// The end of the string contents starting at `at` (the index of the closing quote), and
    /// whether they hold escapes. Escapes are checked as serde_json checks the strings it
    /// skips (any `\uXXXX`).
    #[inline(always)]
    fn string_end(bytes: &[u8], mut at: usize) -> Scan<(usize, bool)> {
        let mut escaped = false;
        loop {
            at = plain_run_end(bytes, at);
            match bytes.get(at) {
                Some(b'"') => return Ok((at, escaped)),
                Some(b'\\') => {
                    escaped = true;
                    match bytes.get(at + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => at += 2,
                        Some(b'u') => {
                            hex4(bytes.get(at + 2..at + 6)).ok_or(Bail)?;
                            at += 6;
                        }
                        _ => return Err(Bail),
                    }
                }
                // A control character, or the end of the text.
                _ => return Err(Bail),
            }
        }
    }

    /// Past the number at `at`, by JSON's grammar.
    #[inline(always)]
    fn skip_number(bytes: &[u8], mut at: usize) -> Scan<usize> {
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        match bytes.get(at) {
            Some(b'0') => at += 1,
            Some(b'1'..=b'9') => at = skip_digits(bytes, at + 1),
            _ => return Err(Bail),
        }
        if bytes.get(at) == Some(&b'.') {
            at = some_digits(bytes, at + 1)?;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            at = some_digits(bytes, at)?;
        }
        Ok(at)
    }

    #[inline(always)]
    fn skip_digits(bytes: &[u8], mut at: usize) -> usize {
        while let Some(b'0'..=b'9') = bytes.get(at) {
            at += 1;
        }
        at
    }

    #[inline(always)]
    fn some_digits(bytes: &[u8], at: usize) -> Scan<usize> {
        let end = skip_digits(bytes, at);
        if end > at {
            Ok(end)
        } else {
            Err(Bail)
        }
    }

    /// Past `word` at `at`.
    #[inline(always)]
    fn skip_literal(bytes: &[u8], at: usize, word: &[u8]) -> Scan<usize> {
        if bytes.get(at..at + word.len()) == Some(word) {
            Ok(at + word.len())
        } else {
            Err(Bail)
        }
    }

    /// Past a skipped object's member name (not decoded), its colon and the whitespace after.
    #[inline(always)]
    fn skip_key(bytes: &[u8], at: usize) -> Scan<usize> {
        if bytes.get(at) != Some(&b'"') {
            return Err(Bail);
        }
        let at = skip_space(bytes, skip_string(bytes, at + 1)?);
        if bytes.get(at) != Some(&b':') {
            return Err(Bail);
        }
        Ok(skip_space(bytes, at + 1))
    }

    /// Past the JSON value at `at`, its grammar checked. The open containers are kept as bits
    /// (set: an object), so that any depth up to [`MAX_DEPTH`] costs no allocation.
    fn skip_value(bytes: &[u8], mut at: usize) -> Scan<usize> {
        let mut objects = [0u64; MAX_DEPTH / 64];
        let mut depth = 0usize;
        loop {
            // At a value.
            match bytes.get(at) {
                Some(b'"') => at = skip_string(bytes, at + 1)?,
                Some(&open @ (b'{' | b'[')) => {
                    let object = open == b'{';
                    at = skip_space(bytes, at + 1);
                    if bytes.get(at) == Some(if object { &b'}' } else { &b']' }) {
                        at += 1;
                    } else {
                        let word = objects.get_mut(depth / 64).ok_or(Bail)?;
                        let bit = 1u64 << (depth % 64);
                        *word = if object { *word | bit } else { *word & !bit };
                        depth += 1;
                        if object {
                            at = skip_key(bytes, at)?;
                        }
                        continue;
                    }
                }
                Some(b'-' | b'0'..=b'9') => at = skip_number(bytes, at)?,
                Some(b't') => at = skip_literal(bytes, at, b"true")?,
                Some(b'f') => at = skip_literal(bytes, at, b"false")?,
                Some(b'n') => at = skip_literal(bytes, at, b"null")?,
                _ => return Err(Bail),
            }
            // A value has ended: close the containers it ends, or go on to the next.
            loop {
                let Some(inner) = depth.checked_sub(1) else { return Ok(at) };
                let word = objects.get(inner / 64).copied().unwrap_or_default();
                let object = word >> (inner % 64) & 1 == 1;
                at = skip_space(bytes, at);
                match bytes.get(at) {
                    Some(b',') => {
                        at = skip_space(bytes, at + 1);
                        if object {
                            at = skip_key(bytes, at)?;
                        }
                        break;
                    }
                    Some(b'}') if object => {
                        at += 1;
                        depth = inner;
                    }
                    Some(b']') if !object => {
                        at += 1;
                        depth = inner;
                    }
                    _ => return Err(Bail),
                }
            }
        }
    }

    /// Whether two of an item's member names are equal.
    fn repeats_a_name(keys: &[Cow<'_, str>]) -> bool {
        if keys.len() <= FEW_MEMBERS {
            return keys
                .iter()
                .enumerate()
                .any(|(i, key)| keys.get(..i).is_some_and(|before| before.contains(key)));
        }
        let mut sorted: Vec<&str> = keys.iter().map(|key| key.as_ref()).collect();
        sorted.sort_unstable();
        sorted.windows(2).any(|pair| pair.first() == pair.last())
    }

    /// Four hexadecimal digits.
    fn hex4(digits: Option<&[u8]>) -> Option<u16> {
        let digits = digits?;
        if digits.len() != 4 {
            return None;
        }
        digits.iter().try_fold(0u16, |value, &digit| {
            let nibble = char::from(digit).to_digit(16)?;
            Some(value << 4 | nibble as u16)
        })
    }

    /// Where the run of plain string bytes from `at` ends: at the next `"`, `\\` or control
    /// character (or the end). Sixteen bytes at a time with wasm SIMD (one compare per kind of
    /// byte, then the first flagged lane).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn plain_run_end(bytes: &[u8], at: usize) -> usize {
        use core::arch::wasm32::{u8x16, u8x16_bitmask, u8x16_eq, u8x16_lt, u8x16_splat, v128_or};
        let rest = bytes.get(at..).unwrap_or_default();
        let (chunks, tail) = rest.as_chunks::<16>();
        let (quote, backslash, control) =
            (u8x16_splat(b'"'), u8x16_splat(b'\\'), u8x16_splat(0x20));
        for (index, c) in chunks.iter().enumerate() {
            let v = u8x16(
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12],
                c[13], c[14], c[15],
            );
            let flagged =
                v128_or(v128_or(u8x16_eq(v, quote), u8x16_eq(v, backslash)), u8x16_lt(v, control));
            let mask = u8x16_bitmask(flagged);
            if mask != 0 {
                return at + index * 16 + mask.trailing_zeros() as usize;
            }
        }
        at + chunks.len() * 16 + plain_prefix(tail)
    }

    /// Where the run of plain string bytes from `at` ends: at the next `"`, `\\` or control
    /// character (or the end). Eight bytes at a time (the bit tricks find the first such byte
    /// in a word; bytes after it may be flagged falsely, and are not looked at).
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    fn plain_run_end(bytes: &[u8], at: usize) -> usize {
        const ONES: u64 = u64::MAX / 255;
        const HIGH_BITS: u64 = ONES << 7;
        let rest = bytes.get(at..).unwrap_or_default();
        let mut chunks = rest.chunks_exact(8);
        let mut end = at;
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            let quote = word ^ (ONES * u64::from(b'"'));
            let backslash = word ^ (ONES * u64::from(b'\\'));
            let found = (quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash)
                | (word.wrapping_sub(ONES * 0x20) & !word);
            let found = found & HIGH_BITS;
            if found != 0 {
                return end + (found.trailing_zeros() / 8) as usize;
            }
            end += 8;
        }
        end + plain_prefix(chunks.remainder())
    }

    /// How many bytes of `bytes` come before a `"`, `\\` or control character.
    fn plain_prefix(bytes: &[u8]) -> usize {
        bytes
            .iter()
            .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
            .unwrap_or(bytes.len())
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
        match rewrite_json_body(body.as_bytes(), pending, &not_secret, &ListMemo::default()) {
            ListRewrite::Filtered { body, removed } => (String::from_utf8(body).unwrap(), removed),
            other => panic!("expected Filtered, got {other:?}"),
        }
    }

    /// `body` rewritten with `memo`, against a reading with a fresh memo.
    fn with_memo(body: &str, pending: &[PendingList], memo: &ListMemo) -> Option<Rewritten> {
        let out = rewrite_text_fast(body, pending, &not_secret, memo);
        assert_eq!(out, rewrite_text_fast(body, pending, &not_secret, &ListMemo::default()));
        out
    }

    #[test]
    fn the_memo_reads_the_same_array_once_whatever_surrounds_it() {
        let memo = ListMemo::default();
        let items = r#"[{"name":"echo"},{"name":"secret_\u0061","x":1},{"name":"whoami"}]"#;
        let first = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":{items}}}}}"#);
        let out = with_memo(&first, &tools_list(1), &memo).unwrap();
        assert_eq!(out.removed, 1);
        assert_eq!(memo.len(), 1);
        // Another id, other members around it, another position: the same array, found.
        let second = format!(
            r#"{{"id":"x9","result":{{"nextCursor":"c","tools":{items}}},"jsonrpc":"2.0"}}"#
        );
        let pending = vec![PendingList { id: RequestId(json!("x9")), kind: ListKind::Tools }];
        let out = with_memo(&second, &pending, &memo).unwrap();
        assert_eq!(out.removed, 1);
        assert_eq!(
            out.text.unwrap(),
            r#"{"id":"x9","result":{"nextCursor":"c","tools":[{"name":"echo"},{"name":"whoami"}]},"jsonrpc":"2.0"}"#
        );
        assert_eq!(memo.len(), 1, "found, not read again");
    }

    #[test]
    fn the_memo_matches_only_the_same_bytes_of_the_same_kind() {
        let memo = ListMemo::default();
        let body = |items: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":{items},"resources":{items}}}}}"#
            )
        };
        let items = r#"[{"name":"echo","uri":"secret://a"}]"#;
        let both = vec![
            PendingList { id: RequestId(json!(1)), kind: ListKind::Tools },
            PendingList { id: RequestId(json!(1)), kind: ListKind::Resources },
        ];
        // The same bytes named by `name` as tools and by `uri` as resources.
        let out = with_memo(&body(items), &both, &memo).unwrap();
        assert_eq!(out.removed, 1);
        assert_eq!(memo.len(), 2);
        // An array that begins like a remembered one but goes on is read afresh.
        let longer = r#"[{"name":"echo","uri":"secret://a"},{"name":"secret_b"}]"#;
        let out = with_memo(&body(longer), &both, &memo).unwrap();
        assert_eq!(out.removed, 3);
        // One byte changed inside an item: read afresh too.
        let changed = r#"[{"name":"echo","uri":"secret://b"}]"#;
        assert_eq!(with_memo(&body(changed), &both, &memo).unwrap().removed, 1);
        let renamed = r#"[{"name":"secret","uri":"secret://a"}]"#;
        assert_eq!(with_memo(&body(renamed), &both, &memo).unwrap().removed, 2);
    }

    /// Judges as `not_secret`, counting its calls, and keeps its verdicts per array.
    #[derive(Default)]
    struct Counting {
        calls: std::cell::Cell<usize>,
        kept: RefCell<Vec<(ArrayId, Rc<[bool]>)>>,
    }

    impl KeepItems for Counting {
        fn keep(&self, kind: ListKind, name: Option<&str>) -> bool {
            self.calls.set(self.calls.get() + 1);
            not_secret(kind, name)
        }

        fn remembered_verdicts(&self, array: ArrayId) -> Option<Rc<[bool]>> {
            self.kept.borrow().iter().find(|(id, _)| *id == array).map(|(_, v)| Rc::clone(v))
        }

        fn remember_verdicts(&self, array: ArrayId, verdicts: &[bool]) {
            self.kept.borrow_mut().push((array, verdicts.into()));
        }
    }

    #[test]
    fn verdicts_on_a_remembered_array_are_asked_for_once() {
        let memo = ListMemo::default();
        let judge = Counting::default();
        let items = r#"[{"name":"echo"},{"name":"secret_a"},7,{"name":"b","name":"secret"}]"#;
        let body = |id: i64| format!(r#"{{"id":{id},"result":{{"tools":{items}}}}}"#);
        let fresh = |id: i64| {
            rewrite_text_fast(&body(id), &tools_list(id), &not_secret, &ListMemo::default())
        };
        for id in 1..4 {
            let out = rewrite_text_fast(&body(id), &tools_list(id), &judge, &memo);
            assert_eq!(out, fresh(id));
            assert_eq!(out.map(|out| out.removed), Some(3));
        }
        // Two judgeable items, asked about once; the unjudgeable ones are never asked about.
        assert_eq!(judge.calls.get(), 2);
        // A changed array is another array: asked about afresh.
        let changed = r#"{"id":1,"result":{"tools":[{"name":"echo"},{"name":"whoami"}]}}"#;
        assert_eq!(
            rewrite_text_fast(changed, &tools_list(1), &judge, &memo).map(|o| o.removed),
            Some(0)
        );
        assert_eq!(judge.calls.get(), 4);
        // Verdicts of another length under an id are not trusted.
        let liar = Counting::default();
        let out = rewrite_text_fast(&body(1), &tools_list(1), &liar, &memo);
        assert_eq!(out, fresh(1));
        let id = liar.kept.borrow()[0].0;
        liar.kept.borrow_mut()[0] = (id, Rc::from(vec![true]));
        assert_eq!(rewrite_text_fast(&body(1), &tools_list(1), &liar, &memo), fresh(1));
    }

    #[test]
    fn the_memo_is_bounded() {
        let memo = ListMemo::default();
        for i in 0..(MEMO_ARRAYS + 3) {
            let body = format!(r#"{{"id":1,"result":{{"tools":[{{"name":"t{i}"}}]}}}}"#);
            with_memo(&body, &tools_list(1), &memo);
        }
        assert_eq!(memo.len(), MEMO_ARRAYS);
        // An array over half the byte bound is read, not kept.
        let big = format!(
            r#"{{"id":1,"result":{{"tools":[{{"name":"big","d":"{}"}}]}}}}"#,
            "x".repeat(MEMO_BYTES)
        );
        with_memo(&big, &tools_list(1), &memo);
        assert!(memo.arrays.borrow().iter().all(|array| array.bytes.len() < MEMO_BYTES / 2));
    }

    #[test]
    fn same_bytes_compares_every_byte() {
        let a: Vec<u8> = (0..100u8).collect();
        for cut in [0, 1, 15, 16, 17, 31, 32, 33, 64, 99, 100] {
            assert!(same_bytes(&a[..cut], &a[..cut]));
        }
        for flip in 0..100 {
            let mut b = a.clone();
            b[flip] ^= 1;
            assert!(!same_bytes(&a, &b), "byte {flip}");
        }
        assert!(!same_bytes(&a[..10], &a[..11]));
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
                rewrite_json_body(body.as_bytes(), &pending, &not_secret, &ListMemo::default()),
                ListRewrite::Unchanged,
                "{body}"
            );
        }
        assert_eq!(
            rewrite_json_body(b"not json", &[], &not_secret, &ListMemo::default()),
            ListRewrite::Unchanged
        );
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
            match rewrite_json_body(
                body.as_bytes(),
                &tools_list(1),
                &not_secret,
                &ListMemo::default(),
            ) {
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
            let out = rewrite_json_body(
                body.as_bytes(),
                &tools_list(1),
                &not_secret,
                &ListMemo::default(),
            );
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
            rewrite_json_body(body.as_bytes(), &tools_list(1), &record, &ListMemo::default()),
            ListRewrite::Unchanged
        );
        assert_eq!(seen.borrow().clone(), vec![Some("echo".to_owned())]);
        // A name that is not a string is not shown; the other members never are.
        seen.borrow_mut().clear();
        let body = r#"{"id":1,"result":{"tools":[{"name":1,"uri":"a"},{"title":"x"}]}}"#;
        assert_eq!(
            rewrite_json_body(body.as_bytes(), &tools_list(1), &record, &ListMemo::default()),
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

    /// The lists the scan is compared on: tools, prompts and resources, by three ids.
    fn three_lists() -> Vec<PendingList> {
        vec![
            PendingList { id: RequestId(json!(1)), kind: ListKind::Tools },
            PendingList { id: RequestId(json!("p")), kind: ListKind::Prompts },
            PendingList { id: RequestId(json!(7)), kind: ListKind::Resources },
        ]
    }

    /// Whether the single scan answered `body`; where it did, it answered as the reference.
    /// Both with a memo of its own, and with one kept across calls (which then finds the
    /// arrays of earlier bodies, as a worker's does).
    fn scan_agrees(body: &str, pending: &[PendingList]) -> bool {
        thread_local! {
            static KEPT: ListMemo = ListMemo::default();
        }
        let fast = rewrite_text_fast(body, pending, &not_secret, &ListMemo::default());
        if let Some(fast) = &fast {
            let reference = rewrite_text_reference(body, pending, &not_secret);
            assert_eq!(Ok(fast), reference.as_ref(), "{body:?}");
        }
        let again = KEPT.with(|memo| {
            let first = rewrite_text_fast(body, pending, &not_secret, memo);
            let second = rewrite_text_fast(body, pending, &not_secret, memo);
            assert_eq!(first, second, "a remembered array read otherwise: {body:?}");
            first
        });
        assert_eq!(again, fast, "with a kept memo: {body:?}");
        fast.is_some()
    }

    /// Well-formed messages the scan must answer itself (not leave to the reference).
    fn scanned_bodies() -> Vec<String> {
        let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
        let members: String = (0..40).map(|i| format!(r#","m{i}":{i}"#)).collect();
        let nested: String = (0..70).map(|i| format!(r#","n{i}":{{}}"#)).collect();
        vec![
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","inputSchema":{"type":"object"}}, {"name":"secret_a"},{"name":"whoami"}],"nextCursor":"c2"}}"#.into(),
            "{\n  \"id\": 1,\n  \"result\": {\n    \"tools\": [\n      {\"name\": \"secret_1\"},\n      {\"name\": \"a\"},\n      {\"name\": \"b\"},\n      {\"name\": \"secret_2\"}\n    ]\n  }\n}".into(),
            r#"{"id":1,"result":{"tools":[ {"name":"secret_1"} , {"name":"secret_2"} ]}}"#.into(),
            r#"[{"id":"x","result":{"tools":[{"name":"secret"}]}}, {"id":"p","result":{"prompts":[{"name":"secret"},{"name":"ok"}]}},{"id":7,"result":{"resources":[{"uri":"secret://a"},{"uri":"file:///b","name":"b"}]}}]"#.into(),
            r#"{"i\u0064":1,"resul\u0074":{"tool\u0073":[{"name":"\u0073ecret"},{"name":"ok"}]}}"#.into(),
            r#"{"id":2,"id":1,"result":{"tools":[{"name":"secret"}]},"result":{"tools":[{"name":"a"}],"tools":[{"name":"secret"}]}}"#.into(),
            r#"{"id":1.0,"result":{"tools":[{"name":"secret"}]}}"#.into(),
            r#"{"id":1e0,"result":{"tools":[{"name":"secret"},{"name":"a"}]}}"#.into(),
            r#"{"id":1,"result":{"tools":[{"name":"ok"},{"name":"ok","name":"secret"},"secret",[{"name":"x"}],{"name":"ok2"}]}}"#.into(),
            format!(r#"{{"id":1,"x":{deep},"y":1e400,"result":{{"tools":[{{"name":"secret"}},{{"name":"ok"}},{{"name":"deep","d":{deep}}},{{"name":"big","n":1e400}},{{"name":"n","n":-12.5e-3,"m":123456789012345678901}}]}}}}"#),
            r#"{"id":1,"result":{"tools":[{"n\u0061me":"ech\u006f","x":1,"t":true,"u":null,"inputSchema":{"type":"object"},"icons":[1]},{"name":1,"uri":"a"},{"title":"x"}]}}"#.into(),
            r#"{"id":1,"result":{"tools":[{"name":"a","s":{},"s":[]},{"name":"b","s":1,"s":{}},{"name":"secret\ud83d\ude00"},{"name":"\ud83d\ude00ok"}]}}"#.into(),
            format!(r#"{{"id":1,"result":{{"tools":[{{"name":"a"{members},"m3":{{}}}},{{"name":"b"{members}}},{{"name":"c"{members},"name":"c"}},{{"name":"d"{nested}}}]}}}}"#),
            r#"{"id":1,"result":{"tools":[{"name":"ok","d":"a\"b\\c\/d\b\f\n\r\t\u00e9"},{"name":"secret","o":{"k\u00e9":[{"\ud800":1}]}}]}}"#.into(),
            r#"{"id":1,"result":{"tools":null,"prompts":[{"name":"secret"}],"nextCursor":"n"}}"#.into(),
            r#"{"id":1,"result":{"tools":[]},"error":{"code":1}}"#.into(),
            r#"{"id":"p","result":{"prompts":[{"name":"secret"}],"tools":[{"name":"secret"}]}}"#.into(),
            r#"[1,"a",[{"id":1,"result":{"tools":[{"name":"secret"}]}}],{},null,true,false]"#.into(),
            r#"{"jsonrpc":"2.0","method":"notifications/progress"}"#.into(),
            r#""a string""#.into(),
            " 12 ".into(),
            r#"{"id":1,"result":"tools"}"#.into(),
            r#"{"id":1,"result":[{"tools":[{"name":"secret"}]}]}"#.into(),
            r#"{"id":{"a":[1]},"result":{"tools":[{"name":"secret"}]}}"#.into(),
        ]
    }

    #[test]
    fn the_scan_answers_as_the_reference_reading() {
        for body in scanned_bodies() {
            assert!(scan_agrees(&body, &three_lists()), "left to the reference: {body}");
        }
        // Left to the reference reading: malformed text, lone surrogates where serde_json
        // decodes, a list that is neither an array nor null, nesting past the bound.
        let deep = format!("{}{}", "[".repeat(600), "]".repeat(600));
        for body in [
            r#"{"id":1,"result":{"tools":[{"name":"secret"}]"#.to_string(),
            r#"{"id":1,"result":{"tools":[{"name":"secret"}]}} trailing"#.into(),
            r#"{"id":1,"result":{"tools":[{"name":"secret"}],}}"#.into(),
            r#"[{"id":1,"result":{"tools":[{"name":"secret"}]},"\ud800":0}]"#.into(),
            r#"{"id":1,"result":{"tools":[{"name":"secret","\udc00":1}]}}"#.into(),
            r#"{"id":1,"result":{"tools":[{"name":"\ud800secret"}]}}"#.into(),
            r#"{"id":1,"result":{"tools":[{"name":"a","d":"\ud800"}]}}"#.into(),
            r#"[1e400,{"id":1,"result":{"tools":[]}}]"#.into(),
            r#"{"id":1,"result":"\udc00"}"#.into(),
            r#"{"id":1,"result":{"tools":{"name":"secret"}}}"#.into(),
            r#"{"id":9,"result":{"resources":1e400}}"#.into(),
            format!(r#"{{"id":1,"x":{deep},"result":{{"tools":[]}}}}"#),
            "{\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\tb\"}]}}".into(),
            "".into(),
        ] {
            assert!(!scan_agrees(&body, &three_lists()), "{body}");
        }
    }

    #[test]
    fn the_scan_and_the_reference_agree_on_mutated_messages() {
        const PIECES: [&str; 22] = [
            " ",
            ",",
            ":",
            "\"",
            "\\",
            "{",
            "}",
            "[",
            "]",
            "0",
            "-",
            "e",
            ".",
            "n",
            "\\u00e9",
            "\\ud800",
            "\\ud83d\\ude00",
            "\"name\":\"secret\",",
            "\"name\":",
            "1e400",
            "\u{1}",
            "{\"name\":\"x\"},",
        ];
        let mut answered = 0;
        let mut total = 0;
        for seed in scanned_bodies().iter().filter(|body| body.len() < 400) {
            let boundaries = (0..=seed.len()).filter(|&i| seed.is_char_boundary(i));
            for at in boundaries {
                let (before, after) = seed.split_at(at);
                let mut variants = Vec::new();
                if let Some(c) = after.chars().next() {
                    variants.push(format!("{before}{}", &after[c.len_utf8()..]));
                    for piece in PIECES {
                        variants.push(format!("{before}{piece}{}", &after[c.len_utf8()..]));
                    }
                }
                for piece in PIECES {
                    variants.push(format!("{before}{piece}{after}"));
                }
                for body in variants {
                    total += 1;
                    answered += usize::from(scan_agrees(&body, &three_lists()));
                }
            }
        }
        // Most mutations leave valid JSON the scan reads itself.
        assert!(answered * 5 > total, "{answered} of {total}");
    }

    #[test]
    fn a_lone_surrogate_where_nothing_is_judged_goes_out_as_it_came() {
        // fuzz/regressions/list_rewrite/lone-surrogate-in-another-response.bin: the first
        // response answers no pending list (no id), the second is filtered.
        let body = r#"[{"re":1,"result":{"tools":[{"name":"\ud800_x"}]}},{"id":1,"result":{"tools":[{"name":"secret"},{"name":"ok"}]}}]"#;
        let (out, removed) = filtered(body, &tools_list(1));
        assert_eq!(removed, 1);
        assert_eq!(
            out,
            r#"[{"re":1,"result":{"tools":[{"name":"\ud800_x"}]}},{"id":1,"result":{"tools":[{"name":"ok"}]}}]"#
        );
        assert!(serde_json::from_str::<de::IgnoredAny>(&out).is_ok());
    }

    #[test]
    fn invalid_utf8_is_judged_as_a_client_decodes_it() {
        let mut body = br#"{"id":1,"result":{"tools":[{"name":"secret","x":""#.to_vec();
        body.push(0xff);
        body.extend_from_slice(br#""},{"name":"ok"}]}}"#);
        match rewrite_json_body(&body, &tools_list(1), &not_secret, &ListMemo::default()) {
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
