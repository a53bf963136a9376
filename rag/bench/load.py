"""Load: several clients asking at once, against one ``rag chat`` with its own model, beside two ``rag chat``
processes sharing one model server (llama.cpp's) and one Milvus server (``milvus-lite server``).

Each client sends the next gold question through the chat page's ``/chat`` API as soon as its last one is
answered, so the figures are throughput (answers a minute) and the latency each person sees, queueing included.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from rag.bench.report import publish
from rag.bench.server import serving
from rag.config import Settings
from rag.evaluation.scoring import percentile


def _chat_command(docs: Path, index: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "rag.interfaces.cli", "chat", "--docs", str(docs), "--index", str(index), "--port", "{port}",
            *extra]


def _drive(urls: list[str], questions: list[str], clients: int) -> dict:
    """``clients`` threads asking ``questions`` in turn, spread over ``urls``; one warm-up question each first."""
    from gradio_client import Client

    for url in urls:
        Client(url, verbose=False, download_files=False).predict("Who is mentioned first?", api_name="/chat")
    pending = list(questions)
    latencies: list[float] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        session = Client(urls[number % len(urls)], verbose=False, download_files=False)
        while True:
            with lock:
                if not pending:
                    return
                question = pending.pop(0)
            started = time.monotonic()
            session.predict(question, api_name="/chat")
            with lock:
                latencies.append(time.monotonic() - started)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    return {"answers": len(latencies), "wall_s": wall, "answers_per_min": len(latencies) / wall * 60,
            "p50_s": percentile(latencies, 50), "p95_s": percentile(latencies, 95)}


def run(questions: int = 12, clients: int = 4, out: Path | None = None, settings: Settings | None = None,
        gold: Path = Path("eval/gold/dev.jsonl")) -> dict:
    """Both ways on the first ``questions`` gold questions; the shared way needs llama-cpp-python[server]."""
    settings = settings or Settings()
    asked = [json.loads(line)["question"] for line in gold.read_text(encoding="utf-8").splitlines() if line][:questions]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        print(f"load: {clients} clients, {len(asked)} questions, one rag chat with its own model ...", flush=True)
        with serving(_chat_command(settings.docs_dir, root / "one", []), root / "one.log", HF_HUB_OFFLINE="1") as port:
            rows.append({"setup": "one rag chat, its own model", "processes": 1,
                         **_drive([f"http://127.0.0.1:{port}/"], asked, clients)})
        if importlib.util.find_spec("llama_cpp") is None:
            print("load: llama-cpp-python[server] is not installed (make model-server); the shared way is skipped")
        else:
            from rag.models.local.gguf import DEFAULT_MODEL, join_packaged_gguf

            gguf = root / "model.gguf"
            join_packaged_gguf(DEFAULT_MODEL, gguf)
            print("load: two rag chat sharing a llama.cpp server and a Milvus server ...", flush=True)
            llama = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                     "--port", "{port}", "--n_ctx", "4096", "--interrupt_requests", "False"]
            milvus = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(root / "milvus"), "--host",
                      "127.0.0.1", "--port", "{port}"]
            with serving(llama, root / "llama.log", 180) as model_port, serving(milvus, root / "milvus.log", 60) as db:
                shared = ["--store", "milvus", "--milvus-uri", f"http://127.0.0.1:{db}", "--generator-url",
                          f"http://127.0.0.1:{model_port}/v1"]
                with serving(_chat_command(settings.docs_dir, root / "a", shared), root / "a.log",
                             HF_HUB_OFFLINE="1") as a, \
                        serving(_chat_command(settings.docs_dir, root / "b", shared), root / "b.log",
                                HF_HUB_OFFLINE="1") as b:
                    rows.append({"setup": "two rag chat, one llama.cpp server, one Milvus server", "processes": 4,
                                 **_drive([f"http://127.0.0.1:{a}/", f"http://127.0.0.1:{b}/"], asked, clients)})
    summary = {
        "clients": clients,
        "questions": len(asked),
        "note": "On one machine the shared way adds processes but no compute; on a cluster the model server has "
                "machines (and GPUs) of its own. What carries over is that the answers are the same and the calls "
                "a question makes: three to Milvus, one streamed call to the model.",
    }
    columns = ["setup", "processes", "answers", "wall_s", "answers_per_min", "p50_s", "p95_s"]
    publish("load", "Several clients at once: one chat process, or two sharing a model server and Milvus", rows,
            columns, summary, out)
    return {"rows": rows, "summary": summary}
