"""``rag chat`` as a server: loopback only, answers streamed with their sources listed, real models."""

import os
import socket
import subprocess
import sys
import time

import psutil
import pytest
from gradio_client import Client

from tests.conftest import DOCUMENTS, REPO

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_listening(process: subprocess.Popen, port: int, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"rag chat exited: {process.stdout.read().decode(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(1)
    process.kill()
    pytest.fail("rag chat did not start listening")


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory):
    port = free_port()
    index_dir = tmp_path_factory.mktemp("chat-index")
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "chat", "--docs", str(DOCUMENTS), "--index", str(index_dir),
         "--port", str(port)],
        cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    wait_until_listening(process, port)
    yield process, port
    process.terminate()
    process.wait(timeout=30)


def test_listens_on_loopback_only(chat_server):
    process, port = chat_server
    listening = [c.laddr for c in psutil.Process(process.pid).net_connections() if c.status == "LISTEN"]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)


def test_answers_with_sources_listed_under_the_answer(chat_server):
    _, port = chat_server
    client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False, download_files=False)
    reply = client.predict("Which French president resisted the plan for a NATO office in Tokyo?", api_name="/chat")
    assert "Macron" in reply
    assert "Sources" in reply and "002_039194b7b7e47dc6.txt" in reply and 'href="#source-0-1"' in reply
