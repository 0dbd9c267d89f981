"""The full-stack rows of `make bench`: one MCP call through the whole stack a user runs.

The call is the tutorial's: ``tools/call echo`` with ``message="hi", repeat_count=2``, after one
``initialize`` (and ``notifications/initialized``), repeated on that one session with one valid
token (bench/wrk/mcp.lua: each request its own JSON-RPC id; a response without the tool's result
is counted as unanswered). Stacks:

  fastmcp   (A) the tutorial's server: FastMCP with RemoteAuthProvider + JWTVerifier checking the
            token in the application (bench/fastmcp_echo.py), one Python process
  mcp_auth  (B) Envoy (the shipped envoy.yaml, ``--concurrency 1``) + our filter + echo-server
            (release build)
  no_auth   (C) the same Envoy without the auth filter + echo-server
  echo      (D) echo-server alone

Every process of a stack runs on the bench's server CPU (``taskset``), wrk on the other, as in
the Envoy-only cells. Each stack has its own processes and JWKS endpoint (the same issuer,
audience and key set everywhere); all stacks stay up and take turns in rounds, the order reversed
each round. The CPU time of every server process is read from /proc/PID/stat around each round,
so a ratio of req/s can be explained by where the CPU went.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

import configs  # noqa: E402
from helpers.envoy_proc import Envoy  # noqa: E402
from helpers.keys import keycloak_enc_key  # noqa: E402
from helpers.ports import free_ports  # noqa: E402
from helpers.servers import JwksServer  # noqa: E402
from helpers.tokens import AUDIENCE  # noqa: E402

ECHO_SERVER_BIN = Path(os.environ.get("BENCH_ECHO_SERVER")
                       or REPO_ROOT / "target" / "release" / "echo-server")


@dataclass
class StackSpec:
    """What one row runs. ``kind``: fastmcp, echo (echo-server alone), or envoy (Envoy in front of an
    echo-server, ``with_filter`` or not). The other fields let an experiment (an echo-server build,
    its environment, an edit of the Envoy bootstrap) run as a row of its own beside the standard ones."""
    name: str
    kind: str
    label: str
    with_filter: bool = False
    echo_bin: Path | None = None
    echo_env: dict = field(default_factory=dict)
    envoy_edit: Callable[[dict], None] | None = None
    wasm: Path | None = None  # another build of our filter


SPECS = {
    "fastmcp": StackSpec("fastmcp", "fastmcp", "(A) FastMCP, RemoteAuthProvider + JWTVerifier"),
    "mcp_auth": StackSpec("mcp_auth", "envoy", "(B) Envoy + mcp_auth + echo-server", with_filter=True),
    "no_auth": StackSpec("no_auth", "envoy", "(C) Envoy, no auth + echo-server"),
    "echo": StackSpec("echo", "echo", "(D) echo-server alone"),
}
STACKS = tuple(SPECS)
FASTMCP_SERVER = BENCH_DIR / "fastmcp_echo.py"
# echo-server and FastMCP log one line per request at their default level, as shipped.
ECHO_LOG = os.environ.get("BENCH_ECHO_LOG", "info")
FASTMCP_LOG = os.environ.get("BENCH_FASTMCP_LOG", "info")
# The floors: (title, numerator, denominator, floor, reach).
FLOORS = (
    ("B/C: Envoy + mcp_auth / Envoy without auth (what the filter costs of a call)", "mcp_auth", "no_auth",
     0.95, None),
    ("B/D: Envoy + mcp_auth / echo-server alone (what the proxy hop costs)", "mcp_auth", "echo", 0.5, None),
    ("B/A: Envoy + mcp_auth / the tutorial's FastMCP", "mcp_auth", "fastmcp", 10, 40),
    ("C/D: Envoy without auth / echo-server alone (the hop alone)", "no_auth", "echo", None, None),
)
# A stack whose server processes use less of their CPU than this while that CPU sits idle is
# waiting, not working (as every echo-server call did on the client's delayed ACK before
# TCP_NODELAY): reported as a miss. An idle server side on a CPU that other processes kept busy is
# only reported (a shared machine, not a stall).
BUSY_FLOOR_PCT = 50.0
IDLE_CPU_PCT = 25.0


def cpu_jiffies(cpu: str) -> tuple[int, int] | None:
    """(idle, total) jiffies of one CPU since boot, from /proc/stat."""
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            fields = line.split()
            if fields and fields[0] == f"cpu{cpu}":
                values = [int(v) for v in fields[1:]]
                return values[3] + values[4], sum(values[:8])  # idle + iowait; up to steal
    except (OSError, ValueError, IndexError):
        return None
    return None

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "bench", "version": "1.0"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "hi", "repeat_count": 2}}}
ANSWER = '"text":"hihi"'


def post(port: int, body: dict, headers: dict, timeout: float = 10.0) -> tuple[int, dict, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/mcp", body=json.dumps(body), headers={
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
            "Mcp-Protocol-Version": "2025-06-18", **headers})
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text
    finally:
        conn.close()


def wait_tcp(port: int, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} not listening on :{port} after {timeout:.0f} s")


class Stack:
    """One stack's processes, its JWKS endpoint and its MCP session."""

    def __init__(self, spec: StackSpec, bench, tools):
        self.spec = spec
        self.name = name = spec.name
        self.bench = bench
        self.tools = tools
        self.workdir = bench.workdir / f"stack-{name}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pinned = ["taskset", "-c", bench.envoy_cpu]
        self.procs: dict[str, subprocess.Popen] = {}  # role -> process (Envoy's is its .proc)
        self.envoy: Envoy | None = None
        self.jwks: JwksServer | None = None
        self.port = 0
        self.session = ""
        self.authorization = f"Bearer {bench.full_stack_token}"

    def _spawn(self, role: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        out = open(self.workdir / f"{role}.log", "wb")
        proc = self.tools.spawn([*self.pinned, *cmd], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
        out.close()
        self.procs[role] = proc
        return proc

    def _jwks(self, port: int) -> None:
        self.jwks = JwksServer(port, keys=[keycloak_enc_key(), self.bench.key])
        self.jwks.start()

    def _echo_server(self) -> int:
        (port,) = free_ports(1)
        env = {**os.environ, "RUST_LOG": ECHO_LOG, **self.spec.echo_env}
        env.pop("ECHO_SERVER_ALLOWED_HOSTS", None)
        binary = self.spec.echo_bin or ECHO_SERVER_BIN
        proc = self._spawn("echo-server", [str(binary), "--bind", f"127.0.0.1:{port}"], env)
        wait_tcp(port, proc, "echo-server")
        return port

    def start(self) -> None:
        if self.spec.kind == "fastmcp":
            self.port, auth = free_ports(2)
            self._jwks(auth)
            jwks_uri = f"http://127.0.0.1:{auth}/realms/my-realm/protocol/openid-connect/certs"
            proc = self._spawn("FastMCP", [sys.executable, str(FASTMCP_SERVER), "--port", str(self.port),
                                           "--jwks-uri", jwks_uri, "--issuer", self.bench.issuer,
                                           "--audience", AUDIENCE, "--log-level", FASTMCP_LOG])
            wait_tcp(self.port, proc, "FastMCP")
        elif self.spec.kind == "echo":
            self.port = self._echo_server()
        else:
            upstream = self._echo_server()
            self.port, admin, auth = free_ports(3)
            if self.spec.with_filter:
                self._jwks(auth)
            cfg = configs.render_full_stack(self.spec.with_filter, self.port, admin, auth, upstream,
                                            ours_wasm=self.spec.wasm or configs.OURS_WASM)
            if self.spec.envoy_edit is not None:
                self.spec.envoy_edit(cfg)
            self.envoy = Envoy(cfg, self.workdir, concurrency=1, name="envoy", log_level=self.bench.log_level,
                               command_prefix=self.pinned)
            self.envoy.start()
        self.open_session()

    def open_session(self, timeout: float = 30.0) -> None:
        """initialize + notifications/initialized, then one call checked for its answer. Retried
        until it works: our filter answers 503 until its first key set has arrived."""
        deadline = time.monotonic() + timeout
        auth = {"Authorization": self.authorization}
        last = ""
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                status, headers, body = post(self.port, INITIALIZE, auth)
                # A stateless server (no Mcp-Session-Id) takes each call on its own.
                session = headers.get("mcp-session-id", "")
                with_session = {**auth, "Mcp-Session-Id": session} if session else auth
                if status == 200:
                    status, _, body = post(self.port, INITIALIZED, with_session)
                    if status == 202:
                        status, _, body = post(self.port, CALL, with_session)
                        if status == 200 and ANSWER in body:
                            self.session = session
                            return
                last = f"{status}: {body[:300]}"
            except OSError as e:
                last = str(e)
            time.sleep(0.2)
        raise RuntimeError(f"no working MCP session on {self.name} after {timeout:.0f} s (last: {last})")

    def pids(self) -> dict[str, int]:
        pids = {role: proc.pid for role, proc in self.procs.items()}  # taskset execs: same PID
        if self.envoy is not None and self.envoy.proc is not None:
            pids["Envoy"] = self.envoy.proc.pid
        return pids

    def check_alive(self) -> None:
        for role, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{role} exited with {proc.returncode}; see {self.workdir}")
        if self.envoy is not None and not self.envoy.running:
            raise RuntimeError(f"Envoy exited\n{self.envoy.log_tail()}")

    def workload(self) -> tuple[str, list[str]]:
        return "mcp.lua", [self.authorization, self.session]

    def stop(self) -> None:
        try:
            if self.envoy is not None:
                self.envoy.stop()
        finally:
            for proc in self.procs.values():
                self.tools.stop(proc)
            if self.jwks is not None:
                self.jwks.stop()


class FullStack:
    """Starts the stacks, measures them in interleaved rounds, reports rows and ratios."""

    def __init__(self, bench, tools, stacks=STACKS, specs: dict[str, StackSpec] | None = None):
        self.bench = bench
        self.tools = tools
        self.stacks = list(stacks)
        self.specs = specs or SPECS
        self.live: dict[str, Stack] = {}
        self.rounds: dict[str, list[dict]] = {s: [] for s in self.stacks}
        self.results: dict[str, dict] = {}
        self.errors: dict[str, str] = {}
        self.misses: list[str] = []

    @staticmethod
    def missing() -> list[str]:
        """What must be built or installed first, with the command that does it."""
        gaps = []
        if not ECHO_SERVER_BIN.exists():
            gaps.append(f"{ECHO_SERVER_BIN} (cargo build --release -p echo-server)")
        try:
            import fastmcp  # noqa: F401
        except ImportError:
            gaps.append("PyPI fastmcp in this Python (pip install -r bench/requirements.txt)")
        return gaps

    def guard(self, name: str, step, *args) -> None:
        try:
            step(name, *args)
        except Exception as e:
            self.errors[name] = str(e)
            self.tools.log(f"full stack {name} FAILED: {e}")
            stack = self.live.pop(name, None)
            if stack is not None:
                stack.stop()

    def run(self, rounds: int, seconds: int, warmup: int) -> None:
        try:
            for name in self.stacks:
                self.guard(name, self._start)
            for name in self.stacks:
                if name in self.live:
                    self.guard(name, self._measure, warmup, False)
            for round_no in range(rounds):
                order = self.stacks if round_no % 2 == 0 else self.stacks[::-1]
                for name in order:
                    if name in self.live:
                        self.guard(name, self._measure, seconds, True)
            for name in self.stacks:
                if self.rounds[name]:
                    self.results[name] = merge(self.rounds[name])
        finally:
            self.stop()

    def stop(self) -> None:
        for name in list(self.live):
            self.live.pop(name).stop()

    def _start(self, name: str) -> None:
        self.tools.log(f"full stack {name}: starting")
        stack = Stack(self.specs[name], self.bench, self.tools)
        self.live[name] = stack
        stack.start()

    def _measure(self, name: str, seconds: int, keep: bool) -> None:
        stack = self.live[name]
        pids = stack.pids()
        before = {role: self.tools.cpu_seconds(pid) for role, pid in pids.items()}
        jiffies_before = cpu_jiffies(self.bench.envoy_cpu)
        script, args = stack.workload()
        result = self.tools.run_wrk(self.bench.wrk_bin, self.bench.wrk_cpu, stack.port, seconds, script, args)
        after = {role: self.tools.cpu_seconds(pid) for role, pid in pids.items()}
        jiffies_after = cpu_jiffies(self.bench.envoy_cpu)
        stack.check_alive()
        result["cpu_s"] = {role: (after[role] or 0.0) - (before[role] or 0.0) for role in pids}
        if jiffies_before and jiffies_after and jiffies_after[1] > jiffies_before[1]:
            # Share of the server CPU that sat idle during the round.
            result["cpu_idle_pct"] = (100.0 * (jiffies_after[0] - jiffies_before[0])
                                      / (jiffies_after[1] - jiffies_before[1]))
        if not keep:
            return
        self.rounds[name].append(result)
        per_req = ", ".join(f"{role} {1e6 * cpu / max(result['requests'], 1):.0f}"
                            for role, cpu in result["cpu_s"].items())
        self.tools.log(f"full stack {name} round {len(self.rounds[name])}: {result['rps']:.0f} req/s, "
                       f"p50 {_ms(result['p50_us'])}, p99 {_ms(result['p99_us'])}, CPU us/req {per_req}, "
                       f"unanswered {result.get('unanswered', '?')}/{result['requests']}")

    # -- report ------------------------------------------------------------------------------
    def report(self, server_cpu: str, wrk_cpu: str, connections: int) -> list[str]:
        lines = [
            "",
            "## Full stack: one MCP call",
            "",
            f"`tools/call echo` (message \"hi\", repeat_count 2) on one MCP session opened by `initialize`, one "
            f"valid token, wrk `-t1 -c{connections}` keep-alive on CPU {wrk_cpu}; every server process of a "
            f"stack on CPU {server_cpu}. echo-server: release build (`RUST_LOG={ECHO_LOG}`); FastMCP: uvicorn "
            f"log level {FASTMCP_LOG}; Envoy: the shipped envoy.yaml, `--concurrency 1`. CPU µs/req: CPU "
            "time of each server process (user + system, /proc/PID/stat) over the requests served. Server "
            f"CPU: the share of CPU {server_cpu} the stack's processes used; others: what processes outside the "
            "bench took of it (a shared machine); idle: what nobody used. A server side idle on an idle CPU "
            "is waiting, not working (flagged: the ~40 ms delayed-ACK stall looked like that).",
            "",
            "| stack | req/s | p50 | p99 | server CPU µs/req, by process | server CPU µs/req | server CPU "
            "(other processes, idle) | wrk CPU | responses |",
            "|---|---:|---:|---:|---|---:|---:|---:|---|",
        ]
        for name in self.stacks:
            r = self.results.get(name)
            if r is None:
                lines.append(f"| {self.specs[name].label} | {'failed' if name in self.errors else 'not run'} | | | | | | | |")
                continue
            by_process = ", ".join(f"{role} {us:.0f}" for role, us in r["cpu_us_per_req"].items())
            ok = r["unanswered"] == 0 and r["non_2xx_3xx"] == 0 and r["socket_errors"] == 0
            responses = "all answered" if ok else (
                f"**{r['unanswered']} unanswered, {r['non_2xx_3xx']} non-2xx, {r['socket_errors']} socket errors"
                f" of {r['requests']}**")
            if not ok:
                self.misses.append(f"full stack {name}: unanswered calls")
            busy, idle = r["server_cpu_pct"], r["cpu_idle_pct"]
            others = max(0.0, 100.0 - busy - idle) if idle is not None else None
            busy_text = f"{busy:.0f}%" + (f" (others {others:.0f}%, idle {idle:.0f}%)" if idle is not None else "")
            if busy < BUSY_FLOOR_PCT and idle is not None and idle > IDLE_CPU_PCT:
                busy_text += " **waiting, not working**"
                self.misses.append(f"full stack {name}: server side waiting")
            elif busy < BUSY_FLOOR_PCT:
                # Other processes held the CPU: a stall would look the same; the tests guard it.
                busy_text += " (stall check not judged: CPU taken by others)"
            lines.append(f"| {self.specs[name].label} | {r['rps']:,.0f} | {_ms(r['p50_us'])} | {_ms(r['p99_us'])} | "
                         f"{by_process} | {r['server_cpu_us_per_req']:.0f} | {busy_text} | {r['wrk_cpu_pct']:.0f}% "
                         f"| {responses} |")
        lines += ["", "The verdict uses the server side's CPU time per call (all its processes; the ratio is "
                  "the inverse of theirs, as a throughput ratio): the median of the per-round ratios "
                  "(lowest–highest round in brackets). On a quiet machine, with the server CPU saturated, "
                  "it equals the req/s ratio (last column). On a shared one it is the figure that holds: "
                  "the scheduler gives a stack of two busy processes a larger share of a contended CPU "
                  "than a stack of one, which skews req/s between stacks.", "",
                  "| measure | value (by CPU µs/call) | floor | verdict | by req/s |", "|---|---:|---|---|---:|"]
        for title, num, den, floor, reach in FLOORS:
            a, b = self.results.get(num), self.results.get(den)
            floor_text = "none" if floor is None else f"≥ {floor:g}" + (f" (reach {reach:g})" if reach else "")
            if a is None or b is None:
                lines.append(f"| {title} | n/a | {floor_text} | | |")
                continue
            per_round = [y / max(x, 1e-9) for x, y in zip(a["round_cpu_us"], b["round_cpu_us"])]
            value = statistics.median(per_round)
            by_rps = statistics.median(x / y for x, y in zip(a["round_rps"], b["round_rps"]))
            if floor is None:
                verdict = "reference"
            elif value >= floor:
                verdict = "ok (reach met)" if reach is not None and value >= reach else "ok"
            else:
                verdict = "**below floor**"
                self.misses.append(title.split(":")[0])
            spread = f" ({min(per_round):.2f}–{max(per_round):.2f})" if len(per_round) > 1 else ""
            lines.append(f"| {title} | {value:.2f}{spread} | {floor_text} | {verdict} | {by_rps:.2f} |")
        b, c = self.results.get("mcp_auth"), self.results.get("no_auth")
        if b and c:
            diff = {role: b["cpu_us_per_req"].get(role, 0.0) - c["cpu_us_per_req"].get(role, 0.0)
                    for role in b["cpu_us_per_req"]}
            lines += ["", "What the filter adds per call (B − C, CPU µs/req): " +
                      ", ".join(f"{role} {us:+.1f}" for role, us in diff.items()) + "."]
        if self.errors:
            lines += ["", "Full-stack failures:", ""]
            for name, err in self.errors.items():
                lines.append(f"- {self.specs[name].label}: {(err.splitlines() or ['?'])[0]} (logs in bench/results/run/)")
        return lines


def merge(rounds: list[dict]) -> dict:
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["duration_us"] for r in rounds) / 1e6
    roles = list(rounds[0]["cpu_s"])
    cpu = {role: sum(r["cpu_s"].get(role, 0.0) for r in rounds) for role in roles}
    total_cpu = sum(cpu.values())
    return {
        "rounds": rounds,
        "round_rps": [r["rps"] for r in rounds],
        "round_cpu_us": [1e6 * sum(r["cpu_s"].values()) / max(r["requests"], 1) for r in rounds],
        "requests": requests,
        "rps": requests / seconds,
        "p50_us": statistics.median(r["p50_us"] for r in rounds),
        "p99_us": statistics.median(r["p99_us"] for r in rounds),
        "cpu_us_per_req": {role: 1e6 * s / max(requests, 1) for role, s in cpu.items()},
        "server_cpu_us_per_req": 1e6 * total_cpu / max(requests, 1),
        "server_cpu_pct": 100.0 * total_cpu / seconds,
        "wrk_cpu_pct": sum(r["wrk_cpu_pct"] * r["duration_us"] for r in rounds) / 1e6 / seconds,
        "cpu_idle_pct": (statistics.mean(r["cpu_idle_pct"] for r in rounds)
                         if all("cpu_idle_pct" in r for r in rounds) else None),
        "unanswered": sum(r.get("unanswered", 0) for r in rounds),
        "non_2xx_3xx": sum(r["non_2xx_3xx"] for r in rounds),
        "socket_errors": sum(r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
                             for r in rounds),
    }


def _ms(us: float) -> str:
    return f"{us / 1000:.2f} ms"
