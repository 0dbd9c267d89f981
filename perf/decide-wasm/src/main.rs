//! `perf/decide-wasm/run.sh`: per-request cost of `authorize::decide` in wasm, by path.
use std::time::Instant;

use mcp_auth_filter::authorize::{decide, Decision, RequestFacts, VerdictCache};
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
        let req = RequestFacts { method: "", path: "/mcp", authorization: &values };
        let first = decide(&req, &cfg, &responses, Some(&keys), now, false, &mut cache);
        let label = match first {
            Decision::Allow(_) => "allow",
            Decision::Respond(ref r, _) => {
                if r.status == 401 {
                    "401"
                } else {
                    "other"
                }
            }
            Decision::Wait(_) => "wait",
        };
        let t = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(decide(
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
        let req = RequestFacts { method: "", path: "/mcp", authorization: &req_auth };
        std::hint::black_box(decide(&req, &cfg, &responses, Some(&keys), now, false, &mut fresh));
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
}
