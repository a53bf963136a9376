"""Waiting for a server subprocess: back as soon as it listens; a clear error, with its output, if it dies."""

import subprocess
import sys

import pytest

from rag.bench.server import free_port, wait_until_listening


def test_returns_once_the_process_listens_on_the_port():
    port = free_port()
    serve = f"import http.server as h; h.HTTPServer(('127.0.0.1', {port}), h.BaseHTTPRequestHandler).serve_forever()"
    process = subprocess.Popen([sys.executable, "-c", serve])
    try:
        wait_until_listening(process, port, timeout_s=30)
        assert process.poll() is None
    finally:
        process.kill()
        process.wait()


def test_a_process_that_exits_first_is_reported_with_its_output():
    process = subprocess.Popen([sys.executable, "-c", "print('no model here'); raise SystemExit(3)"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with pytest.raises(RuntimeError, match="exited with 3: no model here"):
        wait_until_listening(process, free_port(), timeout_s=30)


def test_a_process_that_never_listens_is_killed_at_the_deadline():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with pytest.raises(RuntimeError, match="did not start listening"):
        wait_until_listening(process, free_port(), timeout_s=1)
    assert process.wait(timeout=10) != 0
