"""Reports: JSON with every metric and question, Markdown for people (failures first), a PNG, comparisons."""

import json

from rag.evaluation import QuestionResult
from rag.reports import compare_reports, write_report

METRICS = {"answer_f1": 0.5, "answer_em": 0.0, "recall_at_1": 0.5, "recall_at_3": 1.0, "recall_at_5": 1.0,
           "recall_at_10": 1.0, "mrr": 0.75, "latency_p50_s": 1.0, "n_questions": 2}
RESULTS = [
    QuestionResult("good", "Where?", ["Alps"], True, answer="Alps [1]", f1=1.0, em=1.0, evidence_rank=1),
    QuestionResult("bad", "Who?", ["Ann"], True, answer="Bob [1]", f1=0.0, evidence_rank=2),
]


def test_report_files_are_written_with_failures_first(tmp_path):
    paths = write_report(tmp_path / "out", METRICS, RESULTS, {"gold": "g.jsonl", "settings": {"top_k": 4}})
    report = json.loads(paths["json"].read_text())
    assert report["answer_f1"] == 0.5 and [q["id"] for q in report["questions"]] == ["good", "bad"]
    markdown = paths["md"].read_text()
    assert "| answer_f1 | 0.500 |" in markdown
    assert markdown.index("| bad |") < markdown.index("| good |")
    assert paths["png"].read_bytes().startswith(b"\x89PNG")


def test_compare_shows_both_values_and_the_difference(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"answer_f1": 0.4, "mrr": 0.9, "questions": []}))
    b.write_text(json.dumps({"answer_f1": 0.65, "mrr": 0.9, "questions": []}))
    table = compare_reports(a, b)
    assert "| answer_f1 | 0.400 | 0.650 | +0.250 |" in table
    assert "| mrr | 0.900 | 0.900 | +0.000 |" in table
