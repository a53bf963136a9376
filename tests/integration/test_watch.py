"""``--watch`` through the file system with the real models: ``rag index --watch`` reports each change it indexed,
and a running ``rag serve --watch`` answers from a file saved after it started, without a restart."""

import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from rag.bench.server import free_port, wait_until_listening
from tests.conftest import DOCUMENTS, REPO

pytestmark = pytest.mark.slow
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def read_until(process: subprocess.Popen, wanted: str, timeout_s: float = 120) -> str:
    """Lines of ``process``'s output up to the first that holds ``wanted``."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        seen.append(line)
        if wanted in line:
            return "".join(seen)
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"{wanted!r} never came; output: {''.join(seen)}")


def test_rag_index_watch_indexes_what_is_saved_changed_and_deleted(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "harbour.txt").write_text("The ferry service started in 1998.", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.interfaces.cli", "index", "--watch", "--docs", str(docs), "--index", str(tmp_path / "index")],
        cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        read_until(process, "watching")
        (docs / "quay.md").write_text("# Quay\n\nThe north quay was rebuilt in 2004.", encoding="utf-8")
        assert "added 1" in read_until(process, "added 1")
        (docs / "harbour.txt").write_text("The ferry service started in 1999.", encoding="utf-8")
        read_until(process, "updated 1")
        (docs / "quay.md").unlink()
        read_until(process, "removed 1")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_running_server_answers_from_a_file_saved_after_it_started(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(DOCUMENTS, docs)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.interfaces.cli", "serve", "--watch", "--docs", str(docs), "--index",
         str(tmp_path / "index"), "--port", str(port)],
        cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        wait_until_listening(process, port)
        (docs / "selene.txt").write_text(
            "Selene station report\n\nThe Selene-7 lunar greenhouse is run by the agronomist Marta Kowalczyk. "
            "It grows basil and dwarf tomatoes under violet lamps.", encoding="utf-8")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            names = [d["name"] for d in httpx.get(f"{url}/v1/documents").json()["documents"]]
            if "selene.txt" in names:
                break
            time.sleep(0.5)
        assert "selene.txt" in names
        reply = httpx.post(f"{url}/v1/chat/completions", timeout=300, json={"messages": [
            {"role": "user", "content": "Who runs the Selene-7 lunar greenhouse?"}]}).json()
        message = reply["choices"][0]["message"]
        assert "Kowalczyk" in message["content"] and message["citations"][0]["doc"] == "selene.txt"
    finally:
        process.terminate()
        process.wait(timeout=30)
