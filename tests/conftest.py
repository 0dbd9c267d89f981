"""Shared fixtures: keys, the Envoy stacks, and Envoy log tails on failures."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import envoy_config  # noqa: E402
from helpers.envoy_proc import envoy_binary, live_envoys  # noqa: E402
from helpers.keys import keyring  # noqa: E402
from helpers.stack import Stack  # noqa: E402

# tests/e2e/ holds the node end-to-end suite (another tool) and tests/conformance/ the npm packages
# of the transparency test: pytest must not wander into them.
collect_ignore = ["e2e", "conformance"]


@pytest.fixture(scope="session")
def keys():
    return keyring()


@pytest.fixture(scope="session")
def wasm_path() -> Path:
    path = envoy_config.WASM_PATH
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make wasm` first (make integration does)")
    return path


@pytest.fixture(scope="session")
def envoy_bin() -> str:
    return envoy_binary()


@pytest.fixture(scope="session")
def stack_factory(tmp_path_factory, wasm_path, envoy_bin):
    """``stack_factory(name, **Stack kwargs)`` -> started Stack, stopped at session end
    (module fixtures stop theirs earlier with ``stack.stop()``)."""
    stacks = []

    def make(name: str, start: bool = True, wait_for_keys: bool = True, **kwargs) -> Stack:
        stack = Stack(tmp_path_factory.mktemp(name), name=name, **kwargs)
        stacks.append(stack)
        if start:
            stack.start(wait_for_keys=wait_for_keys)
        return stack

    yield make
    for stack in stacks:
        stack.stop()


@pytest.fixture(scope="session")
def default_stack(stack_factory, keys):
    """The shipped envoy.yaml moved onto free ports, nothing else changed; the JWKS publishes every
    test key (Keycloak's enc + RS256 sig keys first, then RSA without alg, P-256, P-384, Ed25519).
    Shared by the modules that do not change the key set or the configuration."""
    return stack_factory("default", keys=keys.all_published())


# A second configuration exercising the optional keys (shared by test_scopes and test_cors).
SCOPED_OVERRIDES = {
    "audiences": ["other-api", "echo-mcp-server"],
    "required_scopes": ["mcp:tools", "mcp:write"],
    "allowed_algorithms": ["RS256", "ES256"],
    "max_token_bytes": 4096,
    "clock_skew_s": 5,
    "resource_metadata.resource": "http://localhost:{listen}/api/mcp",
    "resource_metadata.resource_documentation": "https://docs.example.com/mcp",
}
SCOPED_UNSET = ["resource_metadata.scopes_supported", "resource_metadata.bearer_methods_supported",
                "resource_metadata.resource_name", "forward_token", "claims_to_headers", "mcp"]


@pytest.fixture(scope="session")
def scoped(stack_factory, keys):
    """required_scopes, allowed_algorithms, small max_token_bytes and skew, resource /api/mcp,
    optional metadata fields removed (defaults), forward_token and claims_to_headers removed."""
    return stack_factory("scoped", keys=keys.all_published(), overrides=SCOPED_OVERRIDES, unset=SCOPED_UNSET)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        # The Envoys this test used (its Stack fixtures), else every running one.
        used = [v.envoy for v in getattr(item, "funcargs", {}).values() if isinstance(v, Stack)]
        for envoy in used or live_envoys():
            report.sections.append((f"envoy {envoy.name}", envoy.log_tail(40)))
