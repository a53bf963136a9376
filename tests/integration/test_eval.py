"""``rag eval`` end to end with the real models: three gold questions, and a SQuAD file."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.test_squad import SQUAD

pytestmark = pytest.mark.slow


def rag(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, timeout=900,
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=REPO,
    )


def test_eval_on_three_gold_questions_writes_all_three_reports(tmp_path):
    out = tmp_path / "report"
    result = rag("eval", "eval/gold/dev.jsonl", "--limit", "3", "--index", str(tmp_path / "index"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    for key in ("answer_f1", "answer_em", "recall_at_1", "recall_at_5", "mrr", "citation_precision",
                "citation_recall", "abstain_recall", "abstain_false_rate", "grounded_rate", "latency_p50_s",
                "latency_p95_s", "retrieval_p50_s", "generation_tokens_per_s", "n_questions"):
        assert isinstance(report[key], (int, float)), key
    assert report["n_questions"] == 3 and len(report["questions"]) == 3
    assert report["recall_at_5"] == 1.0  # the first three dev questions' evidence is always retrieved
    assert report["generator_model"].startswith("Qwen2.5-Coder-")
    assert "qwen2.5-coder-1.5b" in report["model_choice"]  # why that model answers here, in words
    assert (out / "report.md").read_text().startswith("# Evaluation")
    assert (out / "report.png").stat().st_size > 10_000

    again = rag("eval", "--compare", str(out / "report.json"), str(out / "report.json"))
    assert "| answer_f1 |" in again.stdout and "+0.000" in again.stdout


def test_eval_on_a_squad_file_never_touches_the_default_index(tmp_path):
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps(SQUAD))
    before = sorted(p.name for p in (REPO / "index").iterdir()) if (REPO / "index").exists() else None
    result = rag("eval", "--squad", str(squad), "--retrieval-only", "--out", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["n_questions"] == 2 and report["recall_at_1"] == 1.0
    after = sorted(p.name for p in (REPO / "index").iterdir()) if (REPO / "index").exists() else None
    assert before == after
