"""Starting servers as subprocesses and waiting for them (the memory and load benchmarks', and the tests')."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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


@contextmanager
def serving(command: list[str], log: Path, timeout_s: float = 300, **env: str) -> Iterator[int]:
    """``command`` (``{port}`` in it filled in with a free port) run as a subprocess, its output in ``log``;
    yields the port once it listens, and stops the process after."""
    port = free_port()
    with open(log, "wb") as output:
        process = subprocess.Popen([part.format(port=port) for part in command], stdout=output,
                                   stderr=subprocess.STDOUT, env={**os.environ, **env})
        try:
            wait_until_listening(process, port, timeout_s=timeout_s)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=30)
