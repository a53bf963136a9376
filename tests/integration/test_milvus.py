"""The Milvus store against Milvus Lite for real: a writer killed (SIGKILL) at any moment of an update leaves
every document wholly old or wholly new to the next reader, and the next update finishes the job; the dev set is
answered as with the FAISS store."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from rag.config import Settings
from rag.ingest.chunking import chunk_document
from rag.ingest.indexing import open_and_update
from tests.conftest import REPO, FakeEmbedder

pytestmark = pytest.mark.slow
pytest.importorskip("milvus_lite")

WRITER = """
import sys
from pathlib import Path
from rag.config import Settings
from rag.ingest.indexing import open_and_update
from tests.conftest import FakeEmbedder
settings = Settings(docs_dir=Path(sys.argv[1]), index_dir=Path(sys.argv[2]), store="milvus", chunk_tokens=8,
                    chunk_overlap_tokens=0, ocr=False)
print("started", flush=True)
open_and_update(settings, FakeEmbedder())
print("finished", flush=True)
"""


def write_version(docs, version: int, n: int = 12) -> None:
    for i in range(n):
        sentences = " ".join(f"Report {i} version {version} line {j} on harbour {i * 7 + j}." for j in range(12))
        (docs / f"report_{i:02d}.txt").write_text(sentences, encoding="utf-8")


def check_consistent(settings: Settings, embedder: FakeEmbedder) -> set[int]:
    """Every document shown is one whole version, with exactly its own chunks; returns the versions seen."""
    from rag.stores.milvus_store import CHUNKS, _query_all, open_milvus_index

    index = open_milvus_index(settings.milvus_location)
    try:
        seen = set()
        rows = _query_all(index.client, f"rag_{CHUNKS}", ["doc_id", "start", "end", "text"])
        stored: dict[str, set] = {}
        for row in rows:
            stored.setdefault(row["doc_id"], set()).add((row["start"], row["end"], row["text"]))
        for document in index.documents.values():
            versions = {int(word) for word in document.text.split("version ")[1:] for word in [word.split()[0]]}
            assert len(versions) == 1, f"{document.name} mixes versions {versions}"
            seen |= versions
            expected = {(c.start, c.end, c.text) for c in chunk_document(document, 8, 0, embedder.count_tokens)}
            assert stored.get(document.id) == expected, f"{document.name}: its chunks are not its text's"
            assert index.chunk_count(document.name) == len(expected)
        return seen
    finally:
        index.client.close()


def test_a_writer_killed_mid_update_never_leaves_a_document_half_updated(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    settings = Settings(docs_dir=docs, index_dir=tmp_path / "index", store="milvus", chunk_tokens=8,
                        chunk_overlap_tokens=0, ocr=False)
    embedder = FakeEmbedder()
    write_version(docs, 1)
    index, _ = open_and_update(settings, embedder)
    index.client.close()
    rng = random.Random(7)
    seen: set[int] = set()
    for version in range(2, 7):
        write_version(docs, version)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(docs), str(settings.index_dir)], cwd=REPO,
                                  env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "started"
        time.sleep(rng.uniform(0.0, 1.5))
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        seen |= check_consistent(settings, embedder)
    print(f"\nversions seen by readers after the kills: {sorted(seen)}")
    index, report = open_and_update(settings, embedder)  # the next writer finishes, and clears what was left
    index.client.close()
    assert check_consistent(settings, embedder) == {6}


def test_the_dev_questions_get_the_same_passages_as_from_the_faiss_store(real_assistant, tmp_path):
    """Same passages in the same order: the generator then writes the same answers (greedy decoding), so F1 is
    the same too (measured with `rag eval --store milvus` in the eval log)."""
    from rag import Assistant
    from rag.evaluation.scoring import load_gold, run_evaluation

    gold = load_gold(REPO / "eval" / "gold" / "dev.jsonl")
    milvus = Assistant.from_folder(
        real_assistant.settings.docs_dir, tmp_path / "index",
        real_assistant.settings.with_changes(store="milvus"), real_assistant.generator, real_assistant.embedder,
    )
    try:
        differing = []
        for item in gold:
            ours = [h.chunk.text for h in real_assistant.retrieve(item.question)]
            theirs = [h.chunk.text for h in milvus.retrieve(item.question)]
            if ours != theirs:
                differing.append((item.id, ours, theirs))
        faiss_summary, _ = run_evaluation(real_assistant, gold, retrieval_only=True, progress=False)
        milvus_summary, _ = run_evaluation(milvus, gold, retrieval_only=True, progress=False)
    finally:
        milvus.index.client.close()
    assert milvus_summary["recall_at_5"] == faiss_summary["recall_at_5"]
    assert len(differing) <= 1, differing  # BM25 tokenises a little differently (one-letter words)


READER = """
import sys
from rag.stores.milvus_store import open_milvus_index
from tests.conftest import FakeEmbedder
index = open_milvus_index(sys.argv[1])
dense = index.dense_search(FakeEmbedder().embed(["Where does the Rhine rise?"])[0], 3)
words = index.keyword_search("Rhine rises", 3)
print(len(index.documents), index.chunk(dense[0][0]).doc_name, index.chunk(words[0][0]).doc_name, flush=True)
"""


def python(code: str, *args: str, wait: bool = True):
    command = [sys.executable, "-c", code, *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if wait:
        return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def test_an_index_built_by_one_process_is_searched_by_the_next_ones(docs_dir, tmp_path):
    uri = str(tmp_path / "db" / "milvus.db")
    built = python(WRITER.replace('store="milvus"', f'store="milvus", milvus_uri={uri!r}'), str(docs_dir),
                   str(tmp_path / "unused"))
    assert built.returncode == 0, built.stderr
    for _ in range(2):  # Milvus Lite's file is one process's at a time: one reader, then another
        read = python(READER, uri)
        assert read.returncode == 0, read.stderr[-2000:]
        assert read.stdout.split() == ["2", "rivers.txt", "rivers.txt"]


def test_an_index_on_a_milvus_server_is_searched_by_two_processes_at_once(docs_dir, tmp_path):
    from tests.integration.servers import milvus_server

    with milvus_server(tmp_path / "data", tmp_path / "milvus.log") as uri:
        built = python(WRITER.replace('store="milvus"', f'store="milvus", milvus_uri={uri!r}'), str(docs_dir),
                       str(tmp_path / "unused"))
        assert built.returncode == 0, built.stderr
        readers = [python(READER, uri, wait=False) for _ in range(2)]
        outputs = [reader.communicate(timeout=300) for reader in readers]
        assert all(reader.returncode == 0 for reader in readers), outputs[0][1][-2000:]
        assert all(out.split() == ["2", "rivers.txt", "rivers.txt"] for out, _ in outputs)
