"""`token_types` (issue 11) with the dev authorization server's real tokens, through Envoy.

The dev server (authserver/, oidc-provider) is started once for the module by
`helpers/authserver_tokens.mjs` on a free port; user eitan signs in through the code flow with
PKCE and the module gets his real access token and ID token, plus the server's public key set,
which the test JWKS server publishes (with the suite's RS256 key, for hand-made tokens).

What the real tokens look like (checked below, so a change of the dev server shows up here):
the access token has header `typ: at+jwt` and payload `typ: Bearer`, `aud: echo-mcp-server`; the
ID token has no `typ` anywhere and `aud: mcp-client` (the client id). So under the default
`token_types` (header typ absent, JWT or at+jwt; payload typ, when present, Bearer) the ID token
is told apart only by its audience. Three Envoys:
  * `typed`: audiences also name the client id (the misconfiguration that makes an ID token
    audience-valid) and `token_types: {"header": ["at+jwt"], "header_required": true}` (RFC 9068
    typing, which this server's access tokens carry): the ID token is refused as not an access
    token, the access token passes.
  * `defaults`: the same audiences, default types: a Keycloak-shaped ID token (payload typ `ID`),
    a header typ `JOSE` and a payload typ `Refresh` are refused; the untyped real ID token
    passes (the documented limit of the defaults).
  * `widened`: default audience, `token_types` widened to JOSE and Refresh: those pass, `ID`
    still does not, and the real ID token is refused for its audience.
"""
from __future__ import annotations

import base64
import json
import subprocess

import pytest

from envoy_config import REPO_ROOT
from helpers import counters
from helpers.asserts import assert_allowed, assert_invalid_token
from helpers.ports import free_port

AUDIENCES = ["echo-mcp-server", "mcp-client"]


def decode(token: str) -> tuple[dict, dict]:
    def part(s: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    header, payload, _ = token.split(".")
    return part(header), part(payload)


@pytest.fixture(scope="module")
def real():
    """{issuer, jwks, tokens: {eitan: {access_token, id_token, ...}}} from the dev server."""
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "node.sh"), "run", "node",
         str(REPO_ROOT / "tests" / "helpers" / "authserver_tokens.mjs"), str(free_port()), "eitan"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the dev authorization server gave no tokens:\n{done.stderr[-2000:]}"
    return json.loads(done.stdout)


def make_stack(stack_factory, keys, real, name, **overrides):
    published = real["jwks"]["keys"] + [keys.sig.jwk()]
    base = {"issuer": real["issuer"], "resource_metadata.authorization_servers": [real["issuer"]]}
    # Token checks alone: the shipped MCP policy and its required scope are not what these
    # tests are about (a token type is judged before either).
    base["required_scopes"] = []
    return stack_factory(name, keys=published, overrides={**base, **overrides}, unset=("mcp",))


@pytest.fixture(scope="module")
def typed(stack_factory, keys, real):
    stack = make_stack(stack_factory, keys, real, "types-typed", audiences=AUDIENCES,
                       token_types={"header": ["at+jwt"], "header_required": True})
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def defaults(stack_factory, keys, real):
    stack = make_stack(stack_factory, keys, real, "types-defaults", audiences=AUDIENCES)
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def widened(stack_factory, keys, real):
    stack = make_stack(stack_factory, keys, real, "types-widened",
                       token_types={"header": ["JWT", "at+jwt", "application/JOSE"],
                                    "payload": ["Bearer", "Refresh"]})
    yield stack
    stack.stop()


def refused_as(stack, token: str, reason: str, description: str):
    """Twice (the second answer may come from the verdict cache), counted twice."""
    before = counters.read(stack.envoy)
    for _ in range(2):
        assert_invalid_token(stack, stack.post_mcp(token), description)
    counters.wait_delta(stack.envoy, before, {f"mcp_auth.denied.{reason}": 2})


def allowed(stack, token: str, subject: str):
    before = counters.read(stack.envoy)
    for _ in range(2):
        seen = assert_allowed(stack, stack.post_mcp(token))
        assert seen.header("x-mcp-subject") == subject
    counters.wait_delta(stack.envoy, before, {"mcp_auth.allowed": 2})


def keycloak_typed(stack, keys, header_typ="JWT", **claims):
    return stack.token(keys.sig, stack.claims(**claims), header={"typ": header_typ})


def test_the_real_tokens_are_typed_as_described(real):
    access_header, access = decode(real["tokens"]["eitan"]["access_token"])
    id_header, id_claims = decode(real["tokens"]["eitan"]["id_token"])
    assert access_header["typ"] == "at+jwt" and access["typ"] == "Bearer", (access_header, access)
    assert access["aud"] == "echo-mcp-server"
    assert "typ" not in id_header and "typ" not in id_claims, (id_header, id_claims)
    assert id_claims["aud"] == "mcp-client" and id_claims["sub"] == access["sub"]
    assert id_claims["iss"] == access["iss"] == real["issuer"]


def test_typed_refuses_the_real_id_token(typed, real):
    refused_as(typed, real["tokens"]["eitan"]["id_token"], "wrong_token_type", "not an access token")


def test_typed_accepts_the_real_access_token(typed, real):
    token = real["tokens"]["eitan"]["access_token"]
    allowed(typed, token, decode(token)[1]["sub"])


def test_typed_refuses_a_keycloak_access_token_typed_jwt(typed, keys):
    # header_required with at+jwt only: Keycloak's `typ: JWT` access tokens no longer pass.
    refused_as(typed, keycloak_typed(typed, keys), "wrong_token_type", "not an access token")


def test_defaults_accept_the_real_access_token(defaults, real):
    token = real["tokens"]["eitan"]["access_token"]
    allowed(defaults, token, decode(token)[1]["sub"])


def test_defaults_refuse_a_keycloak_id_token(defaults, keys):
    token = keycloak_typed(defaults, keys, typ="ID", aud="mcp-client", nonce="n-0S6")
    refused_as(defaults, token, "wrong_token_type", "not an access token")


@pytest.mark.parametrize("header_typ, payload_typ", [("JOSE", "Bearer"), ("JWT", "Refresh"),
                                                     ("logout+jwt", "Bearer"), ("JWT", "Offline")])
def test_defaults_refuse_foreign_types(defaults, keys, header_typ, payload_typ):
    token = keycloak_typed(defaults, keys, header_typ=header_typ, typ=payload_typ)
    refused_as(defaults, token, "wrong_token_type", "not an access token")


def test_defaults_accept_keycloak_shaped_access_tokens(defaults, keys):
    # Header typ compared without case and `application/`; payload typ exact.
    for header_typ in ("JWT", "jwt", "application/at+jwt"):
        token = keycloak_typed(defaults, keys, header_typ=header_typ, sub="kc-user")
        allowed(defaults, token, "kc-user")


def test_defaults_let_an_untyped_id_token_through_when_its_audience_is_configured(defaults, real):
    """The limit of the defaults, documented in README.md (Security): an ID token without any
    `typ` (oidc-provider, and so the dev server) looks like an access token; only its audience
    (the client id) tells it apart. If this starts failing, the README must change with it."""
    token = real["tokens"]["eitan"]["id_token"]
    allowed(defaults, token, decode(token)[1]["sub"])


def test_widened_types_accept_jose_and_refresh(widened, keys):
    allowed(widened, keycloak_typed(widened, keys, header_typ="JOSE", sub="jose-user"), "jose-user")
    allowed(widened, keycloak_typed(widened, keys, typ="Refresh", sub="refresh-user"), "refresh-user")
    allowed(widened, keycloak_typed(widened, keys, header_typ="at+jwt", sub="at-user"), "at-user")


def test_widened_types_still_refuse_others(widened, keys):
    refused_as(widened, keycloak_typed(widened, keys, typ="ID"), "wrong_token_type", "not an access token")
    refused_as(widened, keycloak_typed(widened, keys, header_typ="dpop+jwt"), "wrong_token_type",
               "not an access token")


def test_default_audience_refuses_the_real_id_token(widened, real):
    refused_as(widened, real["tokens"]["eitan"]["id_token"], "bad_audience", "invalid audience")
