#!/usr/bin/env python3
"""What one more Envoy worker costs in memory with the filter, against the same Envoy without it.

Every worker thread runs its own wasm VM (plus one on the main thread for configuration), so a
fleet's memory grows with workers. This starts envoy.yaml on free ports with `--concurrency`
1, 2 and 4, with the mcp_auth filter and with the wasm filter removed (the rest identical),
sends the same requests to each (valid tokens on fresh connections, so every worker handles
some), and reads Envoy's VmRSS. Variants and worker counts alternate within each round, and the
report takes medians over rounds; the per-worker cost of the filter is the difference of the two
slopes (RSS per added worker with the filter minus without).

    .venv/bin/python bench/worker_memory.py [--rounds 3] [--requests 64]
    .venv/bin/python bench/worker_memory.py --cache-fill 4096   # a worker's token cache, full

Prints a Markdown table (README, *Deploying*, "Fleet load on paper"). `--cache-fill N` instead
measures one worker before and after N distinct valid tokens (the default token cache holds
4096), i.e. what a full token cache adds to a worker.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import envoy_config  # noqa: E402
from helpers.keys import keyring  # noqa: E402
from helpers.stack import Stack  # noqa: E402
from helpers.tokens import mint  # noqa: E402

WORKERS = (1, 2, 4)
VARIANTS = ("no_filter", "mcp_auth")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def measure(workdir: Path, keys, variant: str, workers: int, requests: int) -> int:
    stack = Stack(workdir, keys=keys.keycloak(), concurrency=workers, name=f"{variant}-{workers}")
    if variant == "no_filter":
        hcm = envoy_config.http_connection_manager(stack.config)
        hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != envoy_config.WASM_FILTER]
    try:
        stack.start(wait_for_keys=variant == "mcp_auth")
        token = mint(keys.sig, stack.claims())
        for _ in range(requests):
            resp = stack.request("POST", "/mcp", token=token)
            if resp.status != 200:
                raise RuntimeError(f"{variant} x{workers}: {resp!r}")
        time.sleep(0.3)  # the filter's counters and any lazy allocation settle
        return rss_kib(stack.envoy.proc.pid)
    finally:
        stack.stop()


def cache_fill(workdir: Path, keys, tokens: int, requests: int) -> tuple[int, int]:
    """(RSS after warm-up, RSS after `tokens` distinct valid tokens), one worker, KiB."""
    stack = Stack(workdir, keys=keys.keycloak(), concurrency=1, name="cache-fill")
    try:
        stack.start()
        token = mint(keys.sig, stack.claims())
        for _ in range(requests):
            stack.request("POST", "/mcp", token=token)
        time.sleep(0.3)
        before = rss_kib(stack.envoy.proc.pid)
        minted = [mint(keys.sig, stack.claims()) for _ in range(tokens)]
        for distinct in minted:
            resp = stack.request("POST", "/mcp", token=distinct)
            if resp.status != 200:
                raise RuntimeError(f"cache fill: {resp!r}")
        time.sleep(0.3)
        return before, rss_kib(stack.envoy.proc.pid)
    finally:
        stack.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--cache-fill", type=int, default=0, metavar="N",
                        help="measure one worker's RSS growth over N distinct tokens instead")
    args = parser.parse_args(argv)
    keys = keyring()
    if args.cache_fill:
        with tempfile.TemporaryDirectory(prefix="worker-memory-") as tmp:
            runs = [cache_fill(Path(tmp) / f"r{i}", keys, args.cache_fill, args.requests) for i in range(args.rounds)]
        growth = statistics.median(after - before for before, after in runs)
        print(f"one worker, {args.cache_fill} distinct tokens: RSS grows by {growth / 1024:.1f} MiB "
              f"(median of {args.rounds}; {growth * 1024 / args.cache_fill:.0f} bytes per token); raw KiB {runs}")
        return 0
    samples: dict = {(v, w): [] for v in VARIANTS for w in WORKERS}
    with tempfile.TemporaryDirectory(prefix="worker-memory-") as tmp:
        for round_no in range(args.rounds):
            order = [(v, w) for w in WORKERS for v in VARIANTS]
            if round_no % 2:
                order.reverse()
            for variant, workers in order:
                samples[(variant, workers)].append(
                    measure(Path(tmp) / f"r{round_no}", keys, variant, workers, args.requests))
    med = {k: statistics.median(v) / 1024 for k, v in samples.items()}
    print(f"VmRSS in MiB, median of {args.rounds} rounds ({args.requests} requests each):\n")
    print("| --concurrency | no filter | mcp_auth | difference |")
    print("|---:|---:|---:|---:|")
    for w in WORKERS:
        a, b = med[("no_filter", w)], med[("mcp_auth", w)]
        print(f"| {w} | {a:.1f} | {b:.1f} | {b - a:.1f} |")
    span = WORKERS[-1] - WORKERS[0]
    slope = {v: (med[(v, WORKERS[-1])] - med[(v, WORKERS[0])]) / span for v in VARIANTS}
    print(f"\nper added worker: no filter {slope['no_filter']:.2f} MiB, mcp_auth {slope['mcp_auth']:.2f} MiB; "
          f"the filter's VM per worker: {slope['mcp_auth'] - slope['no_filter']:.2f} MiB")
    print(f"fixed cost at --concurrency 1 (V8, module, main-thread VM, first worker's VM): "
          f"{med[('mcp_auth', 1)] - med[('no_filter', 1)]:.1f} MiB")
    print("raw KiB:", {f"{v}x{w}": s for (v, w), s in samples.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
