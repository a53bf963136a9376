"""The ``rag`` command as a user runs it: a separate process, real models, no network."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import DOCUMENTS

pytestmark = pytest.mark.slow


def rag(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "rag.interfaces.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def test_index_reports_what_it_added_skipped_and_then_that_nothing_changed(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(DOCUMENTS, docs)
    (docs / "notes.bin.txt").write_bytes(b"\x00\xff" * 50)
    first = rag("index", "--docs", str(docs), "--index", str(tmp_path / "index"))
    assert first.returncode == 0, first.stderr
    assert "added 2" in first.stdout and "skipped: notes.bin.txt (binary data, not text)" in first.stdout
    second = rag("index", "--docs", str(docs), "--index", str(tmp_path / "index"))
    assert "added 0, updated 0, removed 0, unchanged 2" in second.stdout


def test_ask_json_prints_the_documented_object(tmp_path):
    result = rag(
        "ask", "In which year did Japan and NATO sign the IPCP?", "--json",
        "--docs", str(DOCUMENTS), "--index", str(tmp_path / "index"),
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert set(payload) == {"answer", "abstained", "citations", "verdicts", "closest", "timings"}
    assert payload["verdicts"][0]["check"] == "relevance"
    assert all(set(v) == {"check", "passed", "reason"} and v["passed"] for v in payload["verdicts"])
    assert "2014" in payload["answer"] and payload["abstained"] is False
    citation = payload["citations"][0]
    assert set(citation) == {"n", "doc", "chunk_id", "quote", "start", "end", "page", "place"}
    assert citation["page"] is None  # a text file has no pages
    text = (DOCUMENTS / citation["doc"]).read_text(encoding="utf-8")
    assert citation["quote"] in text
    assert set(payload["timings"]) == {"retrieval_s", "generation_s", "total_s"}


def test_bad_input_gives_a_message_not_a_traceback(tmp_path):
    empty = rag("ask", "  ", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "index"))
    assert empty.returncode == 2 and "error: the question is empty" in empty.stderr
    missing = rag("index", "--docs", str(tmp_path / "nope"), "--index", str(tmp_path / "index"))
    assert missing.returncode == 2 and "documents folder not found" in missing.stderr
    assert "Traceback" not in empty.stderr + missing.stderr


def test_ask_json_says_which_check_withheld_an_answer(tmp_path):
    result = rag("ask", "How do I bake sourdough bread?", "--json",
                 "--docs", str(DOCUMENTS), "--index", str(tmp_path / "index"))
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["abstained"] is True
    failed = [v for v in payload["verdicts"] if not v["passed"]]
    assert failed and all(v["reason"] for v in failed)
