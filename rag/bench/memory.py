"""Peak memory of the chat server while it answers the dev gold questions, against the plain way (the GGUF file
loaded directly) answering one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from rag.bench.report import proc_status_kib, publish
from rag.bench.server import free_port, wait_until_listening
from rag.config import Settings


def serve_and_measure(questions: list[str], settings: Settings, clients: int = 2) -> dict:
    """Start ``rag chat``, have ``clients`` ask every question, and read its resident memory along the way."""
    from gradio_client import Client

    with tempfile.TemporaryDirectory() as scratch:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "rag.interfaces.cli", "chat", "--docs", str(settings.docs_dir), "--index",
             str(Path(scratch) / "index"), "--port", str(port)],
            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_listening(process, port)
            listening_kib = proc_status_kib("VmRSS", process.pid)
            url = f"http://127.0.0.1:{port}"
            first = Client(url, verbose=False, analytics_enabled=False, download_files=False)
            first.predict(questions[0], api_name="/chat")
            loaded_kib = proc_status_kib("VmRSS", process.pid)

            def ask_all(offset: int) -> None:
                session = Client(url, verbose=False, analytics_enabled=False, download_files=False)
                for question in questions[offset:] + questions[:offset]:
                    session.predict(question, api_name="/chat")

            workers = [threading.Thread(target=ask_all, args=(n * len(questions) // clients,)) for n in range(clients)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            end_kib = proc_status_kib("VmRSS", process.pid)
            peak_kib = proc_status_kib("VmHWM", process.pid)
        finally:
            process.terminate()
            process.wait(timeout=60)
    return {
        "way": "project: rag chat server",
        "answered": 1 + clients * len(questions),
        "listening_mib": listening_kib / 1024,
        "after_first_answer_mib": loaded_kib / 1024,
        "end_mib": end_kib / 1024,
        "peak_mib": peak_kib / 1024,  # the kernel's high-water mark: no sampling misses a short peak
    }


def run(gold_path: Path = Path("eval/gold/dev.jsonl"), out: Path | None = None, settings: Settings | None = None,
        clients: int = 2) -> dict:
    from rag.bench.answering import child_command, join_answering_gguf
    from rag.evaluation.scoring import load_gold
    from rag.models.model_choice import with_packaged_model

    settings, _ = with_packaged_model(settings or Settings())  # the model the defaults answer with here
    questions = [item.question for item in load_gold(gold_path)]
    rows = [serve_and_measure(questions, settings, clients)]
    print(f"memory: chat server peak {rows[0]['peak_mib']:.0f} MiB", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        gguf = join_answering_gguf(settings, Path(scratch) / "model.gguf")
        index_dir = Path(scratch) / "index"
        result = subprocess.run(
            child_command("gguf", settings.docs_dir, index_dir, questions[0], gguf), capture_output=True, text=True,
            check=True,
        )
        child = json.loads(result.stdout.strip().splitlines()[-1])
    rows.append({"way": "plain: GGUF loaded directly, one answer", "answered": 1,
                 "peak_mib": child["peak_rss_kib"] / 1024})
    summary = {
        "generator_model": settings.generator_model,
        "peak_mib": rows[0]["peak_mib"],
        "peak_gb": rows[0]["peak_mib"] * 2**20 / 1e9,
        "plain_peak_mib": rows[1]["peak_mib"],
        "goal": "<= 2.5 GB resident while serving the chat",
    }
    columns = ["way", "answered", "listening_mib", "after_first_answer_mib", "end_mib", "peak_mib"]
    publish("memory", "Peak resident memory while serving the chat", rows, columns, summary, out)
    return {"rows": rows, "summary": summary}
