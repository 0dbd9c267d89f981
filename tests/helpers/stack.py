"""One test topology: JWKS server + recording upstream + Envoy rendered from the repo's envoy.yaml."""
from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import envoy_config

from . import http
from .envoy_proc import Envoy
from .keys import Key
from .ports import free_ports
from .servers import JwksServer, Upstream
from .tokens import keycloak_claims, mint


def metadata_url_for(resource: str) -> str:
    """Contract: scheme://authority of resource + /.well-known/oauth-protected-resource + path of resource."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path}"


class Stack:
    def __init__(self, workdir: Path, keys=(), overrides=None, unset=(), concurrency: int = 1,
                 jwks_mode: str = "ok", cache_control: str | None = None, name: str = "envoy",
                 plugin=None, wasm=None, envoy_yaml=None):
        self.listen_port, self.admin_port, self.upstream_port, self.auth_port = free_ports(4)
        overrides = self._fill(overrides)
        self.jwks = JwksServer(self.auth_port, keys, cache_control=cache_control, mode=jwks_mode)
        self.upstream = Upstream(self.upstream_port)
        self.config = envoy_config.render(self.listen_port, self.admin_port, self.upstream_port,
                                          self.auth_port, wasm=wasm, overrides=overrides, unset=unset,
                                          plugin=plugin, envoy_yaml=envoy_yaml)
        self.envoy = Envoy(self.config, workdir, concurrency=concurrency, name=name)
        try:
            self.plugin = envoy_config.plugin_config(self.config)
        except ValueError:  # verbatim invalid JSON
            self.plugin = {}

    def _fill(self, value):
        """Replace ``{listen}`` / ``{auth}`` in override strings with this stack's ports."""
        if isinstance(value, str):
            return value.replace("{listen}", str(self.listen_port)).replace("{auth}", str(self.auth_port))
        if isinstance(value, dict):
            return {k: self._fill(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._fill(v) for v in value)
        return value

    # -- lifecycle -------------------------------------------------------
    def start(self, wait_for_keys: bool = True, timeout: float = 60.0):
        self.upstream.start()
        self.jwks.launch()
        self.envoy.start(timeout=timeout)
        if wait_for_keys and self.jwks.mode == "ok":
            self.wait_for_keys()
        return self

    def wait_for_keys(self, timeout: float = 15.0) -> bool:
        """Best effort: wait until the filter reports a successful key-set fetch."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stats()["mcp_auth.jwks_fetch.ok"] >= 1:
                return True
            if not self.envoy.running:
                return False
            time.sleep(0.05)
        return False

    def stop(self):
        self.envoy.stop()
        self.jwks.stop()
        self.upstream.stop()

    # -- configuration facts ---------------------------------------------
    @property
    def issuer(self) -> str:
        return self.plugin["issuer"]

    @property
    def resource(self) -> str:
        return self.plugin["resource_metadata"]["resource"]

    @property
    def metadata_url(self) -> str:
        return metadata_url_for(self.resource)

    @property
    def metadata_path(self) -> str:
        return urlsplit(self.metadata_url).path

    # -- traffic ---------------------------------------------------------
    def claims(self, **overrides) -> dict:
        return keycloak_claims(self.issuer, **overrides)

    def token(self, key: Key, claims: dict | None = None, **kwargs) -> str:
        return mint(key, claims if claims is not None else self.claims(), **kwargs)

    def request(self, method: str = "GET", path: str = "/mcp", token: str | None = None,
                headers=None, scheme: str = "Bearer", **kwargs) -> http.Response:
        hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        if token is not None:
            hdrs.append(("authorization", f"{scheme} {token}"))
        return http.request(self.listen_port, method, path, headers=hdrs, **kwargs)

    def post_mcp(self, token: str | None = None, headers=None, **kwargs) -> http.Response:
        body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
        hdrs = [("content-type", "application/json"), ("accept", "application/json, text/event-stream")]
        hdrs += list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        return self.request("POST", "/mcp", token=token, headers=hdrs, body=body, **kwargs)

    def stats(self):
        return self.envoy.stats()

    def reached_upstream(self, response: http.Response):
        return self.upstream.find(response.test_id)
