"""Waiting for a ``rag chat`` server started as a subprocess (the memory benchmark's, and the tests')."""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_listening(process: subprocess.Popen, port: int, timeout_s: float = 300) -> None:
    """Return once ``process`` accepts connections on ``port``; raise RuntimeError, with the end of its output when
    that is a pipe, if it exits first or is still not listening after ``timeout_s`` (it is then killed)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read()[-2000:] if process.stdout else b"(output not captured)"
            text = output.decode(errors="replace") if isinstance(output, bytes) else output
            raise RuntimeError(f"rag chat exited with {process.returncode}: {text}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"rag chat did not start listening on port {port} within {timeout_s:.0f} s")
