"""The index under ``rag index`` as a separate process, real embedder: killed with SIGKILL at any moment of a
rebuild it leaves the last good index loadable and answering; a second writer waits, then refuses clearly."""

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.answering.retrieval import HybridRetriever
from rag.stores.faiss_store import load_index, write_lock
from tests.conftest import DOCUMENTS, REPO

pytestmark = pytest.mark.slow
TRIALS = 20
MACRON_QUESTION = "Which French president resisted the plan for a NATO office in Tokyo?"


def rag_index(docs: Path, index: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "rag.interfaces.cli", "index", "--docs", str(docs), "--index", str(index), *extra],
        cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def varied_corpus(folder: Path, documents: int = 12) -> None:
    """The default corpus plus ``documents`` files recombining its sentences, so a rebuild takes a while."""
    shutil.copytree(DOCUMENTS, folder)
    sentences = [s for p in DOCUMENTS.glob("*.txt") for s in re.split(r"(?<=[.!?])\s+", p.read_text()) if len(s) > 40]
    rng = random.Random(7)
    for n in range(documents):
        (folder / f"mix_{n:03d}.txt").write_text(" ".join(rng.sample(sentences, 12)), encoding="utf-8")


def answers_macron_question(index_dir: Path, embedder) -> bool:
    index = load_index(index_dir)  # raises on any damage: checksums, counts, ids
    hits = HybridRetriever(index, embedder).search(MACRON_QUESTION, 4)
    return any("Macron" in hit.chunk.text for hit in hits)


def test_sigkill_at_any_moment_of_a_rebuild_leaves_the_last_good_index(tmp_path, real_embedder):
    docs, index_dir = tmp_path / "docs", tmp_path / "index"
    varied_corpus(docs)
    started = time.monotonic()
    first = rag_index(docs, index_dir)
    assert first.wait(timeout=600) == 0, first.stderr.read()
    full_run_s = time.monotonic() - started
    assert answers_macron_question(index_dir, real_embedder)

    rng = random.Random(2026)
    recovered, killed_while_writing = 0, 0
    for trial in range(TRIALS):
        process = rag_index(docs, index_dir, "--rebuild")
        if trial % 2:  # at a random moment of the whole run, start-up included
            time.sleep(rng.uniform(0, full_run_s))
        else:  # at a random moment after the new generation starts being written
            deadline = time.monotonic() + 600
            while not list(index_dir.glob(".tmp-gen-*")) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.05))
            killed_while_writing += bool(list(index_dir.glob(".tmp-gen-*")))
        process.send_signal(signal.SIGKILL)
        process.wait()
        recovered += answers_macron_question(index_dir, real_embedder)
    print(f"\nSIGKILL trials: {recovered}/{TRIALS} recovered ({killed_while_writing} killed while writing files; "
          f"a full rebuild took {full_run_s:.1f} s)")
    assert recovered == TRIALS

    # Whatever the kills left behind, the next update completes and tidies up.
    final = rag_index(docs, index_dir)
    assert final.wait(timeout=600) == 0, final.stderr.read()
    assert not list(index_dir.glob(".tmp-gen-*")) and len(list(index_dir.glob("gen-*"))) <= 2


def test_a_second_writer_waits_for_the_first_then_refuses_with_a_clear_message(tmp_path):
    index_dir = tmp_path / "index"
    with write_lock(index_dir):
        second = rag_index(DOCUMENTS, index_dir, "--wait", "2")
        _, stderr = second.communicate(timeout=600)
    assert second.returncode == 2
    assert "waiting up to 2 s" in stderr
    assert "another process is updating the index" in stderr and "Traceback" not in stderr
    third = rag_index(DOCUMENTS, index_dir)  # the lock is free again
    assert third.wait(timeout=600) == 0
