#!/usr/bin/env python3
"""Load and soak test: a real Envoy (`--concurrency 2`) with the built filter, hammered for a
bounded time by many keep-alive connections, every response checked against the decision it must
have, Envoy's memory sampled.

    .venv/bin/python tests/soak.py --seconds 60          # what `make soak` runs
    .venv/bin/python tests/soak.py --seconds 10 --connections 32 --client-procs 1

Topology (all on free loopback ports; the reference ports are never used):
  * Envoy from the repository's envoy.yaml (tests/envoy_config.py), `--concurrency 2`,
    `claims_to_headers` {sub: x-mcp-subject, email: x-mcp-email};
  * the JWKS endpoint (tests/helpers/servers.py) publishing RS256 (Keycloak-shaped, behind an
    RSA-OAEP `enc` key), ES256 and EdDSA keys;
  * an asyncio upstream in its own process that echoes, per request, whether `Authorization`
    arrived and the values of `x-mcp-subject` / `x-mcp-email` / `x-rid`;
  * `--client-procs` asyncio client processes sharing `--connections` raw HTTP/1.1 keep-alive
    connections, one request in flight per connection.

Request classes (weights in CLASSES): valid (8 distinct tokens over RS256/PS256/ES256/EdDSA, half
with an `email` claim, half of the requests with forged `x-mcp-subject`/`x-mcp-email` headers the
filter must replace or remove), expired, forged (signed by a key the JWKS does not list, with the
real kid), unknown_kid (a fresh random kid per request: one rate-limited refetch per
`min_refetch_interval_s`), missing (no Authorization), metadata (GET on the RFC 9728 document).

The checker compares every response with its class's decision: status, the exact
`WWW-Authenticate`, and for 200s the upstream's echo (no Authorization, the token's subject and
email, the request's own id); denied requests must not carry the upstream's marker.

Violations (exit status 1): any wrong decision, any 5xx, any client error (timeout, bad framing),
Envoy's VmRSS not flat (last sample > first sample after warm-up * 1.2 + 5 MB), a wasm VM failure
(tests/helpers/health.py), the filter's counters disagreeing with the client's class counts, or more
JWKS fetches than one per refetch interval (+2).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

CLASSES = {"valid": 40, "expired": 8, "forged": 8, "unknown_kid": 6, "missing": 20, "metadata": 18}
MCP_BODY = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
CLAIM_HEADERS = {"sub": "x-mcp-subject", "email": "x-mcp-email"}
MIN_REFETCH_S = 30
MB = 1024 * 1024


# =============================================================================== upstream role

async def _upstream_conn(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head[:-4].split(b"\r\n")
            headers: dict[bytes, list[bytes]] = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers.setdefault(name.strip().lower(), []).append(value.strip())
            length = int(headers.get(b"content-length", [b"0"])[0])
            if length:
                await reader.readexactly(length)

            def one(name: bytes) -> bytes:
                values = headers.get(name)
                return b"|".join(values) if values else b"-"

            body = b"{}"
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-upstream: echo\r\n"
                         b"x-echo-auth: " + (b"present" if b"authorization" in headers else b"absent") + b"\r\n"
                         b"x-echo-subject: " + one(b"x-mcp-subject") + b"\r\n"
                         b"x-echo-email: " + one(b"x-mcp-email") + b"\r\n"
                         b"x-echo-rid: " + one(b"x-rid") + b"\r\n"
                         b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()


async def _upstream_main(port: int):
    server = await asyncio.start_server(_upstream_conn, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# =============================================================================== client role

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ClientStats:
    def __init__(self):
        self.count = {c: 0 for c in CLASSES}
        self.wrong = {c: 0 for c in CLASSES}
        self.status_5xx = 0
        self.errors = 0
        self.reconnects = 0
        self.samples: list[str] = []

    def bad(self, cls: str, why: str):
        self.wrong[cls] += 1
        if len(self.samples) < 10:
            self.samples.append(f"{cls}: {why}")


async def _read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = headers[name] + b", " + value if name in headers else value
    if b"transfer-encoding" in headers:
        raise ValueError(f"unexpected transfer-encoding {headers[b'transfer-encoding']!r}")
    length = int(headers.get(b"content-length", b"0"))
    body = await reader.readexactly(length) if length else b""
    return status, headers, body


def _check(cls: str, item: dict, rid: bytes, status: int, headers: dict, body: bytes, plan: dict):
    """None if the response is the right decision, else why not."""
    if cls == "valid":
        if status != 200:
            return f"status {status} {headers.get(b'www-authenticate')!r}"
        if headers.get(b"x-upstream") != b"echo":
            return "200 not from the upstream"
        if headers.get(b"x-echo-rid") != rid:
            return f"echo of another request: {headers.get(b'x-echo-rid')!r} != {rid!r}"
        if headers.get(b"x-echo-auth") != b"absent":
            return "Authorization reached the upstream"
        if headers.get(b"x-echo-subject") != item["sub"].encode():
            return f"x-mcp-subject {headers.get(b'x-echo-subject')!r} != {item['sub']!r}"
        email = item["email"].encode() if item["email"] else b"-"
        if headers.get(b"x-echo-email") != email:
            return f"x-mcp-email {headers.get(b'x-echo-email')!r} != {email!r}"
        return None
    if cls == "metadata":
        if status != 200 or b"x-upstream" in headers:
            return f"metadata: status {status}, upstream marker {headers.get(b'x-upstream')!r}"
        try:
            doc = json.loads(body)
        except ValueError:
            return f"metadata body not JSON: {body[:80]!r}"
        if doc.get("resource") != plan["resource"]:
            return f"metadata resource {doc.get('resource')!r}"
        return None
    expected = plan["challenges"][cls].encode()
    if status != 401:
        return f"status {status}, expected 401"
    if b"x-upstream" in headers:
        return "a denied request reached the upstream"
    if headers.get(b"www-authenticate") != expected:
        return f"WWW-Authenticate {headers.get(b'www-authenticate')!r} != {expected!r}"
    return None


def _request_bytes(cls: str, item: dict, rid: bytes, plan: dict, rng: random.Random) -> bytes:
    host = plan["host"].encode()
    if cls == "metadata":
        return (b"GET " + plan["metadata_path"].encode() + b" HTTP/1.1\r\nhost: " + host
                + b"\r\nx-rid: " + rid + b"\r\n\r\n")
    lines = [b"POST /mcp HTTP/1.1", b"host: " + host, b"content-type: application/json",
             b"accept: application/json, text/event-stream", b"x-rid: " + rid]
    if cls == "unknown_kid":
        header = _b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": uuid.uuid4().hex}).encode())
        lines.append(f"authorization: Bearer {header}.{plan['unknown_kid_tail']}".encode())
    elif cls != "missing":
        lines.append(b"authorization: Bearer " + item["token"].encode())
    if cls == "valid" and rng.random() < 0.5:
        lines += [b"x-mcp-subject: spoofed-admin", b"x-mcp-email: root@evil.example"]
    lines.append(b"content-length: " + str(len(MCP_BODY)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + MCP_BODY


async def _connection(idx: int, plan: dict, stats: ClientStats, deadline: float, rng: random.Random):
    classes = list(CLASSES)
    weights = [CLASSES[c] for c in classes]
    reader = writer = None
    n = 0
    while time.monotonic() < deadline:
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", plan["port"], limit=1 << 20)
            except OSError:
                stats.errors += 1
                await asyncio.sleep(0.1)
                continue
        cls = rng.choices(classes, weights)[0]
        item = rng.choice(plan["items"][cls]) if plan["items"].get(cls) else {}
        n += 1
        rid = f"{plan['proc']}-{idx}-{n}".encode()
        try:
            writer.write(_request_bytes(cls, item, rid, plan, rng))
            status, headers, body = await asyncio.wait_for(_read_response(reader), timeout=10)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError, IndexError) as e:
            stats.errors += 1
            if len(stats.samples) < 10:
                stats.samples.append(f"{cls}: client error {type(e).__name__}: {e}")
            writer.close()
            reader = writer = None
            continue
        stats.count[cls] += 1
        if status >= 500:
            stats.status_5xx += 1
        why = _check(cls, item, rid, status, headers, body, plan)
        if why:
            stats.bad(cls, why)
        if headers.get(b"connection", b"").lower() == b"close":
            stats.reconnects += 1
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _client_main(plan: dict) -> ClientStats:
    stats = ClientStats()
    deadline = time.monotonic() + plan["seconds"]
    rng = random.Random(plan["seed"])
    await asyncio.gather(*(_connection(i, plan, stats, deadline, random.Random(rng.random()))
                           for i in range(plan["connections"])))
    return stats


# =============================================================================== orchestration

@dataclass
class Result:
    seconds: float
    requests: int
    per_class: dict
    wrong: dict
    status_5xx: int
    errors: int
    reconnects: int
    rss_series: list  # [(t seconds, VmRSS bytes)]
    warmup_s: float
    jwks_fetches: int
    filter_counters: dict
    samples: list = field(default_factory=list)
    violations: list = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def rss_first_last(self):
        after = [r for t, r in self.rss_series if t >= self.warmup_s]
        return (after[0], after[-1]) if after else (None, None)

    def summary(self) -> str:
        first, last = self.rss_first_last()
        classes = " ".join(f"{c}={n}" for c, n in self.per_class.items())
        return (f"SOAK requests={self.requests} {classes} rps={self.rps:.0f} "
                f"wrong={sum(self.wrong.values())} 5xx={self.status_5xx} errors={self.errors} "
                f"reconnects={self.reconnects} jwks_fetches={self.jwks_fetches} "
                f"rss_first_mb={(first or 0) / MB:.1f} rss_last_mb={(last or 0) / MB:.1f} "
                f"violations={len(self.violations)}")

    def rss_line(self) -> str:
        return "RSS_MB " + " ".join(f"{t:.0f}s={r / MB:.1f}" for t, r in self.rss_series)


def vm_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _tokens(issuer: str, lifetime: int):
    """Keys for the JWKS, and the request items of each class."""
    from helpers.keys import ec_key, ed25519_key, keycloak_enc_key, rsa_key
    from helpers.tokens import DELETE, keycloak_claims, mint

    sig, ec256, ed, enc = rsa_key("RS256"), ec_key("P-256"), ed25519_key(), keycloak_enc_key()
    rsa_any = rsa_key(alg=None, x5c=False)  # RS*/PS*
    foreign = rsa_key("RS256")
    published = [enc, sig, rsa_any, ec256, ed]
    now = int(time.time())
    valid = []
    signers = [(sig, "RS256"), (rsa_any, "PS256"), (ec256, "ES256"), (ed, "EdDSA")]
    for i in range(8):
        key, alg = signers[i % len(signers)]
        sub = f"soak-user-{i}-{uuid.uuid4().hex[:8]}"
        email = f"user{i}@example.com" if i % 2 == 0 else None
        claims = keycloak_claims(issuer, now=now, lifetime=lifetime, sub=sub, email=email if email else DELETE)
        valid.append({"token": mint(key, claims, alg=alg), "sub": sub, "email": email})
    expired = [{"token": mint(key, keycloak_claims(issuer, now=now - 7200 - i, lifetime=300), alg=alg)}
               for i, (key, alg) in enumerate(signers * 2)]
    forged = [{"token": mint(sig, keycloak_claims(issuer, now=now, lifetime=lifetime), signing_key=foreign)}
              for _ in range(8)]
    probe = mint(foreign, keycloak_claims(issuer, now=now, lifetime=lifetime), kid="x")
    unknown_tail = probe.split(".", 1)[1]  # payload.signature; the header (kid) is made per request
    items = {"valid": valid, "expired": expired, "forged": forged, "unknown_kid": [{}], "missing": [{}],
             "metadata": [{}]}
    return published, items, unknown_tail


def run(seconds: float = 60, connections: int = 64, client_procs: int = 2, concurrency: int = 2,
        sample_interval: float = 2.0, warmup: float | None = None, workdir: Path | str | None = None,
        seed: int = 1, log=print) -> Result:
    import envoy_config
    from helpers import health
    from helpers.envoy_proc import Envoy, Stats
    from helpers.ports import free_ports
    from helpers.servers import JwksServer
    from helpers.stack import metadata_url_for
    from helpers.tokens import issuer_for

    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="mcp-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    warmup = warmup if warmup is not None else min(10.0, max(2.0, seconds * 0.2))
    listen, admin, upstream_port, auth = free_ports(4)
    issuer = issuer_for(auth)
    published, items, unknown_tail = _tokens(issuer, lifetime=int(seconds) + 900)
    cfg = envoy_config.render(listen, admin, upstream_port, auth,
                              overrides={"claims_to_headers": CLAIM_HEADERS,
                                         "jwks.min_refetch_interval_s": MIN_REFETCH_S},
                              # Token checks under load; the MCP policy has its own tests (its
                              # list responses come back chunked, which this client does not read).
                              unset=["mcp"])
    plugin = envoy_config.plugin_config(cfg)
    resource = plugin["resource_metadata"]["resource"]
    metadata_url = metadata_url_for(resource)
    challenge = ('Bearer error="invalid_token", error_description="{}", resource_metadata="' + metadata_url + '"')
    plan = {
        "port": listen, "host": f"localhost:{listen}", "resource": resource,
        "metadata_path": metadata_url.split(f"localhost:{listen}", 1)[1],
        "items": items, "unknown_kid_tail": unknown_tail,
        "challenges": {"expired": challenge.format("token expired"),
                       "forged": challenge.format("invalid signature"),
                       "unknown_kid": challenge.format("no matching signing key"),
                       "missing": f'Bearer resource_metadata="{metadata_url}"'
                                  + "".join(f', scope="{" ".join(plugin["required_scopes"])}"'
                                            for _ in plugin.get("required_scopes", [])[:1])},
    }

    jwks = JwksServer(auth, published)
    envoy = Envoy(cfg, workdir, concurrency=concurrency, name="soak")
    upstream = None
    clients = []
    try:
        upstream = subprocess.Popen([sys.executable, __file__, "--role", "upstream", "--port", str(upstream_port)],
                                    stdout=subprocess.PIPE, stderr=open(workdir / "upstream.err", "wb"))
        if upstream.stdout.readline().strip() != b"ready":
            raise RuntimeError("the upstream did not start")
        jwks.launch()
        envoy.start()
        deadline = time.monotonic() + 15
        while Stats.parse(envoy.admin_get("/stats?filter=mcp_auth")[1])["mcp_auth.jwks_fetch.ok"] < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("no key set loaded")
            time.sleep(0.05)
        wasm_baseline = health.wasm_stats(envoy)
        fetches_before = jwks.fetch_count
        counters_before = Stats.parse(envoy.admin_get("/stats?filter=mcp_auth")[1])

        per_proc = [connections // client_procs + (1 if i < connections % client_procs else 0)
                    for i in range(client_procs)]
        for i, n in enumerate(per_proc):
            plan_path = workdir / f"plan-{i}.json"
            plan_path.write_text(json.dumps(plan | {"proc": i, "connections": n, "seconds": seconds,
                                                    "seed": seed * 1000 + i}), encoding="utf-8")
            clients.append(subprocess.Popen([sys.executable, __file__, "--role", "client", "--plan", str(plan_path)],
                                            stdout=open(workdir / f"client-{i}.out", "wb"),
                                            stderr=open(workdir / f"client-{i}.err", "wb")))
        log(f"soak: Envoy pid {envoy.proc.pid} --concurrency {concurrency}, {connections} connections in "
            f"{client_procs} client processes, {seconds:g} s (warm-up {warmup:g} s), workdir {workdir}")
        start = time.monotonic()
        rss = []
        next_sample = start
        while any(c.poll() is None for c in clients):
            now = time.monotonic()
            if now >= next_sample:
                rss.append((now - start, vm_rss(envoy.proc.pid)))
                next_sample += sample_interval
            if now - start > seconds + 60:
                raise RuntimeError("clients did not stop")
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        rss.append((elapsed, vm_rss(envoy.proc.pid)))

        stats = []
        for i, c in enumerate(clients):
            if c.wait(timeout=10) != 0:
                err = (workdir / f"client-{i}.err").read_text(errors="replace")
                raise RuntimeError(f"client {i} failed ({c.returncode}): {err[-2000:]}")
            stats.append(json.loads((workdir / f"client-{i}.out").read_text()))
        per_class = {k: sum(s["count"][k] for s in stats) for k in CLASSES}
        wrong = {k: sum(s["wrong"][k] for s in stats) for k in CLASSES}
        time.sleep(0.3)  # the filter's counters land on its 100 ms tick
        counters_after = Stats.parse(envoy.admin_get("/stats?filter=mcp_auth")[1])
        filter_delta = counters_after.delta(counters_before)
        result = Result(
            seconds=elapsed, requests=sum(per_class.values()), per_class=per_class, wrong=wrong,
            status_5xx=sum(s["status_5xx"] for s in stats), errors=sum(s["errors"] for s in stats),
            reconnects=sum(s["reconnects"] for s in stats), rss_series=rss, warmup_s=warmup,
            jwks_fetches=jwks.fetch_count - fetches_before, filter_counters=filter_delta,
            samples=[x for s in stats for x in s["samples"]][:10])

        v = result.violations
        if sum(wrong.values()):
            v.append(f"wrong decisions: {wrong}; e.g. {result.samples[:5]}")
        if result.status_5xx:
            v.append(f"{result.status_5xx} responses with a 5xx status")
        if result.errors:
            v.append(f"{result.errors} client errors (timeouts, resets, framing); e.g. {result.samples[:5]}")
        _, text = envoy.admin_get("/stats?filter=^http.mcp.downstream_rq_5xx$")
        envoy_5xx = Stats.parse(text)["http.mcp.downstream_rq_5xx"]
        if envoy_5xx:
            v.append(f"Envoy counted {envoy_5xx} 5xx responses")
        first, last = result.rss_first_last()
        if first is None:
            v.append("no RSS sample after the warm-up")
        elif last > first * 1.2 + 5 * MB:
            v.append(f"Envoy RSS grew: {first / MB:.1f} MB after warm-up -> {last / MB:.1f} MB")
        expected = {"mcp_auth.allowed": per_class["valid"], "mcp_auth.denied.expired": per_class["expired"],
                    "mcp_auth.denied.bad_signature": per_class["forged"],
                    "mcp_auth.denied.unknown_key": per_class["unknown_kid"],
                    "mcp_auth.denied.missing_token": per_class["missing"],
                    "mcp_auth.metadata_served": per_class["metadata"]}
        counted = {k: v_ for k, v_ in filter_delta.items() if not k.startswith("mcp_auth.jwks_fetch.")}
        if counted != {k: n for k, n in expected.items() if n}:
            v.append(f"filter counters {counted} != client counts {expected}")
        if filter_delta.get("mcp_auth.jwks_fetch.failed"):
            v.append(f"JWKS fetches failed: {filter_delta}")
        max_fetches = int(elapsed // MIN_REFETCH_S) + 2
        if result.jwks_fetches > max_fetches:
            v.append(f"{result.jwks_fetches} JWKS fetches in {elapsed:.0f}s (at most {max_fetches})")
        try:
            health.assert_wasm_healthy(envoy, wasm_baseline)
        except AssertionError as e:
            v.append(f"wasm VM not healthy: {e}")
        return result
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
        envoy.stop()
        jwks.stop()
        if upstream is not None and upstream.poll() is None:
            upstream.terminate()
            try:
                upstream.wait(timeout=5)
            except subprocess.TimeoutExpired:
                upstream.kill()
                upstream.wait()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="duration of the load (default 60)")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections (default 64)")
    parser.add_argument("--client-procs", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=2, help="Envoy worker threads (default 2)")
    parser.add_argument("--sample-interval", type=float, default=2.0, help="VmRSS sampling period, s")
    parser.add_argument("--warmup", type=float, default=None, help="s before the RSS baseline "
                        "(default 20%% of --seconds, within 2..10)")
    parser.add_argument("--workdir", help="Envoy config and logs (default: a new temp dir)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--role", choices=["main", "upstream", "client"], default="main", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.role == "upstream":
        try:
            asyncio.run(_upstream_main(args.port))
        except KeyboardInterrupt:
            pass
        return 0
    if args.role == "client":
        plan = json.loads(Path(args.plan).read_text(encoding="utf-8"))
        stats = asyncio.run(_client_main(plan))
        print(json.dumps(stats.__dict__))
        return 0

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mcp-soak-"))
    result = run(seconds=args.seconds, connections=args.connections, client_procs=args.client_procs,
                 concurrency=args.concurrency, sample_interval=args.sample_interval, warmup=args.warmup,
                 workdir=workdir, seed=args.seed)
    print(result.rss_line())
    print(f"filter counters: {result.filter_counters}")
    for violation in result.violations:
        print(f"VIOLATION: {violation}")
    if result.violations:
        print(f"Envoy config and logs kept in {workdir}")
    elif not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    print(result.summary())
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())
