"""``rag eval`` end to end with the real models: three gold questions, and a SQuAD file."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from tests.test_squad import SQUAD

pytestmark = pytest.mark.slow


def rag(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag.interfaces.cli", *args], capture_output=True, text=True, timeout=900,
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


def answers_in(out) -> list[dict]:
    path = out / "answers.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def start_stopping(args: list[str], after: int, how: int, out) -> int:
    """Start ``rag eval`` and send it signal ``how`` once ``after`` answers are on disk; its exit status."""
    process = subprocess.Popen([sys.executable, "-m", "rag.interfaces.cli", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=REPO)
    try:
        while len(answers_in(out)) < after and process.poll() is None:
            time.sleep(0.2)
        process.send_signal(how)
        return process.wait(timeout=120)
    finally:
        process.kill()


def test_a_run_killed_then_stopped_then_resumed_gives_the_answers_of_one_uninterrupted_run(tmp_path):
    args = ["eval", "eval/gold/dev.jsonl", "--limit", "5", "--index", str(tmp_path / "index")]
    whole = rag(*args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "cut"
    start_stopping([*args, "--out", str(out)], 2, signal.SIGKILL, out)  # nothing of its own written after
    assert not (out / "report.json").exists() and 2 <= len(answers_in(out)) < 5
    stopped = start_stopping([*args, "--out", str(out), "--resume"], len(answers_in(out)) + 1, signal.SIGTERM, out)
    partial = json.loads((out / "report.json").read_text())
    assert stopped == 130 and partial["partial"] and partial["answered"] == len(answers_in(out)) < 5

    again = rag(*args, "--out", str(out))  # without --resume: refused, nothing lost
    assert again.returncode == 2 and "--resume" in again.stderr
    other = rag(*args, "--out", str(out), "--resume", "--top-k", "3")
    assert other.returncode == 2 and "settings.top_k: 4 -> 3" in other.stderr
    resumed = rag(*args, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr

    ids = [row["id"] for row in answers_in(out)]
    assert len(ids) == len(set(ids)) == 5  # none answered twice
    report, expected = (json.loads((d / "report.json").read_text()) for d in (out, tmp_path / "whole"))
    assert not report["partial"] and report["n_questions"] == 5
    assert [(q["id"], q["answer"], q["draft"]) for q in report["questions"]] == \
        [(q["id"], q["answer"], q["draft"]) for q in expected["questions"]]

    rescored = rag("eval", "--rescore", str(out))  # no model loaded: the run's own metrics again
    assert rescored.returncode == 0, rescored.stderr
    again = json.loads((out / "rescored" / "report.json").read_text())
    for key in ("answer_f1", "answer_em", "abstain_recall", "abstain_false_rate", "citation_precision",
                "intervals", "ablation", "withheld_by_check"):
        assert again[key] == report[key], key


@pytest.mark.skipif(not (REPO.parent / "shared/external/squad2-dev-rhine.json").exists(),
                    reason="SQuAD's Rhine article is not at ../shared/external (eval/external/README.md)")
def test_a_sample_of_the_rhine_article_keeps_its_share_of_unanswerable_questions(tmp_path):
    runs = [rag("eval", "--squad", "--paragraphs", "0-21", "--sample", "30", "--seed", "3", "--retrieval-only",
                "--out", str(tmp_path / name)) for name in ("a", "b")]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr
    a, b = (json.loads((tmp_path / name / "report.json").read_text()) for name in ("a", "b"))
    assert a["sample"] == {"size": 30, "of": 294, "seed": 3} and a["n_questions"] == 30
    assert 30 - a["n_answerable"] == round(30 * 107 / 294)  # the tuning half's share of unanswerable questions
    assert [q["id"] for q in a["questions"]] == [q["id"] for q in b["questions"]]
