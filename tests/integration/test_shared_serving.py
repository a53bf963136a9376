"""Two `rag chat` servers sharing one Milvus server and one model server (llama.cpp's): both answer at the same
time, and a document uploaded through one is answered from the other without a restart."""

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rag.bench.server import free_port, wait_until_listening
from tests.conftest import DOCUMENTS, REPO
from tests.integration.servers import llama_server, milvus_server, needs_llama_server, packaged_gguf

pytestmark = [pytest.mark.slow, needs_llama_server]
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def two_chats(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared")
    docs = root / "docs"  # one documents folder for both, as a network share would be
    shutil.copytree(DOCUMENTS, docs)
    with milvus_server(root / "milvus", root / "milvus.log") as milvus_uri, \
            llama_server(packaged_gguf(root), root / "llama.log") as model_url:
        chats = []
        try:
            for name in ("a", "b"):
                port = free_port()
                process = subprocess.Popen(
                    [sys.executable, "-m", "rag.interfaces.cli", "chat", "--docs", str(docs), "--index", str(root / name),
                     "--store", "milvus", "--milvus-uri", milvus_uri, "--generator-url", model_url,
                     "--port", str(port)],
                    cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                )
                chats.append((process, f"http://127.0.0.1:{port}/"))
                wait_until_listening(process, port)
            yield root, [url for _, url in chats]
        finally:
            for process, _ in chats:
                process.terminate()
                process.wait(timeout=30)


def ask(url: str, question: str) -> str:
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False).predict(question, api_name="/chat")


def test_both_chat_servers_answer_at_the_same_time(two_chats):
    _, (first, second) = two_chats
    answers: dict[str, str] = {}
    questions = {"a": (first, "In which year did Japan and NATO sign the IPCP?"),
                 "b": (second, "Where would NATO open its first liaison office in Asia?")}
    threads = [threading.Thread(target=lambda key=key, url=url, q=q: answers.update({key: ask(url, q)}))
               for key, (url, q) in questions.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert "2014" in answers["a"] and "Tokyo" in answers["b"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (`make browser`)")
def test_a_document_uploaded_through_one_is_answered_by_the_other(two_chats):
    sync_api = pytest.importorskip("playwright.sync_api")
    root, (first, second) = two_chats
    upload = root / "selene_greenhouse.txt"
    upload.write_text("Selene station report\n\nThe Selene-7 lunar greenhouse is run by the agronomist Marta "
                      "Kowalczyk. It grows basil and dwarf tomatoes under violet lamps.", encoding="utf-8")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page()
        page.goto(first)
        page.locator("#upload input[type=file]").set_input_files(str(upload))
        page.click("#add-documents")
        page.wait_for_function(
            "() => (document.querySelector('#index-status textarea')?.value || '').includes('added 1')",
            timeout=120_000,
        )
        browser.close()
    answer = ask(second, "Who runs the Selene-7 lunar greenhouse?")
    assert "Kowalczyk" in answer and "selene_greenhouse.txt" in answer
