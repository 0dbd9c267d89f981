"""The filter's counters without the fixed wait of ``Envoy.stats()``.

The filter batches its counter increments and hands them to Envoy on its 100 ms tick, so
``Envoy.stats()`` sleeps 250 ms before every read. Tests that read counters around every request
poll instead: read right away, then wait until the expected change has landed. All increments a
request causes on one worker land in the same tick's flush, so once the expected counter moved,
a wrong extra increment from the same request would be visible too.
"""
from __future__ import annotations

import time

from .envoy_proc import Stats


def read(envoy, filter_: str = "mcp_auth") -> Stats:
    """The counters as Envoy has them now (the last tick's flush)."""
    status, body = envoy.admin_get(f"/stats?filter={filter_}")
    assert status == 200, body
    return Stats.parse(body)


def filter_delta(after: Stats, before: Stats, ignore_jwks: bool = True) -> dict:
    return {k: v for k, v in after.delta(before).items()
            if k.startswith("mcp_auth.") and not (ignore_jwks and k.startswith(("mcp_auth.jwks_fetch.", "mcp_auth.jwks.")))}


def wait_delta(envoy, before: Stats, expected: dict, timeout: float = 2.0, ignore_jwks: bool = True) -> dict:
    """Polls until the change of the ``mcp_auth.*`` counters since ``before`` equals ``expected``
    (names without ``wasmcustom.``); fails with the last change seen after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        delta = filter_delta(read(envoy), before, ignore_jwks)
        if delta == expected:
            return delta
        if time.monotonic() > deadline:
            raise AssertionError(f"counter change {delta}, expected {expected}")
        time.sleep(0.02)


def wait_value(envoy, name: str, predicate, timeout: float = 3.0):
    """Polls one counter (name without ``wasmcustom.``) until ``predicate(value)``; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = read(envoy)[name]
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} = {value} after {timeout}s")
        time.sleep(0.02)
