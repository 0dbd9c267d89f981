//! `perf/lists-wasm/run.sh`: the cost of filtering a `tools/list` response of 50 tools down to
//! 25, against passing the same response through the rewriter unchanged (the policy keeps
//! everything) and against copying its bytes, as `application/json` and as one SSE event.
use std::hint::black_box;
use std::time::Instant;

use std::rc::Rc;

use mcp_auth_filter::mcp::lists::{rewrite_json_body, KeepItem, ListMemo, ListRewrite};
use mcp_auth_filter::mcp::sse::SseRewriter;
use mcp_auth_filter::mcp::{ListKind, McpPolicy, PendingList, RequestId};
use serde_json::{json, Value};

/// A response shaped like a real server's: 50 tools with a title, a description and a schema.
fn tools_list() -> Vec<u8> {
    let tools: Vec<Value> = (0..50)
        .map(|i| {
            json!({
                "name": format!("{}_{:02}", if i % 2 == 0 { "public" } else { "private" }, i / 2),
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

/// Keeps the `public_*` tools: 25 of 50.
fn half(_: ListKind, name: Option<&str>) -> bool {
    name.is_some_and(|name| name.starts_with("public_"))
}

/// The policy of the bench's MCP cells (bench/configs.py `MCP_POLICY`): ten scope patterns and
/// two rules, the second keeping the `public_*` tools.
fn bench_policy() -> McpPolicy {
    let config = json!({
        "endpoint": "/mcp",
        "rules": [
            "mcp.tool.name == \"echo\" && \"admin\" in jwt.roles",
            "mcp.tool.name.startsWith(\"public_\")"
        ],
        "scopes": {
            "tools": {
                "echo": ["mcp:tools"], "public_*": ["mcp:tools"], "private_*": ["mcp:tools"],
                "admin_*": ["mcp:admin"], "debug_*": ["mcp:admin"], "*": ["mcp:tools"]
            },
            "prompts": {"*": ["mcp:prompts"], "summary_*": ["mcp:tools"]},
            "resources": {"file:///private/*": ["mcp:private"], "file:///*": ["mcp:tools"]}
        }
    });
    match mcp_auth_filter::mcp::compile_value(config, "/mcp") {
        Ok(policy) => policy,
        Err(error) => panic!("{error}"),
    }
}

fn all(_: ListKind, _: Option<&str>) -> bool {
    true
}

/// Times the rows interleaved (round after round, each row a batch per round) so that load
/// changes hit every row alike; prints each row's median per response and its ratio to the
/// first row.
/// A labelled piece of work; returns a number so the optimiser cannot drop it.
type Row<'a> = (&'a str, Box<dyn FnMut() -> usize + 'a>);

fn run(rows: &mut [Row<'_>], rounds: usize, batch: u32) {
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
    let mut sink = 0;
    for round in 0..=rounds {
        for (index, (_, f)) in rows.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..batch {
                sink += black_box(f());
            }
            if round > 0 {
                // Round 0 warms up.
                samples[index].push(start.elapsed().as_secs_f64() * 1e6 / f64::from(batch));
            }
        }
    }
    for s in samples.iter_mut() {
        s.sort_by(f64::total_cmp);
    }
    // The median, and the fastest round: on a loaded machine the minimum is the steadier.
    let medians: Vec<f64> = samples.iter().map(|s| s[s.len() / 2]).collect();
    let minima: Vec<f64> = samples.iter().map(|s| s[0]).collect();
    println!(
        "{:<52} {:>9} {:>6}  {:>9} {:>6}",
        "µs per response", "median", "ratio", "min", "ratio"
    );
    for (((label, _), median), min) in rows.iter().zip(&medians).zip(&minima) {
        println!(
            "{label:<52} {median:>9.2} {:>5.2}x  {min:>9.2} {:>5.2}x",
            median / medians[0],
            min / minima[0]
        );
    }
    black_box(sink);
}

fn main() {
    let body = tools_list();
    let pending = vec![PendingList { id: RequestId(json!(7)), kind: ListKind::Tools }];
    match rewrite_json_body(&body, &pending, &half, &ListMemo::default()) {
        ListRewrite::Filtered { removed: 25, body: out } => {
            println!("response {} bytes, filtered {} bytes", body.len(), out.len())
        }
        other => panic!("unexpected {other:?}"),
    }
    if std::env::args().any(|arg| arg == "--profile") {
        // Only the filtered JSON row, for a profiler.
        let n: usize = (0..20_000)
            .map(|_| match rewrite_json_body(&body, &pending, &half, &ListMemo::default()) {
                ListRewrite::Filtered { body, .. } => body.len(),
                _ => 0,
            })
            .sum();
        println!("{n}");
        return;
    }
    let sse: Vec<u8> = [b"event: message\ndata: ".as_slice(), &body, b"\n\n"].concat();
    let notifications: Vec<u8> = (0..100)
        .flat_map(|i| {
            format!("data: progress {i} of 100 ........................................\n\n")
                .into_bytes()
        })
        .collect();
    // The bench's caller (a cached token: its rule answers are remembered across responses).
    let policy = bench_policy();
    let claims = json!({"sub": "u", "scope": "mcp:tools", "roles": ["admin"]});
    let caller = policy.caller(claims.as_object().unwrap_or(&serde_json::Map::new()));
    let by_policy = policy.list_judge(&caller);
    match rewrite_json_body(&body, &pending, &by_policy, &ListMemo::default()) {
        ListRewrite::Filtered { removed: 25, .. } => {}
        other => panic!("the bench's policy: {other:?}"),
    }
    let profiled = std::env::args().find(|arg| arg.starts_with("--profile-"));
    if profiled.as_deref() == Some("--profile-sse-remembered") {
        let memo = Rc::new(ListMemo::default());
        let n: usize = (0..20_000)
            .map(|_| {
                let mut rw = SseRewriter::new(pending.clone(), 1 << 20, Rc::clone(&memo));
                rw.push(&sse, &by_policy).len() + rw.finish(&by_policy).len()
            })
            .sum();
        println!("{n}");
        return;
    }
    if let Some(mode @ ("--profile-policy" | "--profile-remembered")) = profiled.as_deref() {
        // Remembered: one memo across responses; else a new one per response.
        let kept = ListMemo::default();
        let remembered = mode == "--profile-remembered";
        let n: usize = (0..20_000)
            .map(|_| {
                let fresh = ListMemo::default();
                let memo = if remembered { &kept } else { &fresh };
                rewrite_json_body(&body, &pending, &by_policy, memo)
            })
            .map(|rewrite| match rewrite {
                ListRewrite::Filtered { body, .. } => body.len(),
                _ => 0,
            })
            .sum();
        println!("{n}");
        return;
    }
    let sse_run = |keep: &KeepItem, memo: Rc<ListMemo>| {
        let mut rw = SseRewriter::new(pending.clone(), 1 << 20, memo);
        let mut n = 0;
        for chunk in sse.chunks(4096) {
            n += rw.push(chunk, keep).len();
        }
        n + rw.finish(keep).len()
    };
    // A worker's memo: after the first response, the array is found, not read.
    let memo = Rc::new(ListMemo::default());
    let mut rows: Vec<Row> = vec![
        (
            "json: keep all (nothing removed)",
            Box::new(|| match rewrite_json_body(&body, &pending, &all, &ListMemo::default()) {
                ListRewrite::Unchanged => body.len(),
                _ => 0,
            }),
        ),
        (
            "json: 50 -> 25",
            Box::new(|| match rewrite_json_body(&body, &pending, &half, &ListMemo::default()) {
                ListRewrite::Filtered { body, .. } => body.len(),
                _ => 0,
            }),
        ),
        (
            "json: 50 -> 25 by the bench's policy",
            Box::new(|| {
                match rewrite_json_body(&body, &pending, &by_policy, &ListMemo::default()) {
                    ListRewrite::Filtered { body, .. } => body.len(),
                    _ => 0,
                }
            }),
        ),
        (
            "json: 50 -> 25 by the bench's policy, remembered",
            Box::new(|| match rewrite_json_body(&body, &pending, &by_policy, &memo) {
                ListRewrite::Filtered { body, .. } => body.len(),
                _ => 0,
            }),
        ),
        ("sse: keep all, 4 KiB chunks", Box::new(|| sse_run(&all, Rc::default()))),
        ("sse: 50 -> 25, 4 KiB chunks", Box::new(|| sse_run(&half, Rc::default()))),
        (
            "sse: 50 -> 25 by the bench's policy, 4 KiB chunks",
            Box::new(|| sse_run(&by_policy, Rc::default())),
        ),
        ("sse: the same, remembered", Box::new(|| sse_run(&by_policy, Rc::clone(&memo)))),
        (
            "sse: keep all, one chunk",
            Box::new(|| {
                let mut rw = SseRewriter::new(pending.clone(), 1 << 20, Rc::default());
                rw.push(&sse, &all).len() + rw.finish(&all).len()
            }),
        ),
        (
            "serde_json::from_slice::<Value> (for scale)",
            Box::new(|| serde_json::from_slice::<Value>(&body).map(|_| 1).unwrap_or(0)),
        ),
        (
            "serde_json IgnoredAny: one scan (for scale)",
            Box::new(|| {
                serde_json::from_slice::<serde::de::IgnoredAny>(&body).map(|_| 1).unwrap_or(0)
            }),
        ),
        ("copy the bytes (for scale)", Box::new(|| black_box(body.to_vec()).len())),
        (
            "sse: 100 non-JSON events passed through",
            Box::new(|| {
                let mut rw = SseRewriter::new(pending.clone(), 1 << 20, Rc::default());
                rw.push(&notifications, &all).len() + rw.finish(&all).len()
            }),
        ),
    ];
    run(&mut rows, 31, 40);
}
