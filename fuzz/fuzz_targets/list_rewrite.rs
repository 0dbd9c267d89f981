//! The list-response rewriters (`mcp::sse::SseRewriter`, `mcp::lists::rewrite_json_body`) on
//! arbitrary bytes as a response body.
//!
//! Input: byte 0 picks the held-event bound, bytes 1..3 two split points, the rest is the body.
//!
//! Invariants: the SSE output is the same however the body is split (whole, at the two
//! points, in 1-byte chunks); no event a client would dispatch from it shows a forbidden item
//! in a pending list's response; events whose data cannot be a JSON-RPC message reach the
//! client unchanged and in order; when nothing is removed or replaced (a policy that keeps
//! everything, items that can all be judged, a bound not reached) the stream is byte-identical. The JSON rewriter never shows a forbidden item
//! either, and leaves a body without one untouched (`Unchanged`) when nothing was removed.
//! Differential: wherever the single scan (`rewrite_text_fast`) answers, it answers as the
//! serde_json reading (`rewrite_text_reference`) does, with a memo of its own and with the one
//! every call here shares across inputs (as a worker's is shared across responses), which
//! then finds arrays read before (and with a judge that keeps its verdicts on those arrays).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::rc::Rc;

use mcp_auth_filter::mcp::lists::{
    rewrite_json_body, rewrite_text_fast, rewrite_text_reference, ListMemo, ListRewrite,
};
use mcp_auth_filter::mcp::sse::SseRewriter;
use mcp_auth_filter_fuzz::lists::{
    assert_no_forbidden_item, client_events, keep, may_be_message, pending, RememberingKeep,
};
use mcp_auth_filter_fuzz::verbose;

thread_local! {
    /// The memo every rewriter here shares, across inputs.
    static MEMO: Rc<ListMemo> = Rc::default();
    /// A judge keeping its verdicts on the memo's arrays, across inputs.
    static REMEMBERING: RememberingKeep = RememberingKeep::default();
}

fn memo() -> Rc<ListMemo> {
    MEMO.with(Rc::clone)
}

/// The rewritten stream, and how many items and events were removed or replaced.
fn sse(chunks: &[&[u8]], max: usize, keep_all: bool) -> (Vec<u8>, usize) {
    let all = |_: mcp_auth_filter::mcp::ListKind, _: Option<&str>| true;
    let policy: &mcp_auth_filter::mcp::lists::KeepItem = if keep_all { &all } else { &keep };
    let mut rewriter = SseRewriter::new(pending(), max, memo());
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(rewriter.push(chunk, policy));
    }
    out.extend(rewriter.finish(policy));
    (out, rewriter.removed() + rewriter.replaced())
}

fuzz_target!(|data: &[u8]| {
    let [bound, a, b, body @ ..] = data else { return };
    let max = match bound % 4 {
        0 => 1 << 20,
        1 => 64,
        2 => 256,
        _ => usize::from(*bound),
    };
    if verbose() {
        eprintln!("list_rewrite: max {max}, body {:?}", String::from_utf8_lossy(body));
    }
    let (whole, _) = sse(&[body], max, false);

    // Split invariance.
    let (x, y) = (usize::from(*a) % (body.len() + 1), usize::from(*b) % (body.len() + 1));
    let (x, y) = (x.min(y), x.max(y));
    let three = [&body[..x], &body[x..y], &body[y..]];
    assert_eq!(sse(&three, max, false).0, whole, "split at {x} and {y} changed the output");
    let ones: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(sse(&ones, max, false).0, whole, "1-byte chunks changed the output");

    // What the client sees.
    let before = client_events(body);
    let after = client_events(&whole);
    for event in &after {
        assert_no_forbidden_item(event);
    }
    let plain = |events: &[String]| -> Vec<String> {
        events.iter().filter(|data| !may_be_message(data)).cloned().collect()
    };
    assert_eq!(plain(&after), plain(&before), "an event that is no message was changed");

    // Nothing removed (every item judged and kept) and nothing replaced: not a byte changed.
    let (kept, changes) = sse(&[body], 1 << 20, true);
    if changes == 0 {
        assert_eq!(kept, body, "a stream with nothing to remove was changed");
    }

    // The single scan answers as the reference reading (serde_json) wherever it answers, on
    // the body as a client decodes it and on each event's data.
    let scan_agrees = |text: &str| {
        let fresh = rewrite_text_fast(text, &pending(), &keep, &ListMemo::default());
        if let Some(fast) = &fresh {
            let reference = rewrite_text_reference(text, &pending(), &keep);
            assert_eq!(
                Ok(fast),
                reference.as_ref(),
                "the scan and the reference differ on {text:?}"
            );
        }
        let kept = rewrite_text_fast(text, &pending(), &keep, &memo());
        assert_eq!(kept, fresh, "a remembered array was read otherwise in {text:?}");
        let judged = REMEMBERING.with(|judge| rewrite_text_fast(text, &pending(), judge, &memo()));
        assert_eq!(judged, fresh, "remembered verdicts judged otherwise in {text:?}");
    };
    scan_agrees(&String::from_utf8_lossy(body));
    for data in &before {
        scan_agrees(data);
    }

    // The same bytes as one application/json body.
    match rewrite_json_body(body, &pending(), &keep, &memo()) {
        ListRewrite::Unchanged => assert_no_forbidden_item(&String::from_utf8_lossy(body)),
        ListRewrite::Filtered { body: out, removed } => {
            assert!(removed > 0);
            assert_no_forbidden_item(&String::from_utf8_lossy(&out));
            // JSON by its grammar: a lone surrogate escape the server sent where nothing is
            // judged (another response's items) goes out as it came; clients read it, and so
            // does serde_json when skipping, but not into a `Value`.
            let grammar = serde_json::from_slice::<serde::de::IgnoredAny>(&out);
            assert!(grammar.is_ok(), "invalid JSON out");
        }
        ListRewrite::Unjudgeable { body: out } => {
            assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
        }
    }
});
