"""Several issuers (`providers`, issue 12) through Envoy, with two real dev authorization servers.

Two `authserver/server.js` processes run on free ports with different issuers (`…/realms/alpha`
and `…/realms/beta`) and different signing keys (each its own key directory). The filter knows
alpha by discovery alone (`discovery: {cluster}`: it reads alpha's
`<issuer>/.well-known/openid-configuration` and fetches the `jwks_uri` named there) and beta by an
explicit `jwks.uri`, each through its own cluster. User eitan signs in at both (code flow with
PKCE, `helpers/authserver_tokens.mjs` against the running servers). Then:
  * each server's token reaches the upstream;
  * a token signed with alpha's key but claiming beta's issuer never does: under alpha's kid,
    beta's set lacks the kid (401 `unknown_key`, after one refetch of beta's set alone); under
    beta's kid, beta's key does not verify it (401 `bad_signature`);
  * a token of an issuer no provider names is refused (401 `bad_issuer`) without a key fetch;
  * the metadata document lists both issuers (its `authorization_servers` left unconfigured).
Alpha's private key is read from its key directory, which this test created.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

import envoy_config
from envoy_config import REPO_ROOT
from helpers import counters
from helpers.asserts import assert_allowed, assert_invalid_token, assert_not_forwarded
from helpers.envoy_proc import stop_process
from helpers.http import wait_for
from helpers.ports import free_port
from helpers.tokens import mint

CLUSTER_B = "authorization_server_b"
ALPHA_PATH = "/realms/alpha"
BETA_PATH = "/realms/beta"


def node_binary() -> str:
    out = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "node.sh")], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def b64int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def decode(token: str) -> tuple[dict, dict]:
    def part(s: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    header, payload, _ = token.split(".")
    return part(header), part(payload)


class AuthServer:
    """One `authserver/server.js` process with its own issuer and key directory."""

    def __init__(self, workdir, port: int, issuer: str, node: str):
        self.port, self.issuer = port, issuer
        self.data_dir = workdir / "data"
        self.log_path = workdir / "authserver.log"
        env = dict(os.environ, AUTH_PORT=str(port), AUTH_ISSUER=issuer, AUTH_DATA_DIR=str(self.data_dir))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([node, str(REPO_ROOT / "authserver" / "server.js")], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 30.0):
        import urllib.request
        deadline = time.monotonic() + timeout
        url = f"{self.issuer}/.well-known/openid-configuration"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"authserver exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url.replace("localhost", "127.0.0.1"), timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"authserver at {self.issuer} not ready: {self.log_path.read_text()[-2000:]}")

    def signing_key(self):
        """(kid, private key) of the RS256 key this server signs with."""
        jwks = json.loads((self.data_dir / "jwks.json").read_text())
        jwk = next(k for k in jwks["keys"] if k.get("use") == "sig")
        public = rsa.RSAPublicNumbers(b64int(jwk["e"]), b64int(jwk["n"]))
        private = rsa.RSAPrivateNumbers(
            b64int(jwk["p"]), b64int(jwk["q"]), b64int(jwk["d"]), b64int(jwk["dp"]),
            b64int(jwk["dq"]), b64int(jwk["qi"]), public).private_key()
        return jwk["kid"], private

    def token(self, user: str = "eitan") -> str:
        done = subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / "node.sh"), "run", "node",
             str(REPO_ROOT / "tests" / "helpers" / "authserver_tokens.mjs"), self.issuer, user],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{self.issuer} gave no token:\n{done.stderr[-2000:]}"
        return json.loads(done.stdout)["tokens"][user]["access_token"]

    def stop(self):
        stop_process(self.proc)
        self._log.close()


def plugin(beta_port: int) -> dict:
    """The shipped filter configuration with `providers` instead of the single issuer; the
    render moves `localhost:8080` (alpha) and `localhost:9000` onto the stack's ports."""
    shipped = envoy_config.plugin_config(envoy_config.load())
    for key in ("issuer", "audiences", "jwks", "mcp"):
        shipped.pop(key, None)
    shipped["resource_metadata"].pop("authorization_servers", None)
    shipped["required_scopes"] = []
    beta = f"http://localhost:{beta_port}{BETA_PATH}"
    shipped["providers"] = [
        {"issuer": f"http://localhost:8080{ALPHA_PATH}", "audiences": ["echo-mcp-server"],
         "discovery": {"cluster": envoy_config.AUTH_CLUSTER}},
        {"issuer": beta, "audiences": ["echo-mcp-server"],
         "jwks": {"cluster": CLUSTER_B, "uri": f"{beta}/protocol/openid-connect/certs",
                  "min_refetch_interval_s": 1}},
    ]
    return shipped


@pytest.fixture(scope="module")
def setup(stack_factory, tmp_path_factory):
    """(stack, alpha, beta): Envoy in front of the recording upstream, both servers running."""
    node = node_binary()
    beta_port = free_port()
    stack = stack_factory("providers", start=False, plugin=plugin(beta_port))
    stack.config["static_resources"]["clusters"].append(envoy_config.static_cluster(CLUSTER_B, beta_port))
    alpha = AuthServer(tmp_path_factory.mktemp("alpha"), stack.auth_port,
                       f"http://localhost:{stack.auth_port}{ALPHA_PATH}", node)
    beta = AuthServer(tmp_path_factory.mktemp("beta"), beta_port, f"http://localhost:{beta_port}{BETA_PATH}", node)
    try:
        alpha.wait_ready()
        beta.wait_ready()
        # Not stack.start(): its stand-in JWKS server would take alpha's port.
        stack.upstream.start()
        stack.envoy.extra_args = ["--file-flush-interval-msec", "50"]  # the log is read below
        stack.envoy.start()
        wait_for(lambda: stack.stats()["mcp_auth.jwks_fetch.ok"] >= 2, timeout=20,
                 message=f"both key sets loaded\n{stack.envoy.log_tail()}")
        yield stack, alpha, beta
    finally:
        stack.stop()
        alpha.stop()
        beta.stop()


def test_the_configuration_is_the_providers_form(setup):
    stack, alpha, beta = setup
    providers = stack.plugin["providers"]
    assert [p["issuer"] for p in providers] == [alpha.issuer, beta.issuer]
    assert "jwks" not in providers[0] and "uri" not in providers[0]["discovery"]
    assert "issuer" not in stack.plugin and "jwks" not in stack.plugin


def test_a_token_of_each_server_reaches_the_upstream(setup):
    """Alpha's through discovery of the real dev server, beta's through its jwks.uri."""
    stack, alpha, beta = setup
    log = stack.envoy.log_text()
    assert f"key set version 1 loaded for issuer {alpha.issuer}:" in log, stack.envoy.log_tail()
    assert f"key set version 1 loaded for issuer {beta.issuer}:" in log, stack.envoy.log_tail()
    for server in (alpha, beta):
        token = server.token()
        assert decode(token)[1]["iss"] == server.issuer
        before = counters.read(stack.envoy)
        for _ in range(2):  # the second from the verdict cache
            assert_allowed(stack, stack.post_mcp(token))
        counters.wait_delta(stack.envoy, before, {"mcp_auth.allowed": 2})
    assert alpha.signing_key()[0] != beta.signing_key()[0], "the servers sign with different keys"


def test_alpha_key_on_a_token_claiming_beta_never_reaches_the_upstream(setup):
    stack, alpha, beta = setup
    _, claims = decode(alpha.token())
    claims["iss"] = beta.issuer
    kid_a, key_a = alpha.signing_key()
    kid_b, _ = beta.signing_key()
    def loads(server) -> int:
        return stack.envoy.log_text().count(f"loaded for issuer {server.issuer}:")

    loads_before = (loads(alpha), loads(beta))
    # Under alpha's kid: beta's set lacks it (a refetch of beta's set, then the refusal).
    under_a = mint(key_a, claims, alg="RS256", kid=kid_a)
    before = counters.read(stack.envoy)
    assert_invalid_token(stack, stack.post_mcp(under_a), "no matching signing key")
    counters.wait_delta(stack.envoy, before, {"mcp_auth.denied.unknown_key": 1})
    # The refetch asked beta alone.
    wait_for(lambda: loads(beta) > loads_before[1], timeout=5, message="beta's key set fetched again")
    assert loads(alpha) == loads_before[0]
    # Under beta's kid: beta's key does not verify alpha's signature.
    under_b = mint(key_a, claims, alg="RS256", kid=kid_b)
    before = counters.read(stack.envoy)
    for _ in range(2):
        assert_invalid_token(stack, stack.post_mcp(under_b), "invalid signature")
    counters.wait_delta(stack.envoy, before, {"mcp_auth.denied.bad_signature": 2})
    # The same claims under alpha's own issuer pass: the refusals were for the issuer swap.
    claims["iss"] = alpha.issuer
    assert_allowed(stack, stack.post_mcp(mint(key_a, claims, alg="RS256", kid=kid_a)))


def test_a_token_of_an_unconfigured_issuer_is_refused_without_a_fetch(setup):
    stack, alpha, _ = setup
    _, claims = decode(alpha.token())
    kid_a, key_a = alpha.signing_key()
    fetches = {k: v for k, v in stack.stats().items() if k.startswith("mcp_auth.jwks_fetch")}
    for iss in (alpha.issuer.replace("alpha", "gamma"), alpha.issuer + "/"):
        claims["iss"] = iss
        before = counters.read(stack.envoy)
        response = stack.post_mcp(mint(key_a, claims, alg="RS256", kid=kid_a))
        assert_invalid_token(stack, response, "invalid issuer")
        assert_not_forwarded(stack, response)
        counters.wait_delta(stack.envoy, before, {"mcp_auth.denied.bad_issuer": 1})
    time.sleep(0.3)
    assert {k: v for k, v in stack.stats().items() if k.startswith("mcp_auth.jwks_fetch")} == fetches


def test_the_metadata_document_lists_both_issuers(setup):
    stack, alpha, beta = setup
    response = stack.request("GET", stack.metadata_path)
    assert response.status == 200, response
    document = response.json()
    assert document["authorization_servers"] == [alpha.issuer, beta.issuer]
    assert document["resource"] == stack.resource
