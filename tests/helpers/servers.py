"""In-process HTTP servers: a controllable JWKS endpoint and a recording upstream."""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .keys import Key, jwks_document


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        owner = self.server.owner
        with owner._conn_lock:
            owner._connections.add(self.connection)

    def finish(self):
        owner = self.server.owner
        with owner._conn_lock:
            owner._connections.discard(self.connection)
        super().finish()

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, headers: dict | None = None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


class _Background:
    """Runs a _Server in a daemon thread; can be stopped and restarted on the same port."""

    handler = _Quiet

    def __init__(self, port: int):
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conn_lock = threading.Lock()
        self._connections: set = set()

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self):
        if self._server is not None:
            return self
        deadline = time.monotonic() + 5
        while True:
            try:
                server = _Server(("127.0.0.1", self.port), self.handler)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=f"{type(self).__name__}:{self.port}")
        self._thread.start()
        return self

    def stop(self):
        """Close the listening socket (new connections are refused) and every open connection
        (Envoy keeps upstream connections alive: a server that merely stops accepting is not down)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._conn_lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _JwksHandler(_Quiet):
    def do_GET(self):
        owner: JwksServer = self.server.owner
        mode = owner._record(self)  # the mode this request is recorded (and answered) in
        if mode == "down":  # a request that raced the shutdown: drop it like a dead server
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        path = self.path.split("?")[0]
        if path in owner.metadata_documents:  # discovery: the issuer's metadata, in any mode
            self._send(200, json.dumps(owner.metadata_documents[path]).encode(),
                       {"Content-Type": "application/json"})
            return
        if path.startswith("/.well-known/") or "/.well-known/" in path:
            self._send(404, b'{"error":"not_found"}', {"Content-Type": "application/json"})
            return
        if mode == "slow":
            time.sleep(owner.slow_seconds)
            self._send_keys(owner)
        elif mode == "500":
            self._send(500, b'{"error":"internal"}', {"Content-Type": "application/json"})
        elif mode == "garbage":
            self._send(200, b"<html>this is not a key set {{{", {"Content-Type": "application/json"})
        elif mode == "empty":
            self._send(200, b'{"keys":[]}', owner._headers())
        elif mode == "oversized":
            doc = owner.document()
            # Pad with a junk key so the JSON stays valid but exceeds the byte limit.
            doc["keys"].append({"kid": "padding", "kty": "oct", "use": "sig", "k": "A" * owner.oversize})
            self._send(200, json.dumps(doc).encode(), owner._headers())
        else:  # ok
            self._send_keys(owner)

    def _send_keys(self, owner):
        self._send(200, json.dumps(owner.document()).encode(), owner._headers())


class JwksServer(_Background):
    """JWKS endpoint. Modes: ok, down, slow, 500, garbage, empty, oversized.

    ``down`` closes the listening socket (connection refused); any other mode re-opens it.
    ``fetch_count`` counts GET requests (every attempt the filter makes, whatever the mode).
    ``metadata_documents`` maps a path to an authorization-server metadata document served
    there (discovery); any other ``/.well-known/`` path answers 404; every other path the keys.
    """

    handler = _JwksHandler
    MODES = ("ok", "down", "slow", "500", "garbage", "empty", "oversized")

    def __init__(self, port: int, keys=(), cache_control: str | None = None, mode: str = "ok"):
        super().__init__(port)
        self._lock = threading.Lock()
        self.keys = list(keys)
        self.cache_control = cache_control
        self.slow_seconds = 10.0
        self.oversize = 300 * 1024
        self.extra_headers: dict = {}  # added to the ok/slow/empty/oversized responses
        self.requests: list[dict] = []
        self.metadata_documents: dict[str, dict] = {}
        assert mode in self.MODES, mode
        self.mode = mode

    def launch(self):
        """Start listening unless the initial mode is ``down``."""
        if self.mode != "down":
            self.start()
        return self

    # -- control ---------------------------------------------------------
    def set_keys(self, keys):
        with self._lock:
            self.keys = list(keys)

    def set_cache_control(self, value: str | None):
        self.cache_control = value

    def set_mode(self, mode: str):
        assert mode in self.MODES, mode
        self.mode = mode
        if mode == "down":
            self.stop()
        else:
            self.start()

    def document(self) -> dict:
        with self._lock:
            return jwks_document(self.keys)

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.cache_control is not None:
            headers["Cache-Control"] = self.cache_control
        headers.update(self.extra_headers)
        return headers

    # -- observation -----------------------------------------------------
    def _record(self, handler) -> str:
        with self._lock:
            mode = self.mode
            self.requests.append({"time": time.monotonic(), "method": handler.command,
                                  "path": handler.path, "headers": {k.lower(): v for k, v in handler.headers.items()},
                                  "mode": mode})
        return mode

    @property
    def fetch_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def fetches_in_mode(self, mode: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r["mode"] == mode)


class _UpstreamHandler(_Quiet):
    def _handle(self):
        owner: Upstream = self.server.owner
        body = self._read_body()
        record = {"method": self.command, "path": self.path,
                  "headers": [(k.lower(), v) for k, v in self.headers.items()], "body": body}
        with owner._lock:
            owner.requests.append(record)
        payload = json.dumps({"method": self.command, "path": self.path,
                              "headers": record["headers"]}).encode()
        headers = {"Content-Type": "application/json", "x-upstream": "echo"}
        if owner.hand_out_sessions and self.headers.get("mcp-session-id") is None \
                and b'"initialize"' in body:
            # Like a Streamable HTTP server: a new session on the answer to `initialize`.
            headers["mcp-session-id"] = f"session-{uuid.uuid4().hex}"
        self._send(200, payload, headers)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = _handle


class UpstreamRequest:
    def __init__(self, record: dict):
        self.method = record["method"]
        self.path = record["path"]
        self.headers = record["headers"]
        self.body = record["body"]

    def header(self, name: str):
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]


class Upstream(_Background):
    """Stand-in MCP server: records every request and answers 200 JSON echoing its headers."""

    handler = _UpstreamHandler

    def __init__(self, port: int):
        super().__init__(port)
        self._lock = threading.Lock()
        self.requests: list[dict] = []
        # Set to answer an `initialize` without a session id with a new `Mcp-Session-Id`.
        self.hand_out_sessions = False

    def clear(self):
        with self._lock:
            self.requests.clear()

    def find(self, test_id: str) -> UpstreamRequest | None:
        """The request carrying ``x-test-id: test_id`` (see helpers.http), if it got here."""
        with self._lock:
            for record in self.requests:
                if ("x-test-id", test_id) in record["headers"]:
                    return UpstreamRequest(record)
        return None

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)


class _ModuleHandler(_Quiet):
    def do_GET(self):
        owner: ModuleServer = self.server.owner
        with owner._lock:
            owner.requests.append(self.path)
        if self.path == owner.path:
            self._send(200, owner.body, {"Content-Type": "application/wasm"})
        else:
            self._send(404, b"not found", {"Content-Type": "text/plain"})


class ModuleServer(_Background):
    """An artifact server: serves ``body`` at ``path`` (404 elsewhere) and records every GET."""

    handler = _ModuleHandler

    def __init__(self, port: int, body: bytes, path: str = "/mcp_auth_filter.wasm"):
        super().__init__(port)
        self._lock = threading.Lock()
        self.body = body
        self.path = path
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def fetch_count(self) -> int:
        with self._lock:
            return len(self.requests)
