"""A real OCI registry (Debian's docker-registry, the CNCF distribution registry) on a free port,
and skopeo, the client that copies images to and from it. `make oci-tools` installs both."""
from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import time
from pathlib import Path

from .envoy_proc import stop_process
from .ports import free_port

REGISTRY_BIN = "docker-registry"
SKOPEO_BIN = "skopeo"


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: `make oci-tools` installs it (make integration does)")
    return path


class Registry:
    """`docker-registry serve` with its own config file and storage directory, stopped by PID."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.storage = self.workdir / "storage"
        self.config_path = self.workdir / "registry.yml"
        self.log_path = self.workdir / "registry.log"
        self.proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "Registry":
        self.storage.mkdir(parents=True, exist_ok=True)
        # Plain HTTP on loopback only; a fixed secret keeps the startup log free of its warning.
        self.config_path.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n  secret: mcp-auth-filter-test\n",
            encoding="utf-8")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([require_tool(REGISTRY_BIN), "serve", str(self.config_path)],
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.get("/v2/")[0] == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"docker-registry not answering after {timeout}s:\n{self.log()}")
            time.sleep(0.05)

    def get(self, path: str, method: str = "GET", headers=None):
        """(status, headers as a lower-case dict, body) of one request to the registry's API."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def stop(self):
        stop_process(self.proc)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def skopeo(*args, home: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run skopeo with a private HOME (no user auth files read or written) and signature policy
    off (`--insecure-policy`: these are unsigned test images; TLS is off per command)."""
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR")}
    env["HOME"] = str(home)
    result = subprocess.run([require_tool(SKOPEO_BIN), "--insecure-policy", *args], env=env,
                            capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result
