"""Invalid plugin configuration: Envoy must refuse it, and the log must name the offending field."""
import re
import time

import pytest

from envoy_config import UNSET

_PROVIDER = {"issuer": "http://localhost:8080/realms/my-realm", "audiences": ["echo-mcp-server"],
             "discovery": {"cluster": "authorization_server"}}
_NO_SINGLE_FORM = {"issuer": UNSET, "audiences": UNSET, "jwks": UNSET}

CASES = {
    # id: (overrides, field the log must name)
    "unknown_top_level_key": ({"bogus_option": 1}, "bogus_option"),
    "unknown_nested_key": ({"jwks.refresh_interval": 5}, "refresh_interval"),
    "unknown_metadata_key": ({"resource_metadata.colour": "blue"}, "colour"),
    "wrong_type_int": ({"clock_skew_s": "sixty"}, "clock_skew_s"),
    "wrong_type_nested_int": ({"jwks.timeout_ms": "fast"}, "timeout_ms"),
    "wrong_type_list": ({"audiences": "echo-mcp-server"}, "audiences"),
    "wrong_type_bool": ({"forward_token": "yes"}, "forward_token"),
    "wrong_type_map_value": ({"claims_to_headers": {"sub": 5}}, "claims_to_headers"),
    "missing_issuer": ({"issuer": UNSET}, "issuer"),
    "missing_audiences": ({"audiences": UNSET}, "audiences"),
    "empty_audiences": ({"audiences": []}, "audiences"),
    "missing_jwks_cluster": ({"jwks.cluster": UNSET}, "cluster"),
    # Without jwks.uri the key set is discovered from the issuer, which must then be a URL.
    "no_jwks_uri_and_issuer_not_a_url": ({"jwks.uri": UNSET, "issuer": "my-realm"}, "issuer"),
    "jwks_uri_not_absolute_http": ({"jwks.uri": "/realms/my-realm/certs"}, "uri"),
    "missing_resource": ({"resource_metadata.resource": UNSET}, "resource"),
    # authorization_servers may be left out (every provider's issuer is listed), not empty.
    "empty_authorization_servers": ({"resource_metadata.authorization_servers": []}, "authorization_servers"),
    "unsupported_allowed_algorithm": ({"allowed_algorithms": ["RS256", "HS256"]}, "allowed_algorithms"),
    # Several issuers (`providers`): errors name the provider's path.
    "providers_beside_top_level_issuer": ({"providers": [_PROVIDER]}, "issuer"),
    "providers_empty": ({"providers": [], **_NO_SINGLE_FORM}, "providers"),
    "providers_same_issuer_twice": ({"providers": [_PROVIDER, _PROVIDER], **_NO_SINGLE_FORM},
                                    "providers[1].issuer"),
    "providers_jwks_and_discovery": (
        {"providers": [dict(_PROVIDER, jwks={"cluster": "authorization_server"})], **_NO_SINGLE_FORM},
        "providers[0].discovery"),
    "providers_bad_timeout": (
        {"providers": [dict(_PROVIDER, discovery={"cluster": "authorization_server", "timeout_ms": 1})],
         **_NO_SINGLE_FORM},
        "providers[0].discovery.timeout_ms"),
}


def refused(stack, timeout: float = 20.0):
    """(True, how) when Envoy exits non-zero, or runs without a working mcp listener."""
    envoy = stack.envoy
    envoy.spawn()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = envoy.proc.poll()
            if rc is not None:
                return rc != 0, f"exit code {rc}"
            try:
                status, body = envoy.admin_get("/ready", timeout=0.5)
                if status == 200 and body.strip() == "LIVE":
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            return True, "running but never ready"
        rc = envoy.wait_exit(timeout=0.5)
        if rc is not None:
            return rc != 0, f"exit code {rc}"
        _, listeners = envoy.admin_get("/listeners")
        if "mcp::" not in listeners:
            return True, "running without the mcp listener"
        return False, f"running with the mcp listener: {listeners.strip()}"
    finally:
        envoy.stop()


def names_field(log: str, field: str) -> bool:
    pattern = re.compile(r"(?<![A-Za-z0-9_])" + re.escape(field) + r"(?![A-Za-z0-9_])")
    return any(pattern.search(line) for line in log.splitlines()
               if "mcp_auth" in line or "wasm" in line.lower())


@pytest.mark.parametrize("case", list(CASES))
def test_invalid_config_is_refused(stack_factory, keys, case):
    overrides, field = CASES[case]
    stack = stack_factory(f"bad-{case}", start=False, keys=keys.keycloak(), overrides=overrides)
    stack.jwks.launch()
    stack.upstream.start()
    start = time.monotonic()
    ok, how = refused(stack)
    log = stack.envoy.log_text()
    assert ok, f"Envoy accepted an invalid config ({how})\n{stack.envoy.log_tail()}"
    assert names_field(log, field), f"log does not name {field!r} ({how}, {time.monotonic() - start:.1f}s)\n" \
                                    f"{stack.envoy.log_tail()}"


def test_configuration_that_is_not_json_is_refused(stack_factory, keys):
    stack = stack_factory("bad-not-json", start=False, keys=keys.keycloak(), plugin="{ this is not json")
    ok, how = refused(stack)
    assert ok, f"Envoy accepted a non-JSON plugin configuration ({how})\n{stack.envoy.log_tail()}"


def test_minimal_configuration_is_accepted(stack_factory, keys):
    """Only the required keys: everything else has a default."""
    stack = stack_factory("minimal", start=False, keys=keys.keycloak(), plugin={
        "issuer": "http://localhost:8080/realms/my-realm",
        "audiences": ["echo-mcp-server"],
        "jwks": {"cluster": "authorization_server",
                 "uri": "http://localhost:8080/realms/my-realm/protocol/openid-connect/certs"},
        "resource_metadata": {"resource": "http://localhost:9000/mcp",
                              "authorization_servers": ["http://localhost:8080/realms/my-realm"]},
    })
    try:
        stack.start()
        resp = stack.request("GET", "/.well-known/oauth-protected-resource/mcp")
        assert resp.status == 200, resp
        assert resp.json() == {
            "resource": f"http://localhost:{stack.listen_port}/mcp",
            "authorization_servers": [f"http://localhost:{stack.auth_port}/realms/my-realm"],
            "bearer_methods_supported": ["header"],
        }
        from helpers.asserts import assert_allowed
        from helpers.tokens import mint
        seen = assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims())))
        assert seen.header_all("authorization") == []
    finally:
        stack.stop()
