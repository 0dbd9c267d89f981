//! The list-response rewriter for `text/event-stream` responses (Streamable HTTP), streaming.
//!
//! Events are read as the WHATWG EventSource parser reads them (lines end in CRLF, LF or CR; a
//! blank line ends an event; `data:` lines are joined with `\n`; a leading BOM is skipped), so
//! the rewriter and the client agree on where each event's JSON is.
//!
//! Only an event that could carry a pending list's response is held back, until it is
//! complete: one whose data starts with `{` or `[` (a JSON-RPC message or batch). Everything
//! else goes out as soon as its bytes are known not to belong to such an event: lines before
//! the first `data:` line (comments, `id:`, `event:`, `retry:`) at once, and an event whose
//! data starts otherwise from that byte on, even mid-line. Held events are bounded; one that
//! outgrows the bound, or does not parse as JSON, is replaced by a JSON-RPC error for each list
//! still waiting (it may have been the answer, and an item is never shown unjudged).

use std::borrow::Cow;
use std::rc::Rc;

use super::lists::{error_response, rewrite_text, KeepItem, ListMemo, Rewritten, Unreadable};
use super::PendingList;
use crate::host::decode_leniently;

const BOM: &[u8; 3] = b"\xEF\xBB\xBF";
/// Bounds a `data:` line held while it holds only whitespace (beyond it: fail closed).
const LEADING_SPACE_BOUND: usize = 4096;
const DATA: &[u8; 4] = b"data";

/// Where the reader is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// At its first byte.
    Start,
    /// Its first `n` bytes are `"data"[..n]`, not yet routed: it may be a `data:` line.
    Name(usize),
    /// After `data:` in an event not yet decided, all bytes so far JSON whitespace.
    DataValue,
    /// Anything else: bytes follow the event's routing up to the line end.
    Rest,
}

/// What the current event is known to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// No data byte seen yet: its lines go out as they come.
    Open,
    /// In a data line with only whitespace so far: the line is held, as its next byte may make
    /// the event a candidate. (Whitespace-only data lines that have ended go out: whitespace
    /// before a JSON message does not change it.)
    OpenHeld,
    /// Its data cannot be a JSON-RPC message: goes out as it comes.
    Pass,
    /// Its data starts a JSON object or array: held until the event is complete.
    Candidate,
    /// Held too long: its bytes are dropped, and errors go out when it ends.
    Over,
}

/// Rewrites one `text/event-stream` response body as it streams.
#[derive(Debug)]
pub struct SseRewriter {
    pending: Vec<PendingList>,
    /// Per pending list: answered (by a response or an error), so no second error is sent.
    answered: Vec<bool>,
    max_event_bytes: usize,
    removed: usize,
    replaced: usize,
    bom_seen: usize,
    bom_done: bool,
    after_cr: bool,
    /// Whether the last byte sent (in an earlier chunk) was a CR.
    sent_cr: bool,
    line: Line,
    event: Event,
    held: Vec<u8>,
    /// The worker's item arrays read before.
    memo: Rc<ListMemo>,
}

impl SseRewriter {
    /// `max_event_bytes` bounds a held event (e.g. the policy's `max_body_bytes`); `memo` is
    /// the worker's (see [`ListMemo`]).
    pub fn new(
        pending: Vec<PendingList>,
        max_event_bytes: usize,
        memo: Rc<ListMemo>,
    ) -> SseRewriter {
        let answered = vec![false; pending.len()];
        SseRewriter {
            pending,
            answered,
            max_event_bytes,
            removed: 0,
            replaced: 0,
            bom_seen: 0,
            bom_done: false,
            after_cr: false,
            sent_cr: false,
            line: Line::Start,
            event: Event::Open,
            held: Vec::new(),
            memo,
        }
    }

    /// Items removed from lists so far (for `mcp.list_filtered`).
    pub fn removed(&self) -> usize {
        self.removed
    }

    /// Events that could not be judged (too large, or not JSON) and were replaced by JSON-RPC
    /// errors for the lists still waiting (or dropped, when none was).
    pub fn replaced(&self) -> usize {
        self.replaced
    }

    /// Whether every pending list has been answered (rewritten, passed or replaced).
    pub fn all_answered(&self) -> bool {
        self.answered.iter().all(|done| *done)
    }

    /// Reads the next chunk of the body; returns the bytes to send now.
    pub fn push(&mut self, chunk: &[u8], keep: &KeepItem) -> Vec<u8> {
        if self.pending.is_empty() {
            // No list to look for: the stream passes as it is.
            return chunk.to_vec();
        }
        let mut out = Vec::with_capacity(chunk.len());
        let mut rest = chunk;
        while !self.bom_done {
            let Some((&byte, tail)) = rest.split_first() else { return out };
            if BOM.get(self.bom_seen) == Some(&byte) {
                self.bom_seen += 1;
                rest = tail;
                if self.bom_seen == BOM.len() {
                    out.extend_from_slice(BOM);
                    self.bom_done = true;
                }
            } else {
                self.bom_done = true;
                let seen = BOM.get(..self.bom_seen).unwrap_or_default();
                self.feed(seen, &mut out, keep);
            }
        }
        self.feed(rest, &mut out, keep);
        self.note_sent(&out);
        out
    }

    fn note_sent(&mut self, out: &[u8]) {
        if let Some(&last) = out.last() {
            self.sent_cr = last == b'\r';
        }
    }

    /// Ends the body; returns the last bytes to send. An event left incomplete is judged as
    /// it stands (clients discard it, but a lenient one might not).
    pub fn finish(&mut self, keep: &KeepItem) -> Vec<u8> {
        let mut out = Vec::new();
        if self.pending.is_empty() {
            return out;
        }
        if !self.bom_done {
            self.bom_done = true;
            let seen = BOM.get(..self.bom_seen).unwrap_or_default();
            self.feed(seen, &mut out, keep);
        }
        if let Line::Name(n) = self.line {
            self.route(DATA.get(..n).unwrap_or_default(), &mut out);
        }
        self.line = Line::Start;
        self.dispatch(&mut out, keep);
        out
    }

    fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<u8>, keep: &KeepItem) {
        while let Some((&byte, tail)) = bytes.split_first() {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                // The LF of a CRLF: part of the line end already seen.
                self.route(b"\n", out);
                bytes = tail;
                continue;
            }
            if self.line == Line::Rest && byte != b'\r' && byte != b'\n' {
                let end = memchr::memchr2(b'\r', b'\n', bytes);
                let (line, after) = bytes.split_at(end.unwrap_or(bytes.len()));
                self.route(line, out);
                bytes = after;
                continue;
            }
            bytes = tail;
            if byte == b'\r' || byte == b'\n' {
                self.line_end(byte, out, keep);
                continue;
            }
            match self.line {
                Line::Start => {
                    if byte == b'd' && matches!(self.event, Event::Open | Event::OpenHeld) {
                        self.line = Line::Name(1);
                    } else {
                        self.line = Line::Rest;
                        self.route(&[byte], out);
                    }
                }
                Line::Name(n) => {
                    if DATA.get(n) == Some(&byte) {
                        self.line = Line::Name(n + 1);
                    } else if n == DATA.len() && byte == b':' {
                        self.data_line_starts();
                        self.route(b"data:", out);
                        self.line = Line::DataValue;
                    } else {
                        // Another field (`dat:`, `database`): never data.
                        self.route(DATA.get(..n).unwrap_or_default(), out);
                        self.route(&[byte], out);
                        self.line = Line::Rest;
                    }
                }
                Line::DataValue => match byte {
                    b' ' | b'\t' => self.route(&[byte], out),
                    b'{' | b'[' => {
                        if self.event == Event::OpenHeld {
                            self.event = Event::Candidate;
                        }
                        self.route(&[byte], out);
                        self.line = Line::Rest;
                    }
                    _ => {
                        if self.event == Event::OpenHeld {
                            self.event = Event::Pass;
                            out.append(&mut self.held);
                        }
                        self.route(&[byte], out);
                        self.line = Line::Rest;
                    }
                },
                Line::Rest => self.route(&[byte], out),
            }
        }
    }

    /// A data line begins in an undecided event: from here on the event is held until its
    /// data shows what it is.
    fn data_line_starts(&mut self) {
        if self.event == Event::Open {
            self.event = Event::OpenHeld;
        }
    }

    fn line_end(&mut self, byte: u8, out: &mut Vec<u8>, keep: &KeepItem) {
        match self.line {
            Line::Start => {
                self.route(&[byte], out);
                self.dispatch(out, keep);
            }
            Line::Name(n) => {
                if n == DATA.len() {
                    // `data` alone: a data line with an empty value.
                    self.data_line_starts();
                }
                self.route(DATA.get(..n).unwrap_or_default(), out);
                self.route(&[byte], out);
            }
            Line::DataValue | Line::Rest => self.route(&[byte], out),
        }
        if self.event == Event::OpenHeld {
            // A whole data line of whitespace: it cannot start the message, so it goes out.
            out.append(&mut self.held);
            self.event = Event::Open;
        }
        self.line = Line::Start;
        self.after_cr = byte == b'\r';
    }

    /// Sends, holds or drops bytes of the current event, as the event requires.
    fn route(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        match self.event {
            Event::Open | Event::Pass => out.extend_from_slice(bytes),
            Event::OpenHeld | Event::Candidate => {
                let bound = match self.event {
                    Event::OpenHeld => LEADING_SPACE_BOUND,
                    _ => self.max_event_bytes,
                };
                if self.held.len().saturating_add(bytes.len()) > bound {
                    self.event = Event::Over;
                    self.held = Vec::new();
                } else {
                    self.held.extend_from_slice(bytes);
                }
            }
            Event::Over => {}
        }
    }

    /// The current event has ended (or the body has).
    fn dispatch(&mut self, out: &mut Vec<u8>, keep: &KeepItem) {
        let held = std::mem::take(&mut self.held);
        match std::mem::replace(&mut self.event, Event::Open) {
            Event::Open | Event::Pass => {}
            // Whitespace-only data is not JSON: nothing to judge.
            Event::OpenHeld => out.extend_from_slice(&held),
            Event::Candidate => self.rewrite_event(&held, out, keep),
            Event::Over => {
                self.replaced += 1;
                if !self.send_errors(out) {
                    // End the event whose first lines went out, so they do not join the next
                    // (at most whitespace data went out: a client sees no JSON in it).
                    self.end_event(out);
                }
            }
        }
    }

    /// Judges one held event and sends it, rewritten if it answers a pending list.
    fn rewrite_event(&mut self, event: &[u8], out: &mut Vec<u8>, keep: &KeepItem) {
        let parsed = ParsedEvent::parse(event);
        // Clients decode invalid UTF-8 leniently (U+FFFD); judge what they will see.
        let text = decode_leniently(&parsed.data);
        let rewritten = rewrite_text(&text, &self.pending, keep, &self.memo);
        if let Ok(Rewritten { answered, .. }) = &rewritten {
            for &index in answered {
                if let Some(done) = self.answered.get_mut(index) {
                    *done = true;
                }
            }
        }
        match rewritten {
            Ok(Rewritten { text: None, .. }) => out.extend_from_slice(event),
            Ok(Rewritten { text: Some(text), removed, .. }) => {
                self.removed += removed;
                out.extend_from_slice(&parsed.other_lines);
                for line in split_lines(&text) {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(line);
                    out.extend_from_slice(parsed.data_line_end);
                }
                out.extend_from_slice(parsed.blank_line);
            }
            Err(Unreadable) => {
                // Not JSON to us; perhaps a list to a more lenient client. Never sent as is.
                self.replaced += 1;
                out.extend_from_slice(&parsed.other_lines);
                if !self.send_errors(out) {
                    self.end_event(out);
                }
            }
        }
    }

    /// Ends the event being sent with a blank line. After a line ended by CR, a LF would only
    /// complete that line end (CRLF) and the event would join the next one: a CR it is then.
    fn end_event(&self, out: &mut Vec<u8>) {
        let after_cr = out.last().map_or(self.sent_cr, |&byte| byte == b'\r');
        out.push(if after_cr { b'\r' } else { b'\n' });
    }

    /// Sends a JSON-RPC error event for each list not yet answered; whether any was sent.
    fn send_errors(&mut self, out: &mut Vec<u8>) -> bool {
        let mut sent = false;
        for (list, done) in self.pending.iter().zip(self.answered.iter_mut()) {
            if !*done {
                *done = true;
                sent = true;
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(error_response(&list.id).to_string().as_bytes());
                out.extend_from_slice(b"\n\n");
            }
        }
        sent
    }
}

/// `text` split at each LF (as `str::split('\n')`, with memchr's SIMD search).
fn split_lines(text: &str) -> impl Iterator<Item = &[u8]> {
    let bytes = text.as_bytes();
    let ends = memchr::memchr_iter(b'\n', bytes).chain([bytes.len()]);
    let mut start = 0;
    ends.map(move |end| {
        let line = bytes.get(start..end).unwrap_or_default();
        start = end + 1;
        line
    })
}

/// One complete (or, at the end of the body, incomplete) event's bytes, taken apart.
struct ParsedEvent<'a> {
    /// The data lines' values joined with `\n` (borrowed when there is one).
    data: Cow<'a, [u8]>,
    /// The other lines (comments, `id:`, `event:`, `retry:`, others), with their line ends.
    other_lines: Vec<u8>,
    /// The line end of the first data line, for the lines written in their place.
    data_line_end: &'a [u8],
    /// The blank line that ended the event (empty at the end of the body).
    blank_line: &'a [u8],
}

impl<'a> ParsedEvent<'a> {
    fn parse(event: &'a [u8]) -> ParsedEvent<'a> {
        let mut parsed = ParsedEvent {
            data: Cow::Borrowed(b""),
            other_lines: Vec::new(),
            data_line_end: b"\n",
            blank_line: b"",
        };
        let mut seen_data = false;
        let mut rest = event;
        while !rest.is_empty() {
            let end = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
            let (line, after) = rest.split_at(end);
            let eol_len = match after {
                [b'\r', b'\n', ..] => 2,
                [] => 0,
                _ => 1,
            };
            let (eol, after) = after.split_at(eol_len);
            rest = after;
            if line.is_empty() {
                parsed.blank_line = eol;
                break;
            }
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let (name, value) = line.split_at(colon);
                    let value = value.get(1..).unwrap_or_default();
                    (name, value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &b""[..]),
            };
            if name == DATA {
                if seen_data {
                    let data = parsed.data.to_mut();
                    data.push(b'\n');
                    data.extend_from_slice(value);
                } else {
                    parsed.data = Cow::Borrowed(value);
                    parsed.data_line_end = if eol.is_empty() { b"\n" } else { eol };
                }
                seen_data = true;
            } else {
                parsed.other_lines.extend_from_slice(line);
                // An incomplete last line (at the end of the body) is ended, so that what is
                // written after it starts a line of its own.
                parsed.other_lines.extend_from_slice(if eol.is_empty() { b"\n" } else { eol });
            }
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::{ListKind, RequestId};
    use serde_json::{json, Value};

    fn pending() -> Vec<PendingList> {
        vec![PendingList { id: RequestId(json!(5)), kind: ListKind::Tools }]
    }

    fn not_secret(_: ListKind, name: Option<&str>) -> bool {
        name.is_some_and(|name| !name.starts_with("secret"))
    }

    /// The events a WHATWG EventSource client dispatches: (event type, data), in order.
    fn client_events(stream: &[u8]) -> Vec<(String, String)> {
        let stream = stream.strip_prefix(BOM.as_slice()).unwrap_or(stream);
        let text = String::from_utf8_lossy(stream).replace("\r\n", "\n").replace('\r', "\n");
        let mut events = Vec::new();
        let (mut kind, mut data) = (String::new(), None::<String>);
        let mut lines: Vec<&str> = text.split('\n').collect();
        lines.pop(); // the text after the last line end is an incomplete line: discarded
        for line in lines {
            if line.is_empty() {
                if let Some(data) = data.take() {
                    events.push((std::mem::take(&mut kind), data));
                }
                kind.clear();
                continue;
            }
            let (name, value) = match line.split_once(':') {
                Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match name {
                "data" => match data.as_mut() {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => data = Some(value.to_string()),
                },
                "event" => kind = value.to_string(),
                _ => {}
            }
        }
        events
    }

    fn run(chunks: &[&[u8]], max: usize) -> (Vec<u8>, SseRewriter) {
        let mut rewriter = SseRewriter::new(pending(), max, Rc::default());
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(rewriter.push(chunk, &not_secret));
        }
        out.extend(rewriter.finish(&not_secret));
        (out, rewriter)
    }

    const RESPONSE: &str = r#"{"jsonrpc":"2.0","id":5,"result":{"tools":[{"name":"echo"},{"name":"secret_x"},{"name":"whoami"}],"nextCursor":"n"}}"#;

    /// A stream with every line ending, a BOM, comments, fields, multi-line data, events that
    /// are not the response (and one that looks like it until its id), and the response split
    /// over three data lines.
    fn rich_stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(BOM);
        s.extend_from_slice(b": keep-alive\r\nretry: 1000\r\n\r\n");
        s.extend_from_slice(b"id: 1\revent: message\rdata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\r\r");
        s.extend_from_slice(b"data:plain text\ndata: more\n\n");
        s.extend_from_slice(
            b"data: {\"id\":4,\"result\":{\"tools\":[{\"name\":\"secret_other\"}]}}\n\n",
        );
        s.extend_from_slice(b"data\ndat: x\ndatabase: y\n\n");
        s.extend_from_slice(b"event: message\nid: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\n: a comment inside\ndata:\"result\":{\"tools\":[{\"name\":\"echo\"},{\"name\":\"secret_x\"},\ndata:  {\"name\":\"whoami\"}],\"nextCursor\":\"n\"}}\r\n\r\n");
        s.extend_from_slice(b"data: [\"after\"]\n\n: tail comment\n");
        s
    }

    #[test]
    fn only_the_response_event_is_rewritten_and_the_rest_is_kept() {
        let input = rich_stream();
        let (out, rewriter) = run(&[&input], 1 << 20);
        assert_eq!(rewriter.removed(), 1);
        assert!(rewriter.all_answered());
        let before = client_events(&input);
        let after = client_events(&out);
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(&after) {
            if b.1.contains("\"id\":5") {
                let value: Value = serde_json::from_str(&a.1).unwrap();
                assert_eq!(value["result"]["tools"], json!([{"name":"echo"},{"name":"whoami"}]));
                assert_eq!(value["result"]["nextCursor"], json!("n"));
                assert_eq!(a.0, "message");
            } else {
                assert_eq!(a, b);
            }
        }
        // Everything before the response event is byte-identical, and so is the tail.
        let cut = input.windows(10).position(|w| w == b"event: mes".as_slice()).unwrap();
        let cut = input[cut + 1..].windows(10).position(|w| w == b"event: mes").unwrap() + cut + 1;
        assert_eq!(out[..cut], input[..cut]);
        assert!(out.ends_with(b"data: [\"after\"]\n\n: tail comment\n"));
        assert!(!String::from_utf8_lossy(&out).contains("secret_x"));
    }

    #[test]
    fn an_unchanged_stream_is_byte_identical() {
        let input = rich_stream();
        let mut rewriter = SseRewriter::new(pending(), 1 << 20, Rc::default());
        let mut out = rewriter.push(&input, &|_, _: Option<&str>| true);
        out.extend(rewriter.finish(&|_, _: Option<&str>| true));
        assert_eq!(out, input);
        assert_eq!(rewriter.removed(), 0);
    }

    #[test]
    fn any_split_gives_the_same_output() {
        let input = rich_stream();
        let (whole, _) = run(&[&input], 1 << 20);
        let ones: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(&ones, 1 << 20).0, whole);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(run(&[a, b], 1 << 20).0, whole, "split at {cut}");
        }
    }

    #[test]
    fn events_that_cannot_be_the_response_go_out_before_they_end() {
        let mut rewriter = SseRewriter::new(pending(), 1 << 20, Rc::default());
        let keep = &not_secret;
        // Lines before any data, even the start of one, go out at once.
        assert_eq!(rewriter.push(b": ping\nid: 3\nev", keep), b": ping\nid: 3\nev");
        // `d` may start `data:`; held until the line shows otherwise.
        assert_eq!(rewriter.push(b"ent: x\nd", keep), b"ent: x\n");
        assert_eq!(rewriter.push(b"ata: ", keep), b"");
        // Data that is not JSON: out from its first byte, mid-line.
        assert_eq!(rewriter.push(b"hel", keep), b"data: hel");
        assert_eq!(rewriter.push(b"lo\n\n", keep), b"lo\n\n");
        // A JSON object may be the response: held until the event is complete.
        assert_eq!(rewriter.push(b"data: {\"id\":9,", keep), b"");
        assert_eq!(rewriter.push(b"\"result\":{}}\n", keep), b"");
        assert_eq!(rewriter.push(b"\n", keep), b"data: {\"id\":9,\"result\":{}}\n\n");
        assert_eq!(rewriter.finish(keep), b"");
    }

    #[test]
    fn an_oversized_or_unreadable_event_becomes_an_error_for_the_list() {
        for input in [
            format!("data: {RESPONSE}\n\ndata: [\"ok\"]\n\n"),
            "data: {\"id\":5,\"result\":{\"tools\":[{\"name\":\"secret\"}]\n\ndata: [\"ok\"]\n\n"
                .to_string(),
        ] {
            let (out, rewriter) = run(&[input.as_bytes()], 100);
            let events = client_events(&out);
            assert_eq!(events.len(), 2, "{}", String::from_utf8_lossy(&out));
            let error: Value = serde_json::from_str(&events[0].1).unwrap();
            assert_eq!(error["id"], json!(5));
            assert!(error["error"]["code"].is_i64());
            assert_eq!(events[1].1, "[\"ok\"]");
            assert_eq!(rewriter.replaced(), 1);
            assert!(!String::from_utf8_lossy(&out).contains("secret"));
        }
        // A data line of whitespace is held while it lasts, bounded by its own bound; once it
        // ends it goes out (whitespace cannot start the message), and the bound of held events
        // applies to the message alone.
        let input = format!("id: 1\ndata:{}\ndata: x\n\n", " ".repeat(300));
        assert_eq!(run(&[input.as_bytes()], 10).0, input.as_bytes());
        let input = format!("data:{}\ndata: {{\"id\":5}}\n\n", " ".repeat(300));
        let (out, rewriter) = run(&[input.as_bytes()], 20);
        assert_eq!((out, rewriter.replaced()), (input.clone().into_bytes(), 0));
        let input = format!("id: 1\ndata:{}\n\ndata: x\n\n", " ".repeat(LEADING_SPACE_BOUND));
        let (out, rewriter) = run(&[input.as_bytes()], 100);
        let events = client_events(&out);
        assert_eq!(events.len(), 2);
        assert!(events[0].1.contains("\"error\""));
        assert_eq!(events[1].1, "x");
        assert_eq!(rewriter.replaced(), 1);
    }

    #[test]
    fn an_incomplete_response_at_the_end_is_still_filtered() {
        let input = format!("data: {RESPONSE}");
        let (out, rewriter) = run(&[input.as_bytes()], 1 << 20);
        assert_eq!(rewriter.removed(), 1);
        assert!(!String::from_utf8_lossy(&out).contains("secret"));
        // Lenient reading (as if complete) sees the filtered list.
        let (_, data) = client_events(&[&out[..], b"\n\n"].concat()).remove(0);
        let value: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(value["result"]["tools"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn what_replaces_an_incomplete_event_starts_on_a_line_of_its_own() {
        let input = b"data:  \ndata: {\"id\":5,\"result\":{\"tools\":[]}\nid: 7\r\nx: y";
        let (out, rewriter) = run(&[input], 1 << 20);
        assert_eq!(rewriter.replaced(), 1);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("id: 7\r\nx: y\ndata: {"), "{text}");
        let events = client_events(text.as_bytes());
        assert_eq!(events.len(), 1);
        let error: Value = serde_json::from_str(&events[0].1).unwrap();
        assert_eq!(error["id"], json!(5));
    }

    #[test]
    fn an_event_ended_after_a_cr_line_end_does_not_join_the_next() {
        // fuzz/regressions/list_rewrite/sse-cr-after-over.bin, reduced: the response is over
        // the bound (an error goes out for the list), then an event of whitespace data and a
        // line that is not JSON is dropped with nothing left to answer. Its lines end in CR,
        // so a LF ending it would make a CRLF with the last of them, and `hello` would join it.
        let over = format!("data: {RESPONSE}\r\r");
        let input = format!("{over}data:   \ndata: {{\"id\":5,\"r0: 1\rhema\r\rdata: hello\r\r");
        for chunks in [vec![input.as_bytes()], input.as_bytes().chunks(1).collect()] {
            let (out, rewriter) = run(&chunks, 64);
            assert_eq!(rewriter.replaced(), 2);
            let events = client_events(&out);
            assert_eq!(events.len(), 3, "{}", String::from_utf8_lossy(&out));
            let error: Value = serde_json::from_str(&events[0].1).unwrap();
            assert_eq!(error["id"], json!(5));
            assert_eq!(events[1].1.trim(), "");
            assert_eq!(events[2].1, "hello");
        }
        // Across chunks: the CR went out in an earlier one.
        let (first, second) = input.split_at(input.find("hema").unwrap() + 5);
        let (out, _) = run(&[first.as_bytes(), second.as_bytes()], 64);
        assert_eq!(client_events(&out)[2].1, "hello");
    }

    #[test]
    fn without_pending_lists_the_stream_passes_as_it_is() {
        let input =
            b"data: {\"id\":5,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}\n\ndata: {bad\n\n";
        let mut rewriter = SseRewriter::new(Vec::new(), 8, Rc::default());
        let mut out = rewriter.push(input, &not_secret);
        out.extend(rewriter.finish(&not_secret));
        assert_eq!(out, input.to_vec());
    }

    #[test]
    fn a_bom_look_alike_and_a_lone_cr_are_plain_bytes() {
        let input = b"\xEF\xBBdata: {\"id\":5,\"result\":{\"tools\":[{\"name\":\"secret\"}]}}\r\r";
        let (out, _) = run(&[input], 1 << 20);
        assert_eq!(out, input.to_vec(), "not a data line to a client, so passed");
        let input = format!("\u{feff}data: {RESPONSE}\r\r");
        let (out, rewriter) = run(&[input.as_bytes()], 1 << 20);
        assert_eq!(rewriter.removed(), 1);
        assert!(out.starts_with(BOM) && out.ends_with(b"\r\r"));
    }
}
