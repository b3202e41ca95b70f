"""Loopback networking for the dev stack: pick a free port, wait until a server greets."""

from __future__ import annotations

import socket
import time

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a port that was free a moment ago (bind port 0 and read it back).

    There is a small race between closing this socket and the server binding the port; callers that
    start a server on it retry once with a new port when the bind fails.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def read_greeting(host: str, port: int, timeout: float = 2.0) -> bytes:
    """Connect once and return the first line the server sends (raises OSError on failure)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"{host}:{port} closed the connection before its greeting")
            data += chunk
        return data.split(b"\r\n", 1)[0]


def wait_for_greeting(host: str, port: int, prefix: bytes, timeout: float) -> bytes:
    """Poll ``host:port`` until it sends a first line starting with ``prefix``; TimeoutError otherwise."""
    if timeout <= 0:
        raise ValueError("The wait timeout must be positive")
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            line = read_greeting(host, port, timeout=min(2.0, max(0.1, deadline - time.monotonic())))
        except OSError as exc:
            last_error = exc
            time.sleep(0.05)
            continue
        if line.startswith(prefix):
            return line
        last_error = ConnectionError(f"unexpected greeting {line!r}")
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} sent no {prefix!r} greeting within {timeout:.1f} s: {last_error}")
