"""Free TCP ports on 127.0.0.1, never the reference ports (8000/8080/9000/9901)."""
from __future__ import annotations

import socket
import threading

RESERVED = {8000, 8080, 9000, 9901}
_handed_out: set[int] = set()
_lock = threading.Lock()


def free_port() -> int:
    with _lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in RESERVED and port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("no free port")


def free_ports(n: int) -> list[int]:
    return [free_port() for _ in range(n)]
