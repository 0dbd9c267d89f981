//! `perf/lists-wasm/run.sh`: the cost of filtering a `tools/list` response of 50 tools down to
//! 25, against passing the same response through the rewriter unchanged (the policy keeps
//! everything) and against copying its bytes, as `application/json` and as one SSE event.
use std::hint::black_box;
use std::time::Instant;

use mcp_auth_filter::mcp::lists::{rewrite_json_body, ListRewrite};
use mcp_auth_filter::mcp::sse::SseRewriter;
use mcp_auth_filter::mcp::{ListKind, PendingList, RequestId};
use serde_json::{json, Map, Value};

/// A response shaped like a real server's: 50 tools with a title, a description and a schema.
fn tools_list() -> Vec<u8> {
    let tools: Vec<Value> = (0..50)
        .map(|i| {
            json!({
                "name": format!("tool_{i:02}"),
                "title": format!("Tool number {i}"),
                "description": "Does one thing to the given text and returns the result; used by agents in the examples.",
                "inputSchema": {
                    "type": "object",
                    "properties": {
                        "message": {"type": "string", "description": "Text to work on"},
                        "repeat_count": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3}
                    },
                    "required": ["message"]
                },
                "annotations": {"readOnlyHint": true}
            })
        })
        .collect();
    json!({"jsonrpc": "2.0", "id": 7, "result": {"tools": tools, "nextCursor": "page-2"}})
        .to_string()
        .into_bytes()
}

/// Keeps the even-numbered tools: 25 of 50.
fn half(_: ListKind, item: &Map<String, Value>) -> bool {
    let name = item.get("name").and_then(Value::as_str).unwrap_or("");
    name.bytes().last().is_some_and(|digit| digit % 2 == 0)
}

fn all(_: ListKind, _: &Map<String, Value>) -> bool {
    true
}

fn time(label: &str, iters: u32, base: Option<f64>, mut f: impl FnMut() -> usize) -> f64 {
    for _ in 0..iters / 10 {
        black_box(f());
    }
    let start = Instant::now();
    let mut sink = 0;
    for _ in 0..iters {
        sink += black_box(f());
    }
    let per = start.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
    let ratio = base.map(|b| format!("  ({:.2}x the first row)", per / b)).unwrap_or_default();
    println!("{label:<46} {per:>9.2} µs/response{ratio}  [{sink}]");
    per
}

fn main() {
    let body = tools_list();
    let pending = vec![PendingList { id: RequestId(json!(7)), kind: ListKind::Tools }];
    match rewrite_json_body(&body, &pending, &half) {
        ListRewrite::Filtered { removed: 25, body: out } => {
            println!("response {} bytes, filtered {} bytes", body.len(), out.len())
        }
        other => panic!("unexpected {other:?}"),
    }
    let sse: Vec<u8> = [b"event: message\ndata: ".as_slice(), &body, b"\n\n"].concat();
    let iters = 2000;
    let copy = time("copy the bytes (the floor)", iters, None, || black_box(body.to_vec()).len());
    let parse = time("serde_json::from_slice::<Value> (for scale)", iters, Some(copy), || {
        serde_json::from_slice::<Value>(&body).map(|_| 1).unwrap_or(0)
    });
    let _ = parse;
    time("serde_json::from_slice::<IgnoredAny> (a scan)", iters, Some(copy), || {
        serde_json::from_slice::<serde::de::IgnoredAny>(&body).map(|_| 1).unwrap_or(0)
    });
    let pass = time("json: keep all (unchanged)", iters, Some(copy), || {
        match rewrite_json_body(&body, &pending, &all) {
            ListRewrite::Unchanged => body.len(),
            _ => 0,
        }
    });
    let filter = time("json: 50 -> 25", iters, Some(copy), || {
        match rewrite_json_body(&body, &pending, &half) {
            ListRewrite::Filtered { body, .. } => body.len(),
            _ => 0,
        }
    });
    println!("json: 50 -> 25 costs {:.2}x keep-all", filter / pass);
    let sse_pass = time("sse: keep all, one 4 KiB chunk at a time", iters, Some(copy), || {
        let mut rw = SseRewriter::new(pending.clone(), 1 << 20);
        let mut n = 0;
        for chunk in sse.chunks(4096) {
            n += rw.push(chunk, &all).len();
        }
        n + rw.finish(&all).len()
    });
    let sse_filter = time("sse: 50 -> 25, one 4 KiB chunk at a time", iters, Some(copy), || {
        let mut rw = SseRewriter::new(pending.clone(), 1 << 20);
        let mut n = 0;
        for chunk in sse.chunks(4096) {
            n += rw.push(chunk, &half).len();
        }
        n + rw.finish(&half).len()
    });
    println!("sse: 50 -> 25 costs {:.2}x keep-all", sse_filter / sse_pass);
    let notifications: Vec<u8> = (0..100)
        .flat_map(|i| format!("data: progress {i} of 100 ........................................\n\n").into_bytes())
        .collect();
    time("sse: 100 non-JSON events, passed through", iters, Some(copy), || {
        let mut rw = SseRewriter::new(pending.clone(), 1 << 20);
        rw.push(&notifications, &all).len() + rw.finish(&all).len()
    });
}
