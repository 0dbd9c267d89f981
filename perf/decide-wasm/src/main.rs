//! `perf/decide-wasm/run.sh`: per-request cost of `authorize::decide` in wasm, by path.
use std::time::Instant;

use mcp_auth_filter::authorize::{decide_at, Decision, RequestFacts, VerdictCache};
use mcp_auth_filter::config::FilterConfig;
use mcp_auth_filter::keys::KeySet;
use mcp_auth_filter::response::Responses;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let token = &args[1];
    let now: u64 = args[2].parse().unwrap();
    let cfg = FilterConfig::parse(
        serde_json::json!({
            "issuer": "http://localhost:8080/realms/my-realm",
            "audiences": ["echo-mcp-server"],
            "jwks": {"cluster": "c", "uri": "http://localhost:8080/certs"},
            "resource_metadata": {"resource": "http://localhost:9000/mcp", "authorization_servers": ["http://localhost:8080/realms/my-realm"]},
            "claims_to_headers": {"sub": "x-mcp-subject"}
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    // The unit tests' Keycloak-shaped key set (`test-fixtures`): the key mint.py signs with.
    let jwks = mcp_auth_filter::testkeys::keycloak_jwks().to_string();
    let keys = KeySet::parse(jwks.as_bytes()).unwrap();
    let responses = Responses::new(&cfg);
    let mut cache = VerdictCache::new(4096, 8 << 20);
    let auth = format!("Bearer {token}");
    let mut bad = auth.clone();
    bad.pop();
    bad.push(if auth.ends_with('A') { 'B' } else { 'A' });
    for (name, header, iters) in [
        ("cached valid token", auth.as_str(), 200_000),
        ("cached bad signature", bad.as_str(), 200_000),
        ("no token", "", 200_000),
    ] {
        let values: Vec<&str> = if header.is_empty() { vec![] } else { vec![header] };
        let req = RequestFacts {
            method: "",
            path: "/mcp",
            authorization: &values,
            now_s: 0,
            may_refetch: false,
        };
        let first = decide_at(&req, &cfg, &responses, Some(&keys), now, false, &mut cache);
        let label = match first {
            Decision::Allow(_) => "allow",
            Decision::Respond(ref r, _) => {
                if r.status == 401 {
                    "401"
                } else {
                    "other"
                }
            }
            Decision::Wait(..) => "wait",
        };
        let t = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(decide_at(
                &req,
                &cfg,
                &responses,
                Some(&keys),
                now,
                false,
                &mut cache,
            ));
        }
        println!(
            "{name:24} {label:6} {:8.3} us/decision",
            t.elapsed().as_secs_f64() * 1e6 / iters as f64
        );
    }
    let iters = 200_000;
    let t = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(mcp_auth_filter::extract::bearer_token(std::hint::black_box(&[
            auth.as_str()
        ])));
    }
    println!(
        "{:31} {:8.3} us",
        "  of which bearer_token",
        t.elapsed().as_secs_f64() * 1e6 / iters as f64
    );
    let t = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(cache.get(std::hint::black_box(token.as_str()), now, 60).is_some());
    }
    println!(
        "{:31} {:8.3} us",
        "  of which cache.get",
        t.elapsed().as_secs_f64() * 1e6 / iters as f64
    );
    let copy = token.clone();
    let t = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(
            std::hint::black_box(copy.as_str()) == std::hint::black_box(token.as_str()),
        );
    }
    println!(
        "{:31} {:8.3} us ({} bytes)",
        "  of which token compare",
        t.elapsed().as_secs_f64() * 1e6 / iters as f64,
        token.len()
    );
    let req_auth = [auth.as_str()];
    let t = Instant::now();
    let n = 300;
    for _ in 0..n {
        let mut fresh = VerdictCache::new(0, 0);
        let req = RequestFacts {
            method: "",
            path: "/mcp",
            authorization: &req_auth,
            now_s: 0,
            may_refetch: false,
        };
        std::hint::black_box(decide_at(
            &req,
            &cfg,
            &responses,
            Some(&keys),
            now,
            false,
            &mut fresh,
        ));
    }
    println!(
        "{:31} {:8.1} us/decision",
        "uncached valid token",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            mcp_auth_filter::jws::decode(std::hint::black_box(token.as_str())).is_ok(),
        );
    }
    println!(
        "{:31} {:8.1} us",
        "  of which jws::decode",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let jws = mcp_auth_filter::jws::decode(token.as_str()).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            mcp_auth_filter::jws::decode_payload(std::hint::black_box(jws.payload_b64)).is_ok(),
        );
    }
    println!(
        "{:31} {:8.1} us",
        "  of which decode_payload",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let mcp_auth_filter::keys::KeyMatch::Found(jwk) = keys.find(jws.kid.as_deref(), jws.alg) else {
        panic!()
    };
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            jwk.key.verify(jws.alg, jws.signing_input.as_bytes(), &jws.signature).is_ok(),
        );
    }
    println!("{:31} {:8.1} us", "  of which signature", t.elapsed().as_secs_f64() * 1e6 / n as f64);

    mcp_section(&cfg, &responses, &keys, now, &auth, token);
}

/// The MCP policy's share of a `tools/call` (issue 10: under 10% of a cached-token
/// request): ten scope patterns and two rules, against the cached-token decision, in one run.
fn mcp_section(
    cfg: &FilterConfig,
    responses: &Responses,
    keys: &KeySet,
    now: u64,
    auth: &str,
    token: &str,
) {
    use mcp_auth_filter::mcp::{self, McpHeaders};
    let policy = mcp::compile_value(
        serde_json::json!({
            "rules": [
                "mcp.tool.name == \"echo\" && \"admin\" in jwt.roles",
                "mcp.tool.name.startsWith(\"read_\") && jwt.sub != \"\""
            ],
            "scopes": {"tools": {
                "echo": ["mcp:tools"], "admin_*": ["mcp:admin"], "read_*": ["mcp:read"],
                "write_*": ["mcp:write"], "*_secret": ["mcp:secret"], "files_*": ["mcp:files"],
                "db_*": ["mcp:db"], "db_admin_*": ["mcp:db", "mcp:admin"], "net_*": ["mcp:net"],
                "*": ["mcp:tools"]
            }}
        }),
        "/mcp",
    )
    .unwrap();
    let claims = serde_json::json!({
        "sub": "eitan", "scope": "openid profile mcp:tools", "roles": ["admin", "user"],
        "iss": "http://localhost:8080/realms/my-realm", "aud": "echo-mcp-server", "exp": now + 300
    });
    let claims = claims.as_object().unwrap();
    let caller = policy.caller(claims);
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hello world"},
                   "_meta": {"progressToken": 7}}})
    .to_string();
    let plain = McpHeaders::default();
    let routed = McpHeaders {
        content_encoding: None,
        mcp_method: Some("tools/call"),
        mcp_name: Some("echo"),
    };
    assert!(matches!(
        policy.judge(&plain, Some(body.as_bytes()), &caller),
        mcp::McpVerdict::Forward { .. }
    ));
    let values = [auth];
    let req = RequestFacts {
        method: "",
        path: "/mcp",
        authorization: &values,
        now_s: 0,
        may_refetch: false,
    };
    let mut cache = VerdictCache::new(4096, 8 << 20);
    let iters = 100_000;
    // Interleaved rounds, so that load on the machine hits every row alike.
    let mut totals = [0f64; 6];
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(decide_at(
                &req,
                cfg,
                responses,
                Some(keys),
                now,
                false,
                &mut cache,
            ));
        }
        totals[0] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(policy.judge(
                &plain,
                Some(std::hint::black_box(body.as_bytes())),
                &caller,
            ));
        }
        totals[1] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(policy.judge(
                &routed,
                Some(std::hint::black_box(body.as_bytes())),
                &caller,
            ));
        }
        totals[2] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(mcp::jsonrpc::read(std::hint::black_box(body.as_bytes())).is_ok());
        }
        totals[3] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..iters / 10 {
            std::hint::black_box(policy.caller(std::hint::black_box(claims)));
        }
        totals[4] += t.elapsed().as_secs_f64() * 10.0;
        let t = Instant::now();
        for _ in 0..iters / 10 {
            let fresh = policy.caller(claims);
            std::hint::black_box(policy.judge(&plain, Some(body.as_bytes()), &fresh));
        }
        totals[5] += t.elapsed().as_secs_f64() * 10.0;
    }
    let per = |i: usize| totals[i] * 1e6 / (5 * iters) as f64;
    println!("mcp: tools/call, 10 scope patterns, 2 rules (5 interleaved rounds)");
    println!("{:31} {:8.3} us", "  cached valid token (decide)", per(0));
    for (i, name) in [
        (1, "  judge (body)"),
        (2, "  judge (body + routing hdrs)"),
        (3, "    of which jsonrpc::read"),
        (4, "  caller (once per token)"),
        (5, "  caller + first judge (CEL)"),
    ] {
        println!("{name:31} {:8.3} us  ({:.3}x the cached decision)", per(i), per(i) / per(0));
    }
    // The request's headers as the host hands them over in one call (a bench request's
    // shape: the token, Envoy's own headers, an MCP POST's routing headers), parsed and looked
    // up as the worker does on every request.
    let pairs = [
        (":authority", "127.0.0.1:10000"),
        (":path", "/mcp"),
        (":method", "POST"),
        (":scheme", "http"),
        ("authorization", auth),
        ("content-type", "application/json"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "5f0c7d0e-6a53-4b1b-9a3e-0d6c2b0f7f11"),
    ];
    let serialised = mcp_auth_filter::host::RequestHeaders::from_pairs(&pairs);
    let bytes = serialised.pairs().fold(0, |n, (k, v)| n + k.len() + v.len());
    let iters = 200_000;
    let t = Instant::now();
    for _ in 0..iters {
        // The copy stands for the host writing the map into the VM's memory.
        let copy = std::hint::black_box(serialised.bytes()).to_vec();
        let Some(headers) = mcp_auth_filter::host::RequestHeaders::parse(copy) else {
            panic!("a well-formed map was refused");
        };
        for name in
            [":path", ":method", "authorization", "mcp-session-id", "mcp-method", "mcp-name"]
        {
            std::hint::black_box(headers.lookup(name).text());
        }
    }
    println!(
        "{:31} {:8.3} us ({} headers, {bytes} bytes)",
        "header map: parse + 6 lookups",
        t.elapsed().as_secs_f64() * 1e6 / iters as f64,
        pairs.len()
    );
    let _ = token;
}
