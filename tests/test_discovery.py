"""Discovery: with `issuer` and no `jwks.uri`, Envoy's filter finds the key set through the
issuer's metadata (OpenID Connect's `<issuer>/.well-known/openid-configuration`, then RFC 8414's
`/.well-known/oauth-authorization-server<issuer path>` after a 404), refuses a document naming
another issuer, and keeps its last good keys when a later discovery fails."""
import pytest

from helpers.asserts import assert_allowed, assert_unavailable
from helpers.http import wait_for
from helpers.tokens import mint

KEYS_PATH = "/realms/my-realm/protocol/openid-connect/certs"
OPENID_PATH = "/realms/my-realm/.well-known/openid-configuration"
OAUTH_PATH = "/.well-known/oauth-authorization-server/realms/my-realm"


def discovery_stack(stack_factory, keys, name, documents, **kwargs):
    """A stack whose filter has no jwks.uri; the test JWKS server serves `documents`
    ({path: document-with-{issuer}-and-{auth}-placeholders}) and the keys at KEYS_PATH."""
    stack = stack_factory(name, keys=keys.keycloak(), unset=["jwks.uri"], start=False, **kwargs)
    issuer = stack.issuer
    assert "jwks" in stack.plugin and "uri" not in stack.plugin["jwks"]
    for path, doc in documents.items():
        stack.jwks.metadata_documents[path] = {
            k: v.replace("{issuer}", issuer).replace("{auth}", f"localhost:{stack.auth_port}")
            for k, v in doc.items()}
    # The log file flushed promptly: the refusals' log lines are checked.
    stack.envoy.extra_args = ["--file-flush-interval-msec", "50"]
    stack.start(wait_for_keys=False)
    return stack


def paths_asked(stack):
    return [r["path"] for r in stack.jwks.requests]


def good_document():
    return {"issuer": "{issuer}", "jwks_uri": "http://{auth}" + KEYS_PATH,
            "token_endpoint": "http://{auth}/token"}


def test_openid_configuration_names_the_key_set(stack_factory, keys):
    stack = discovery_stack(stack_factory, keys, "discovery-openid", {OPENID_PATH: good_document()},
                            cache_control="max-age=1",
                            overrides={"jwks.min_cache_duration_s": 1})
    try:
        assert stack.wait_for_keys(), stack.envoy.log_tail()
        assert paths_asked(stack)[:2] == [OPENID_PATH, KEYS_PATH]
        assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims())))
        # Refreshed on the key set's schedule: discovery again, then the keys.
        wait_for(lambda: paths_asked(stack).count(OPENID_PATH) >= 2, timeout=5,
                 message="a second discovery")
        # Now the document names another issuer: refused, and the last good keys are kept.
        stack.jwks.metadata_documents[OPENID_PATH] = dict(
            stack.jwks.metadata_documents[OPENID_PATH], issuer="http://elsewhere.example/realms/my-realm")
        failed = stack.stats()["mcp_auth.jwks_fetch.failed"]
        wait_for(lambda: stack.stats()["mcp_auth.jwks_fetch.failed"] > failed, timeout=5,
                 message="a failed discovery")
        assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims())))
    finally:
        stack.stop()


def test_rfc8414_form_after_a_404(stack_factory, keys):
    stack = discovery_stack(stack_factory, keys, "discovery-rfc8414", {OAUTH_PATH: good_document()})
    try:
        assert stack.wait_for_keys(), stack.envoy.log_tail()
        assert paths_asked(stack)[:3] == [OPENID_PATH, OAUTH_PATH, KEYS_PATH]
        assert_allowed(stack, stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims())))
        assert stack.stats()["mcp_auth.jwks_fetch.failed"] == 0
    finally:
        stack.stop()


@pytest.mark.parametrize("document, logged", [
    ({"issuer": "{issuer}/", "jwks_uri": "http://{auth}" + KEYS_PATH}, "is not the configured"),
    ({"issuer": "{issuer}", "jwks_uri": "http://other.example" + KEYS_PATH}, "is not on the issuer's"),
])
def test_a_document_of_another_issuer_or_a_key_set_elsewhere_is_refused(stack_factory, keys, document,
                                                                        logged):
    stack = discovery_stack(stack_factory, keys, "discovery-refused", {OPENID_PATH: document})
    try:
        wait_for(lambda: stack.stats()["mcp_auth.jwks_fetch.failed"] >= 1, timeout=10,
                 message="a failed discovery")
        assert KEYS_PATH not in paths_asked(stack), "the key set was fetched from a refused document"
        assert_unavailable(stack, stack.request("GET", "/mcp", token=mint(keys.sig, stack.claims())))
        assert stack.stats()["mcp_auth.jwks_fetch.ok"] == 0
        wait_for(lambda: logged in stack.envoy.log_text(), timeout=5, message=f"log line {logged!r}")
    finally:
        stack.stop()
