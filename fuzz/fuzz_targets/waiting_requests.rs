//! Drives the worker (the VM's state machine) through the in-memory host with random
//! sequences of request arrivals, ticks, key-set fetch answers, departures, on two VMs that
//! share one store. Whatever happens, a request is resumed at most once, answered at most
//! once, never both, never touched after it went on by itself, and never lost: once every
//! fetch has ended and the wait timeout has passed, each request still there was resumed or
//! answered.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mcp_auth_filter::host::MemoryHost;
use mcp_auth_filter::worker::{Flow, Worker};
use mcp_auth_filter_fuzz::*;
use serde_json::json;

#[derive(Arbitrary, Debug)]
enum Op {
    Arrive { vm: bool, token: u8 },
    Tick { vm: bool, advance_ms: u16 },
    Answer { vm: bool, kind: u8 },
    Depart { index: u8 },
}

#[derive(Debug)]
struct Tracked {
    vm: bool,
    id: u32,
    passed: bool,
    gone: bool,
}

fn answer(host: &MemoryHost, worker: &mut Worker, answered: &mut Vec<u32>, kind: u8) {
    let pending: Vec<u32> =
        host.calls.borrow().iter().map(|c| c.token).filter(|t| !answered.contains(t)).collect();
    let Some(token) = pending.first().copied() else { return };
    answered.push(token);
    let body = match kind % 4 {
        0 => keycloak_jwks().to_string(),
        1 => {
            let mut doc = keycloak_jwks();
            doc["keys"].as_array_mut().unwrap().push(
                json!({"kid": ROTATED_KID, "kty": "RSA", "alg": "RS256", "use": "sig", "n": RSA2_N.trim(), "e": "AQAB"}),
            );
            doc.to_string()
        }
        _ => String::new(),
    };
    let status = if kind % 4 == 2 { "500" } else { "200" };
    if kind % 4 == 3 {
        host.respond_to_call(&[], b"");
    } else {
        host.respond_to_call(&[(":status", status)], body.as_bytes());
    }
    worker.on_call_response(host, token, body.len());
}

fuzz_target!(|ops: Vec<Op>| {
    let config = config_json().to_string();
    let first = MemoryHost::new(NOW * 1000);
    let second = first.sibling();
    let hosts = [first, second];
    let mut workers = [
        Worker::configure(&hosts[0], config.as_bytes()).unwrap(),
        Worker::configure(&hosts[1], config.as_bytes()).unwrap(),
    ];
    let mut answered = [Vec::new(), Vec::new()];
    let mut tracked: Vec<Tracked> = Vec::new();
    let tokens = minted_tokens();
    for op in ops.iter().take(64) {
        match *op {
            Op::Arrive { vm, token } => {
                let v = usize::from(vm);
                let id = tracked.len() as u32 + 1;
                let auth = match token % 4 {
                    0 => format!("Bearer {}", tokens[0]),
                    1 => format!("Bearer {}", tokens[tokens.len() - 1]),
                    2 => "Bearer x.y.z".to_string(),
                    _ => String::new(),
                };
                let mut headers = vec![(":path", "/mcp"), (":method", "POST")];
                if !auth.is_empty() {
                    headers.push(("authorization", auth.as_str()));
                }
                hosts[v].arrive(id, &headers);
                let flow = workers[v].on_request_headers(&hosts[v], id, true);
                tracked.push(Tracked { vm, id, passed: flow == Flow::Continue, gone: false });
            }
            Op::Tick { vm, advance_ms } => {
                let v = usize::from(vm);
                for host in &hosts {
                    host.advance(u64::from(advance_ms));
                }
                workers[v].on_tick(&hosts[v]);
            }
            Op::Answer { vm, kind } => {
                let v = usize::from(vm);
                answer(&hosts[v], &mut workers[v], &mut answered[v], kind);
            }
            Op::Depart { index } => {
                if let Some(t) = tracked.get_mut(usize::from(index)) {
                    let v = usize::from(t.vm);
                    t.gone = true;
                    hosts[v].depart(t.id);
                    workers[v].on_request_gone(t.id);
                }
            }
        }
        check(&hosts, &tracked, false);
    }
    // The end: every fetch fails, the wait timeout passes, both VMs tick.
    for v in 0..2 {
        while hosts[v].calls.borrow().iter().any(|c| !answered[v].contains(&c.token)) {
            answer(&hosts[v], &mut workers[v], &mut answered[v], 2);
        }
    }
    for _ in 0..2 {
        for v in 0..2 {
            hosts[v].advance(6_000);
            workers[v].on_tick(&hosts[v]);
        }
    }
    check(&hosts, &tracked, true);
});

fn check(hosts: &[MemoryHost; 2], tracked: &[Tracked], settled: bool) {
    for t in tracked.iter().filter(|t| !t.gone) {
        let r = hosts[usize::from(t.vm)].request(t.id);
        assert!(r.resumed <= 1, "{t:?} resumed {} times", r.resumed);
        assert!(r.sent_count <= 1, "{t:?} answered {} times", r.sent_count);
        assert!(!(r.resumed == 1 && r.sent_count == 1), "{t:?} both resumed and answered");
        if t.passed {
            assert!(r.resumed == 0 && r.sent_count == 0, "{t:?} went on, then was touched");
        }
        if settled {
            assert!(t.passed || r.resumed == 1 || r.sent_count == 1, "{t:?} lost");
        }
    }
}
