#!/usr/bin/env python3
"""Transparency: with a policy that permits everything, the filter is invisible to MCP.

The official MCP conformance suite (`@modelcontextprotocol/conformance`, its server scenarios)
runs twice against an MCP server (Streamable HTTP): once directly, once through Envoy + the
mcp_auth filter with a valid token. Every scenario, and every check inside it, must give the same
result both ways. Three servers, one after the other:

  * `everything`: the reference `@modelcontextprotocol/server-everything`. Many scenarios fail on
    it in both runs, because they call tools and prompts of the suite's own test server
    (`test_tool_with_progress`, ...) that it does not have;
  * `conformance`: tests/conformance/server.mjs, shaped after the scenarios, on which every one
    passes, so progress, sampling, elicitation, logging, subscriptions and SSE resumption really
    cross the filter;
  * `conformance-json`: the same server answering with `application/json` bodies instead of SSE
    streams (the scenarios that need a stream fail in both runs).

A probe of the harness's own adds what the suite's client never does: the standalone GET stream,
DELETE of the session and a request in the ended session (``session_lifecycle``).

    .venv/bin/python tests/transparency.py                    # what `make conformance` runs
    .venv/bin/python tests/transparency.py --server conformance --workdir /tmp/conf
    MCP_AUTH_CONFORMANCE_CONFIG='{"required_scopes": ["mcp:tools"]}' .venv/bin/python tests/transparency.py

Topology (free loopback ports):

    conformance --(no token)--> Envoy listener `conformance_client` (adds Authorization: Bearer <token>)
                                  --> Envoy listener `mcp` (CORS, mcp_auth, router; the shipped envoy.yaml)
                                        --> MCP server
    conformance ----------------------------------------------------------------> MCP server

The conformance client cannot send a token, so a second listener adds it. It must be a listener of
its own: `request_headers_to_add` is applied by the router, after the HTTP filters of the same
listener, so the filter would never see a header added on its own route.

The token is minted with the test helpers (tests/helpers/tokens.py, an RS256 Keycloak-shaped
token) and its key served by the test JWKS server. `--filter-config` (or the environment variable
MCP_AUTH_CONFORMANCE_CONFIG) is a JSON object deep-merged into the filter configuration (objects
merge, anything else replaces), so the same comparison runs with a permit-all `mcp` section once
the filter accepts one; until then the filter refuses unknown keys and Envoy does not start (the
CLI says so and exits 2).

Besides the comparison, the run checks that the second run did go through the filter: a request
without a token on the filter's listener gets 401, and the filter counted every request that
reached its listener through the token-adding one as allowed, none as denied.

Exit status 0 when every scenario and every check matches for every server, 1 otherwise.
"""
from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

NPM_DIR = TESTS_DIR / "conformance"
EVERYTHING_JS = NPM_DIR / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
# The MCP servers under test: name -> (node arguments, environment); the port comes in PORT.
SERVERS = {
    # The reference server (`@modelcontextprotocol/server-everything`, Streamable HTTP mode).
    "everything": ([str(EVERYTHING_JS), "streamableHttp"], {}),
    # tests/conformance/server.mjs: every tool, prompt and resource the scenarios call, so that
    # every scenario passes directly and its feature is exercised through the filter.
    "conformance": ([str(NPM_DIR / "server.mjs")], {}),
    # The same answering POSTs with application/json instead of SSE (lists and results as plain
    # JSON bodies; what needs a stream fails in both runs, at once).
    "conformance-json": ([str(NPM_DIR / "server.mjs")], {"JSON_RESPONSES": "1"}),
}
CONFORMANCE_JS = NPM_DIR / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
CONFIG_ENV = "MCP_AUTH_CONFORMANCE_CONFIG"
FRONT_LISTENER = "conformance_client"
FILTER_CLUSTER = "filter_listener"
# "✓ tools-list: 1 passed, 0 failed" in the suite's summary.
SUMMARY_LINE = re.compile(r"^\s*([✓✗])\s+(\S+):\s+(\d+) passed,\s+(\d+) failed\s*$")
# -o DIR holds one directory per scenario: server-<scenario>-<ISO timestamp with - for :>.
SCENARIO_DIR = re.compile(r"^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


# ================================================================================ results

@dataclass(frozen=True)
class Check:
    """One check of a scenario (checks.json), reduced to what must not depend on the path taken."""

    id: str
    status: str
    error: str  # errorMessage with URLs, ports and UUIDs replaced


@dataclass
class Scenario:
    name: str
    passed: int
    failed: int
    checks: list[Check] = field(default_factory=list)

    @property
    def mark(self) -> str:
        return "✓" if self.failed == 0 else "✗"

    def verdict(self) -> tuple:
        return (self.passed, self.failed, tuple(self.checks))


@dataclass
class SuiteRun:
    url: str
    seconds: float
    scenarios: dict[str, Scenario]
    output: str


def _normalise(text: str, url: str) -> str:
    port = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[-1]
    text = text.replace(url, "<URL>").replace(f"127.0.0.1:{port}", "<HOST>").replace(f"localhost:{port}", "<HOST>")
    return UUID.sub("<UUID>", text)


def parse_summary(text: str) -> dict[str, tuple[int, int]]:
    found = {}
    for line in text.splitlines():
        m = SUMMARY_LINE.match(line)
        if m:
            found[m.group(2)] = (int(m.group(3)), int(m.group(4)))
    return found


def parse_checks(output_dir: Path, url: str) -> dict[str, list[Check]]:
    """Per scenario, its non-INFO checks (INFO entries log the traffic itself, whose count and
    timing are not a result)."""
    checks: dict[str, list[Check]] = {}
    for entry in sorted(output_dir.iterdir()):
        m = SCENARIO_DIR.match(entry.name)
        if not m or not (entry / "checks.json").exists():
            continue
        items = json.loads((entry / "checks.json").read_text(encoding="utf-8"))
        checks[m.group(1)] = [Check(str(c.get("id")), str(c.get("status")),
                                    _normalise(str(c.get("errorMessage") or ""), url))
                              for c in items if c.get("status") != "INFO"]
    return checks


# ================================================================================ processes

def node_binary() -> str:
    """Node 22 from .tools/node (scripts/node.sh installs it when missing)."""
    out = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "node.sh")], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} during startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not listening on {port} after {timeout}s")
            time.sleep(0.05)


def _stop(proc: subprocess.Popen | None) -> None:
    from helpers.envoy_proc import stop_process

    stop_process(proc)


def run_suite(node: str, url: str, workdir: Path, label: str, suite: str, timeout: float) -> SuiteRun:
    out_dir = workdir / f"results-{label}"
    out_dir.mkdir()
    cmd = [node, str(CONFORMANCE_JS), "server", "--url", url, "--suite", suite, "-o", str(out_dir)]
    start = time.monotonic()
    # The suite exits 1 when a scenario fails: the comparison, not its status, is the result.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    seconds = time.monotonic() - start
    output = done.stdout + done.stderr
    (workdir / f"conformance-{label}.log").write_text(output, encoding="utf-8")
    summary = parse_summary(output)
    if not summary:
        raise RuntimeError(f"no scenario summary from the conformance suite ({label}, exit {done.returncode}):\n"
                           + output[-3000:])
    checks = parse_checks(out_dir, url)
    scenarios = {name: Scenario(name, p, f, checks.get(name, [])) for name, (p, f) in summary.items()}
    return SuiteRun(url, seconds, scenarios, output)


# ================================================================================ sessions

LIFECYCLE = "session-lifecycle (harness)"
PROBE_VERSION = "2025-11-25"


def _exchange(port: int, method: str, headers: list, message: dict | None = None, stream: bool = False):
    """One request on a fresh connection: (status, media type, mcp-session-id). ``stream``: read
    the head only (a standalone SSE stream stays open)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        body = json.dumps(message).encode() if message is not None else None
        conn.putrequest(method, "/mcp", skip_host=True, skip_accept_encoding=True)
        for name, value in [("host", f"127.0.0.1:{port}"), *headers]:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        if not stream:
            resp.read()
        media = (resp.getheader("content-type") or "").split(";")[0].strip() or "-"
        return resp.status, media, resp.getheader("mcp-session-id")
    finally:
        conn.close()


def session_lifecycle(port: int) -> Scenario:
    """What the suite's scenarios leave out: its client never opens the standalone GET stream on
    its own nor ends a session with DELETE. Each step's status and media type are the checks; a
    step passes when it is what the transport specification asks for."""
    post = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")]
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": PROBE_VERSION, "capabilities": {},
                       "clientInfo": {"name": "transparency-probe", "version": "1.0.0"}}}
    status, media, session = _exchange(port, "POST", post, init)
    steps = [("initialize", status, media, status == 200 and bool(session))]
    if session:
        in_session = [("mcp-session-id", session), ("mcp-protocol-version", PROBE_VERSION)]
        status, media, _ = _exchange(port, "POST", post + in_session,
                                     {"jsonrpc": "2.0", "method": "notifications/initialized"})
        steps.append(("initialized notification", status, media, status == 202))
        status, media, _ = _exchange(port, "GET", [("accept", "text/event-stream"), *in_session], stream=True)
        steps.append(("GET stream", status, media, status == 200 and media == "text/event-stream"))
        status, media, _ = _exchange(port, "DELETE", in_session)
        steps.append(("DELETE session", status, media, 200 <= status < 300))
        status, media, _ = _exchange(port, "POST", post + in_session, {"jsonrpc": "2.0", "id": 2, "method": "ping"})
        steps.append(("request in the ended session", status, media, 400 <= status < 500))
    status, media, _ = _exchange(port, "GET", [("accept", "text/event-stream")], stream=True)
    steps.append(("GET without a session", status, media, 400 <= status < 500))
    passed = sum(1 for *_, ok in steps if ok)
    checks = [Check(name, f"{status} {media}", "") for name, status, media, _ in steps]
    return Scenario(LIFECYCLE, passed, len(steps) - passed, checks)


# ================================================================================ Envoy

# An `mcp` policy that permits everything and still reads every body: its rule makes every list
# response pass through the list rewriter too, so the suite sees what the filter's rewriting does.
PERMIT_ALL = {"rules": ["true"]}


def deep_merge(base: dict, fragment: dict) -> dict:
    """``fragment`` merged into a copy of ``base``: objects merge key by key, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def add_token_listener(cfg: dict, front_port: int, filter_port: int, token: str) -> None:
    """A listener in front of the filter's that adds the token (see the module docstring)."""
    hcm = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": FRONT_LISTENER,
            "stream_idle_timeout": "300s",
            "route_config": {
                "name": FRONT_LISTENER,
                "request_headers_to_add": [{
                    "header": {"key": "authorization", "value": f"Bearer {token}"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }],
                "virtual_hosts": [{
                    "name": FRONT_LISTENER, "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": FILTER_CLUSTER, "timeout": "0s"}}],
                }],
            },
            "http_filters": [{
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
            }],
        },
    }
    cfg["static_resources"]["listeners"].append({
        "name": FRONT_LISTENER,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": front_port}},
        "filter_chains": [{"filters": [hcm]}],
    })
    cfg["static_resources"]["clusters"].append({
        "name": FILTER_CLUSTER, "connect_timeout": "2s", "type": "STATIC",
        "load_assignment": {"cluster_name": FILTER_CLUSTER, "endpoints": [{"lb_endpoints": [{
            "endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": filter_port}}},
        }]}]},
    })


# ================================================================================ the run

@dataclass
class Result:
    server: str
    direct: SuiteRun
    proxied: SuiteRun
    differences: list[str]
    problems: list[str]  # the second run did not demonstrably go through the filter
    counters: dict
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.differences and not self.problems

    def table(self) -> str:
        names = list(self.direct.scenarios) + [n for n in self.proxied.scenarios if n not in self.direct.scenarios]
        width = max(len(n) for n in names)
        lines = [f"{'scenario':<{width}}  {'direct':<12}  {'through filter':<14}  same",
                 f"{'-' * width}  {'-' * 12}  {'-' * 14}  ----"]
        for name in names:
            a, b = self.direct.scenarios.get(name), self.proxied.scenarios.get(name)
            cell = lambda s: f"{s.mark} {s.passed}/{s.passed + s.failed}" if s else "missing"  # noqa: E731
            same = "yes" if a and b and a.verdict() == b.verdict() else "NO"
            lines.append(f"{name:<{width}}  {cell(a):<12}  {cell(b):<14}  {same}")
        total = lambda r: (sum(s.passed for s in r.scenarios.values()), sum(s.failed for s in r.scenarios.values()))  # noqa: E731
        (dp, df), (pp, pf) = total(self.direct), total(self.proxied)
        lines.append(f"{'checks passed/failed':<{width}}  {f'{dp}/{df}':<12}  {f'{pp}/{pf}':<14}")
        return "\n".join(lines)

    def summary(self) -> str:
        parts = [f"MCP server: {self.server}", self.table(),
                 f"suite: {self.direct.seconds:.1f} s direct, {self.proxied.seconds:.1f} s through the filter; "
                 f"whole run {self.seconds:.1f} s",
                 f"filter counters: {self.counters}"]
        parts += [f"DIFFERENT: {d}" for d in self.differences]
        parts += [f"PROBLEM: {p}" for p in self.problems]
        parts.append("transparent: every scenario gives the same result" if self.ok else "NOT transparent")
        return "\n".join(parts)


def compare(direct: SuiteRun, proxied: SuiteRun) -> list[str]:
    differences = []
    for name in sorted(set(direct.scenarios) | set(proxied.scenarios)):
        a, b = direct.scenarios.get(name), proxied.scenarios.get(name)
        if a is None or b is None:
            differences.append(f"{name}: only {'through the filter' if a is None else 'direct'}")
            continue
        if (a.passed, a.failed) != (b.passed, b.failed):
            differences.append(f"{name}: {a.passed} passed {a.failed} failed directly, "
                               f"{b.passed} passed {b.failed} failed through the filter")
        if a.checks != b.checks:
            differences.append(f"{name}: checks differ: direct {a.checks} / through the filter {b.checks}")
    return differences


def run(server: str = "everything", filter_config: dict | None = None, suite: str = "all",
        workdir: Path | str | None = None, timeout: float = 240.0, log=print) -> Result:
    """Start ``server`` (a key of SERVERS), the JWKS endpoint and Envoy; run the suite and the
    session probe directly and through the filter; compare."""
    import envoy_config
    from helpers import http as raw_http
    from helpers.envoy_proc import Envoy, Stats
    from helpers.keys import keyring
    from helpers.ports import free_ports
    from helpers.servers import JwksServer
    from helpers.tokens import issuer_for, keycloak_claims, mint

    for path in (EVERYTHING_JS, CONFORMANCE_JS):
        if not path.exists():
            raise RuntimeError(f"{path} is missing: run `make conformance-deps`")
    started = time.monotonic()
    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="mcp-conformance-"))
    workdir.mkdir(parents=True, exist_ok=True)
    node = node_binary()
    filter_port, admin_port, server_port, auth_port, front_port = free_ports(5)

    key = keyring().sig
    token = mint(key, keycloak_claims(issuer_for(auth_port), lifetime=3600))
    cfg = envoy_config.render(filter_port, admin_port, server_port, auth_port)
    plugin = envoy_config.plugin_config(cfg)
    # The transparency run replaces the shipped `mcp` policy (written for echo-server's tools)
    # with the one given, by default PERMIT_ALL.
    plugin.pop("mcp", None)
    plugin = deep_merge(plugin, {"mcp": PERMIT_ALL, **(filter_config or {})})
    envoy_config.set_plugin_config(cfg, plugin)
    add_token_listener(cfg, front_port, filter_port, token)

    jwks = JwksServer(auth_port, [key])
    envoy = Envoy(cfg, workdir, name="conformance")
    process = None
    try:
        args, env = SERVERS[server]
        process = subprocess.Popen([node, *args], cwd=workdir, env={**os.environ, **env, "PORT": str(server_port)},
                                   stdout=open(workdir / f"server-{server}.log", "wb"), stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        _wait_port(server_port, process, f"MCP server {server}")
        jwks.launch()
        envoy.start()
        _wait_port(front_port, envoy.proc, "Envoy's token-adding listener")
        deadline = time.monotonic() + 15
        while Stats.parse(envoy.admin_get("/stats?filter=mcp_auth")[1])["mcp_auth.jwks_fetch.ok"] < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the filter loaded no key set")
            time.sleep(0.05)
        log(f"conformance: MCP server {server} :{server_port}, filter :{filter_port}, "
            f"token-adding listener :{front_port}, workdir {workdir}")

        direct = run_suite(node, f"http://127.0.0.1:{server_port}/mcp", workdir, "direct", suite, timeout)
        direct.scenarios[LIFECYCLE] = session_lifecycle(server_port)
        watched = "/stats?filter=mcp_auth|^http\\.mcp\\.downstream_rq_total$"
        before = Stats.parse(envoy.admin_get(watched)[1])
        proxied = run_suite(node, f"http://127.0.0.1:{front_port}/mcp", workdir, "through-filter", suite, timeout)
        proxied.scenarios[LIFECYCLE] = session_lifecycle(front_port)
        time.sleep(0.3)  # the filter's counters land on its 100 ms tick
        after = Stats.parse(envoy.admin_get(watched)[1])

        # Controls: every request that reached the filter's listener was allowed by it, and the
        # filter is there (a request without a token on its listener is refused).
        problems = []
        delta = after.delta(before)
        reached = delta.get("http.mcp.downstream_rq_total", 0)
        counters = {k: v for k, v in delta.items() if k.startswith("mcp_auth.")}
        # (Counters other than refusals may come with the `mcp` section: they are only reported.)
        refused = {k: v for k, v in counters.items() if "denied" in k or "bad_body" in k}
        if reached == 0 or counters.get("mcp_auth.allowed") != reached or refused:
            problems.append(f"{reached} requests reached the filter's listener, filter counted {counters}")
        probe = raw_http.request(filter_port, "POST", "/mcp", headers=[("content-type", "application/json")],
                                 body=b'{"jsonrpc":"2.0","id":1,"method":"ping"}')
        if probe.status != 401:
            problems.append(f"a request without a token on the filter's listener got {probe.status}, not 401")
        if not any(s.passed for s in direct.scenarios.values()):
            problems.append("no scenario passed even directly: the server was not exercised")
        return Result(server, direct, proxied, compare(direct, proxied), problems, counters,
                      time.monotonic() - started)
    finally:
        envoy.stop()
        jwks.stop()
        _stop(process)


def main(argv=None) -> int:
    from helpers.envoy_proc import EnvoyStartError

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=[*SERVERS, "all"], default="all",
                        help="the MCP server under test (default: all, one after the other)")
    parser.add_argument("--filter-config", default=os.environ.get(CONFIG_ENV, ""),
                        help=f"JSON object merged into the filter configuration (default: ${CONFIG_ENV})")
    parser.add_argument("--suite", default="all", choices=["all", "active", "pending"],
                        help="the conformance suite's scenario set (default: all, pending included)")
    parser.add_argument("--workdir", help="keep logs and results here (default: a new temporary directory)")
    args = parser.parse_args(argv)
    fragment = json.loads(args.filter_config) if args.filter_config.strip() else {}
    if not isinstance(fragment, dict):
        parser.error("--filter-config must be a JSON object")
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mcp-conformance-"))
    ok = True
    for server in SERVERS if args.server == "all" else [args.server]:
        try:
            result = run(server, fragment, suite=args.suite, workdir=workdir / server)
        except EnvoyStartError as e:
            print(f"{e}\n\nEnvoy refused the configuration: the filter rejects keys it does not know "
                  f"(an `mcp` section only once the filter has one); logs in {workdir / server}", file=sys.stderr)
            return 2
        print(result.summary() + "\n")
        ok = ok and result.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
