"""``rag chat`` as a server, real models: loopback only, answers with their sources, and nothing else let in: no
file outside the documents folder, no request from another site's page, no upload over the limit, no request
without the login when ``--auth`` is set."""

import concurrent.futures
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from gradio_client import Client

from rag.bench.server import free_port, wait_until_listening
from rag.interfaces.chat_page import QUEUE_SIZE
from rag.interfaces.web import AUTH_ENV, MAX_UPLOAD_BYTES
from tests.conftest import DOCUMENTS, REPO

pytestmark = pytest.mark.slow
MACRON_QUESTION = "Which French president resisted the plan for a NATO office in Tokyo?"
A_DOCUMENT = sorted(DOCUMENTS.glob("*.txt"))[0]


def start_chat(
    index_dir: Path, env: dict[str, str] | None = None, log=subprocess.PIPE
) -> tuple[subprocess.Popen, str]:
    """``rag chat`` over the default corpus on a free port; the process and its base URL. Output goes to ``log``."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.interfaces.cli", "chat", "--docs", str(DOCUMENTS), "--index", str(index_dir),
         "--port", str(port)],
        cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        stdout=log, stderr=subprocess.STDOUT,
    )
    wait_until_listening(process, port)
    return process, f"http://127.0.0.1:{port}"


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory):
    process, url = start_chat(tmp_path_factory.mktemp("chat-index"))
    yield process, url
    stop(process)


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory):
    process, url = start_chat(tmp_path_factory.mktemp("auth-index"), env={AUTH_ENV: "ann:s3cret"})
    yield url
    stop(process)


def test_listens_on_loopback_only(chat_server):
    process, _ = chat_server
    listening = [c.laddr for c in psutil.Process(process.pid).net_connections() if c.status == "LISTEN"]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)


def test_answers_with_sources_listed_under_the_answer(chat_server):
    _, url = chat_server
    client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    reply = client.predict(MACRON_QUESTION, api_name="/chat")
    assert "Macron" in reply
    assert "Sources" in reply and "002_039194b7b7e47dc6.txt" in reply and 'href="#source-0-1"' in reply


def test_a_document_is_served_as_a_file_but_nothing_outside_the_documents_folder(chat_server, tmp_path):
    _, url = chat_server
    inside = A_DOCUMENT.resolve()
    assert httpx.get(f"{url}/gradio_api/file={inside}").text.startswith(inside.read_text()[:40])
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    outside = [
        "/etc/passwd",
        str(secret),
        "../../../../../../etc/passwd",
        "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        f"{inside.parent}/../pyproject.toml",
        f"{inside.parent}/%2e%2e/pyproject.toml",
        f"{inside.parent}/%2E%2E%2Fpyproject.toml",
        f"{str(inside.parent).upper()}/{inside.name}",
        f"{inside.parent}/..%2f..%2f..%2fetc/passwd",
    ]
    for path in outside:
        response = httpx.get(f"{url}/gradio_api/file={path}")
        assert response.status_code in (403, 404), path
        assert "not for the web" not in response.text and "root:" not in response.text, path
    assert httpx.get(f"{url}/GRADIO_API/FILE=/etc/passwd").status_code == 404


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:1", "file://"])
def test_requests_from_another_sites_page_cannot_upload_or_ask(chat_server, origin):
    _, url = chat_server
    headers = {"Origin": origin}
    upload = httpx.post(f"{url}/gradio_api/upload", files={"files": ("a.txt", b"hello")}, headers=headers)
    ask = httpx.post(f"{url}/gradio_api/call/chat", json={"data": [MACRON_QUESTION]}, headers=headers)
    assert upload.status_code == ask.status_code == 403


def test_the_page_itself_may_upload(chat_server):
    _, url = chat_server
    upload = httpx.post(f"{url}/gradio_api/upload", files={"files": ("a.txt", b"hello")}, headers={"Origin": url})
    assert upload.status_code == 200


def test_an_upload_over_the_size_limit_is_refused(chat_server):
    _, url = chat_server
    too_big = b"a" * (MAX_UPLOAD_BYTES + 1024)
    response = httpx.post(f"{url}/gradio_api/upload", files={"files": ("big.txt", too_big)}, timeout=60)
    assert response.status_code == 413


def test_with_auth_nothing_but_the_login_page_answers_without_credentials(guarded_server):
    url = guarded_server
    for path in ["/config", "/gradio_api/info", f"/gradio_api/file={A_DOCUMENT.resolve()}"]:
        assert httpx.get(f"{url}{path}").status_code == 401, path
    assert httpx.post(f"{url}/gradio_api/call/chat", json={"data": [MACRON_QUESTION]}).status_code == 401
    assert httpx.post(f"{url}/gradio_api/upload", files={"files": ("a.txt", b"x")}).status_code == 401
    assert httpx.post(f"{url}/login", data={"username": "ann", "password": "wrong"}).status_code == 400


def test_with_auth_the_right_login_is_answered(guarded_server):
    client = Client(guarded_server, auth=("ann", "s3cret"), verbose=False, analytics_enabled=False,
                    download_files=False)
    assert "Macron" in client.predict(MACRON_QUESTION, api_name="/chat")


LOAD_QUESTIONS = [  # (question, a word the right answer holds): two answered by the model, two not in the documents
    ("Which French president resisted the plan for a NATO office in Tokyo?", "Macron"),
    ("In which year did Japan and NATO sign the IPCP?", "2014"),
    ("What is the boiling point of mercury?", "know"),
    ("How do I bake sourdough bread?", "know"),
]


def test_sixteen_clients_asking_four_questions_each_all_get_right_answers(tmp_path):
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process, url = start_chat(tmp_path / "index", log=log)
        try:
            server = psutil.Process(process.pid)
            warm = Client(url, verbose=False, analytics_enabled=False, download_files=False)
            assert "Macron" in warm.predict(LOAD_QUESTIONS[0][0], api_name="/chat")  # model loaded before measuring
            rss_before = server.memory_info().rss
            results, queue_sizes = run_clients(url, clients=16, questions=LOAD_QUESTIONS)
            rss_after = server.memory_info().rss
        finally:
            stop(process)
    errors = [r for r in results if isinstance(r, BaseException)]
    wrong = [(q, reply) for (q, expected, reply, _) in (r for r in results if not isinstance(r, BaseException))
             if expected not in reply]
    latencies = sorted(r[3] for r in results if not isinstance(r, BaseException))
    wall_s = max(latencies) if latencies else 0.0
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan")
    print(f"\nload: {len(results)} questions from 16 clients, {len(errors)} errors, {len(wrong)} wrong; "
          f"throughput {len(latencies) / wall_s:.2f} questions/s; p95 latency {p95:.1f} s; "
          f"largest queue seen {max(queue_sizes, default=0)}; server RSS {rss_before / 2**20:.0f} -> "
          f"{rss_after / 2**20:.0f} MiB")
    assert len(results) == 64 and not errors and not wrong
    assert max(queue_sizes, default=0) <= QUEUE_SIZE
    assert rss_after <= rss_before * 1.10
    assert "Already borrowed" not in log_path.read_text(errors="replace")


def run_clients(url: str, clients: int, questions: list[tuple[str, str]]):
    """``clients`` threads, each asking every question once in its own order; the queue size polled meanwhile.

    Returns one (question, expected, reply, seconds since the start) or exception per question, and the queue
    sizes seen."""
    started = time.monotonic()
    done = threading.Event()
    queue_sizes: list[int] = []

    def poll_queue() -> None:
        while not done.is_set():
            try:
                queue_sizes.append(httpx.get(f"{url}/gradio_api/queue/status", timeout=5).json()["queue_size"])
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.5)

    def client(n: int) -> list:
        session = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        replies = []
        for question, expected in questions[n % 4:] + questions[: n % 4]:
            try:
                reply = session.predict(question, api_name="/chat")
                replies.append((question, expected, reply, time.monotonic() - started))
            except Exception as exc:  # noqa: BLE001 - every failure is counted, none may happen
                replies.append(exc)
        return replies

    poller = threading.Thread(target=poll_queue, daemon=True)
    poller.start()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        results = [reply for replies in pool.map(client, range(clients)) for reply in replies]
    done.set()
    poller.join()
    return results, queue_sizes


def test_a_corrupt_file_of_saved_conversations_is_set_aside_and_the_page_says_so(tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    (index / "records.sqlite").write_bytes(b"not a database " * 200)
    process, url = start_chat(index)
    try:
        page = httpx.get(f"{url}/config").text
        assert "could not be read; it was set aside as" in page
        assert [p.read_bytes()[:15] for p in index.glob("records.sqlite.corrupt-*")] == [b"not a database "]
    finally:
        stop(process)
