"""Is the filter's wasm VM still alive?

Envoy 1.40 keeps no counter for a VM that trapped: a Rust panic in the filter is a wasm
`unreachable` trap, Envoy logs it (`[critical][wasm] ... panicked at ...`, then
`[error][wasm] ... Function: proxy_on_... failed: Uncaught RuntimeError`) and from then on answers
every request of that worker with an empty `503` (fail closed, `fail_open: false`). The
`wasm.envoy.wasm.runtime.v8.{active,created}` and `wasm.wasm_vm_count` gauges do not move, and
the `wasm.<vm_id>.vm_reload*` counters only move with a reload failure policy. So "healthy" means:

1. no wasm failure line in Envoy's log,
2. the `wasm.*` VM gauges as at the baseline, and every `wasm.*` counter naming a failure or a
   reload at 0,
3. every worker still answers through the filter: a request without a token gets the filter's
   own JSON 401 (not Envoy's empty 503), checked per worker with the listener's per-worker stats.
"""
from __future__ import annotations

import re

from . import http

# What Envoy logs when the wasm VM traps or a callback fails.
WASM_FAILURE_LINE = re.compile(r"\]\[(critical|error)\]\[wasm\]|panicked at|Uncaught RuntimeError|wasm vm.*fail",
                               re.IGNORECASE)
VM_GAUGES = ("wasm.envoy.wasm.runtime.v8.active", "wasm.envoy.wasm.runtime.v8.created", "wasm.wasm_vm_count")


def wasm_stats(envoy) -> dict:
    """Envoy's own ``wasm.*`` stats (not the filter's ``wasmcustom.*`` counters)."""
    status, body = envoy.admin_get("/stats?filter=^wasm\\.")
    assert status == 200, body
    stats = {}
    for line in body.splitlines():
        name, sep, value = line.rpartition(": ")
        if sep and value.strip().lstrip("-").isdigit():
            stats[name] = int(value)
    return stats


def wasm_failure_lines(envoy) -> list[str]:
    return [line for line in envoy.log_text().splitlines() if WASM_FAILURE_LINE.search(line)]


def worker_connections(envoy) -> dict:
    _, text = envoy.admin_get(f"/stats?filter=listener.127.0.0.1_{envoy.listen_port}.worker_")
    return {int(m.group(1)): int(m.group(2))
            for m in re.finditer(r"worker_(\d+)\.downstream_cx_total: (\d+)", text)}


def probe_workers(envoy, per_worker: int = 2, max_requests: int = 60) -> dict:
    """No-token requests on fresh connections until each worker answered ``per_worker`` of them;
    returns {worker: [status, ...]}. Each answer must be the filter's JSON 401."""
    seen: dict[int, list] = {w: [] for w in range(envoy.concurrency)}
    for _ in range(max_requests):
        if all(len(v) >= per_worker for v in seen.values()):
            break
        before = worker_connections(envoy)
        resp = http.request(envoy.listen_port, "POST", "/mcp", body=b"{}",
                            headers=[("content-type", "application/json")], timeout=10)
        after = worker_connections(envoy)
        worker = next((w for w in after if after[w] > before.get(w, 0)), None)
        ok = (resp.status == 401 and resp.header("www-authenticate") is not None
              and resp.body.startswith(b"{") and b'"unauthorized"' in resp.body)
        assert ok, f"worker {worker}: the filter did not answer a request without a token: {resp!r}"
        if worker is not None:
            seen.setdefault(worker, []).append(resp.status)
    missing = [w for w, v in seen.items() if len(v) < per_worker]
    assert not missing, f"workers {missing} got no probe in {max_requests} connections: {seen}"
    return seen


def assert_wasm_healthy(envoy, baseline: dict | None = None, probe: bool = True) -> dict:
    """Fails if the filter's VM trapped (see the module docstring). ``baseline``: ``wasm_stats``
    taken after start. Returns the current ``wasm_stats``."""
    lines = wasm_failure_lines(envoy)
    assert not lines, "wasm failure in Envoy's log:\n" + "\n".join(lines[:10])
    stats = wasm_stats(envoy)
    bad = {k: v for k, v in stats.items() if re.search(r"fail|reload", k) and v != 0}
    assert not bad, f"wasm failure counters: {bad}"
    if baseline is not None:
        moved = {k: (baseline.get(k), stats.get(k)) for k in VM_GAUGES if baseline.get(k) != stats.get(k)}
        assert not moved, f"wasm VM gauges moved (baseline, now): {moved}"
    assert envoy.running, "Envoy exited"
    if probe:
        probe_workers(envoy)
    return stats
