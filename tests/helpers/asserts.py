"""Assertions shared by the test modules, each one a clause of the behaviour README.md describes."""
from __future__ import annotations

import re
from contextlib import contextmanager

from .http import Response, parse_challenge


def _ctx(resp: Response) -> str:
    return f"\n{resp!r}"


def assert_error_response(resp: Response, status: int, error: str, description: str | None = None):
    """Status, `Content-Type: application/json`, `Cache-Control: no-store`, body {error, error_description}."""
    assert resp.status == status, f"expected {status}{_ctx(resp)}"
    ctype = resp.header("content-type") or ""
    assert ctype.split(";")[0].strip() == "application/json", _ctx(resp)
    assert resp.header("cache-control") == "no-store", _ctx(resp)
    body = resp.json()
    assert isinstance(body, dict), _ctx(resp)
    assert body.get("error") == error, _ctx(resp)
    assert isinstance(body.get("error_description"), str) and body["error_description"], _ctx(resp)
    if description is not None:
        assert body["error_description"] == description, _ctx(resp)
    return body


def single_challenge(resp: Response) -> str:
    values = resp.header_all("www-authenticate")
    assert len(values) == 1, f"expected exactly one WWW-Authenticate{_ctx(resp)}"
    return values[0]


def assert_missing_token(stack, resp: Response, scope: str | None = None):
    """401 `Bearer resource_metadata="M"` (+ `, scope="a b"` when required_scopes are configured).

    ``scope`` defaults to the stack's own required_scopes (the shipped envoy.yaml requires mcp:tools)."""
    assert_error_response(resp, 401, "unauthorized")
    if scope is None:
        scope = " ".join(getattr(stack, "plugin", {}).get("required_scopes", []))
    expected = f'Bearer resource_metadata="{stack.metadata_url}"'
    if scope:
        expected += f', scope="{scope}"'
    assert single_challenge(resp) == expected, _ctx(resp)
    assert_not_forwarded(stack, resp)


def assert_invalid_request(stack, resp: Response):
    """400 `Bearer error="invalid_request", error_description="...", resource_metadata="M"`."""
    body = assert_error_response(resp, 400, "invalid_request")
    value = single_challenge(resp)
    pattern = (r'^Bearer error="invalid_request", error_description="([^"]+)", resource_metadata="'
               + re.escape(stack.metadata_url) + r'"$')
    m = re.match(pattern, value)
    assert m, f"WWW-Authenticate {value!r} does not match the contract{_ctx(resp)}"
    assert body["error_description"] == m.group(1), _ctx(resp)
    assert_not_forwarded(stack, resp)


def assert_invalid_token(stack, resp: Response, description: str, exact: bool = True):
    """401 `Bearer error="invalid_token", error_description="<description>", resource_metadata="M"`.

    ``exact=False`` checks the attributes only (used where required_scopes might add a scope)."""
    assert_error_response(resp, 401, "invalid_token", description)
    value = single_challenge(resp)
    if exact:
        expected = (f'Bearer error="invalid_token", error_description="{description}", '
                    f'resource_metadata="{stack.metadata_url}"')
        assert value == expected, _ctx(resp)
    else:
        scheme, params = parse_challenge(value)
        assert scheme == "Bearer", _ctx(resp)
        assert params.get("error") == "invalid_token", _ctx(resp)
        assert params.get("error_description") == description, _ctx(resp)
        assert params.get("resource_metadata") == stack.metadata_url, _ctx(resp)
    assert_not_forwarded(stack, resp)


def assert_insufficient_scope(stack, resp: Response, scope: str):
    """403 `Bearer error="insufficient_scope", scope="a b", error_description="insufficient scope", resource_metadata="M"`."""
    assert_error_response(resp, 403, "insufficient_scope", "insufficient scope")
    expected = (f'Bearer error="insufficient_scope", scope="{scope}", error_description="insufficient scope", '
                f'resource_metadata="{stack.metadata_url}"')
    assert single_challenge(resp) == expected, _ctx(resp)
    assert_not_forwarded(stack, resp)


def assert_unavailable(stack, resp: Response):
    """503 with `Retry-After: N`, no WWW-Authenticate, body temporarily_unavailable."""
    assert_error_response(resp, 503, "temporarily_unavailable")
    retry = resp.header_all("retry-after")
    assert len(retry) == 1 and retry[0].strip().isdigit() and int(retry[0]) >= 1, _ctx(resp)
    assert resp.header("www-authenticate") is None, _ctx(resp)
    assert_not_forwarded(stack, resp)


def assert_allowed(stack, resp: Response):
    """Reached the upstream and came back 200 from it."""
    assert resp.status == 200, _ctx(resp)
    assert resp.header("x-upstream") == "echo", f"response did not come from the upstream{_ctx(resp)}"
    seen = stack.reached_upstream(resp)
    assert seen is not None, f"upstream did not see the request{_ctx(resp)}"
    return seen


def assert_not_forwarded(stack, resp: Response):
    assert stack.reached_upstream(resp) is None, f"a denied request reached the upstream{_ctx(resp)}"
    assert resp.header("x-upstream") is None, _ctx(resp)


class StatDelta:
    value: dict

    def __init__(self):
        self.value = {}


@contextmanager
def stat_delta(stack, ignore_jwks: bool = True):
    """Collect the change of every ``mcp_auth.*`` counter over the block (names without `wasmcustom.`).

    ``ignore_jwks`` drops the jwks_fetch.* counters, which background refreshes may move."""
    result = StatDelta()
    before = stack.stats()
    yield result
    after = stack.stats()
    delta = after.delta(before)
    result.value = {k: v for k, v in delta.items()
                    if k.startswith("mcp_auth.") and not (ignore_jwks and k.startswith("mcp_auth.jwks_fetch."))}
