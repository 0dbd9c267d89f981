"""Minimal HTTP/1.1 client with full control over headers (duplicates, Host), one connection per call."""
from __future__ import annotations

import http.client
import json
import re
import time
import uuid
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    reason: str
    headers: list  # [(lower-case name, value)], duplicates kept, in order
    body: bytes
    elapsed: float
    test_id: str = ""
    request_headers: list = field(default_factory=list)

    def header(self, name: str):
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def json(self):
        return json.loads(self.body)

    def challenge(self):
        """Parsed WWW-Authenticate: (scheme, {param: value})."""
        value = self.header("www-authenticate")
        return parse_challenge(value) if value is not None else (None, {})

    def __repr__(self):
        return (f"<Response {self.status} headers={self.headers!r} body={self.body[:300]!r} "
                f"elapsed={self.elapsed:.3f}s test_id={self.test_id}>")


def request(port: int, method: str = "GET", path: str = "/mcp", headers=None, body: bytes | None = None,
            host: str | None = None, timeout: float = 20.0, test_id: str | None = None,
            address: str = "127.0.0.1") -> Response:
    """Send one request on a fresh connection.

    ``headers``: dict or list of (name, value) pairs; a list may repeat a name.
    Every request carries ``x-test-id`` so tests can ask the upstream whether it arrived.
    """
    if isinstance(headers, dict):
        headers = list(headers.items())
    headers = list(headers or [])
    test_id = test_id or uuid.uuid4().hex
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    start = time.monotonic()
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        sent = [("host", host if host is not None else f"localhost:{port}"), ("x-test-id", test_id)]
        sent += headers
        if body is not None and not any(k.lower() == "content-length" for k, _ in headers):
            sent.append(("content-length", str(len(body))))
        for name, value in sent:
            conn.putheader(name, value)
        conn.endheaders(body)
        resp = conn.getresponse()
        data = resp.read()
        return Response(status=resp.status, reason=resp.reason,
                        headers=[(k.lower(), v) for k, v in resp.getheaders()], body=data,
                        elapsed=time.monotonic() - start, test_id=test_id, request_headers=sent)
    finally:
        conn.close()


_PARAM = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))\s*(?:,|$)')


def parse_challenge(value: str):
    """Split ``Bearer k="v", k2="v2"`` into ("Bearer", {"k": "v", "k2": "v2"}); strict about syntax."""
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    params = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m or m.end() == pos:
            raise ValueError(f"unparseable WWW-Authenticate {value!r} at {rest[pos:]!r}")
        name = m.group(1)
        if name in params:
            raise ValueError(f"duplicate parameter {name} in {value!r}")
        params[name] = m.group(2).replace('\\"', '"').replace("\\\\", "\\") if m.group(2) is not None \
            else m.group(3)
        pos = m.end()
    return scheme, params


def wait_for(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until truthy; returns its value or raises AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
