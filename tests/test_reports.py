"""Reports: JSON with every metric and question, Markdown for people (failures first), a PNG, comparisons."""

import json
from dataclasses import asdict

from rag.config import Settings
from rag.evaluation.reports import compare_reports, write_report
from rag.evaluation.scoring import QuestionResult, bootstrap_intervals, check_ablation, summarize, withheld_by_check

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
    assert "| answer_f1 | 0.500 | 0.000 - 1.000 |" in markdown  # two questions: the interval says how little
    assert markdown.index("| bad |") < markdown.index("| good |")
    assert paths["png"].read_bytes().startswith(b"\x89PNG")


def test_compare_shows_both_values_and_the_difference(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"answer_f1": 0.4, "mrr": 0.9, "questions": []}))
    b.write_text(json.dumps({"answer_f1": 0.65, "mrr": 0.9, "questions": []}))
    table = compare_reports(a, b)
    assert "| answer_f1 | 0.400 | 0.650 | +0.250 |" in table
    assert "| mrr | 0.900 | 0.900 | +0.000 |" in table


def test_compare_takes_the_report_folders_rag_eval_writes_as_well(tmp_path):
    for name, f1 in (("before", 0.4), ("after", 0.5)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps({"answer_f1": f1, "questions": []}))
    assert "| answer_f1 | 0.400 | 0.500 | +0.100 |" in compare_reports(tmp_path / "before", tmp_path / "after")


def answered(id_: str, answerable: bool, right: bool, abstained: bool = False, **extra) -> QuestionResult:
    f1 = float(right and not abstained and answerable)
    return QuestionResult(id_, "q?", ["x"] if answerable else [], answerable, abstained=abstained, f1=f1, em=f1,
                          **extra)


def test_compare_tells_a_difference_outside_the_noise_from_one_inside_it(tmp_path):
    # 60 answerable questions: B gets 30 more right (a real change); C gets one more right (noise).
    start = [answered(f"q{i}", True, right=i < 20) for i in range(60)]
    better = [answered(f"q{i}", True, right=i < 50) for i in range(60)]
    slightly = [answered(f"q{i}", True, right=i < 21) for i in range(60)]
    paths = {}
    for name, results in {"a": start, "b": better, "c": slightly}.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(summarize(results) | {"questions": [asdict(r) for r in results]}))
    real = compare_reports(paths["a"], paths["b"]).splitlines()
    noise = compare_reports(paths["a"], paths["c"]).splitlines()
    assert next(line for line in real if line.startswith("| answer_f1")).endswith("| yes |")
    assert next(line for line in noise if line.startswith("| answer_f1")).endswith("| no |")


def test_intervals_bracket_the_metric_and_narrow_with_more_questions():
    few = [answered(f"q{i}", True, right=i % 2 == 0) for i in range(10)]
    many = [answered(f"q{i}", True, right=i % 2 == 0) for i in range(400)]
    (low_few, high_few), (low_many, high_many) = (bootstrap_intervals(r)["answer_f1"] for r in (few, many))
    assert low_few <= 0.5 <= high_few and low_many <= 0.5 <= high_many
    assert high_many - low_many < (high_few - low_few) / 3


def test_withholdings_are_counted_by_check_and_each_check_switched_from_the_verdicts():
    def verdicts(failed: str | None) -> list[dict]:
        return [{"check": c, "passed": c != failed, "reason": "", "enforced": True} for c in ("supported", "count")]

    results = [
        # right, withheld by "count": switching "count" off shows it
        answered("a", True, right=True, abstained=True, draft="x [1]", draft_f1=1.0, draft_em=1.0,
                 verdicts=verdicts("count"), withheld_by=["count"]),
        # unanswerable, withheld by "supported": switching "supported" off shows the (wrong) draft
        answered("b", False, right=False, abstained=True, draft="y [1]", verdicts=verdicts("supported"),
                 withheld_by=["supported"]),
        answered("c", True, right=True, draft="x [1]", draft_f1=1.0, draft_em=1.0, verdicts=verdicts(None)),
    ]
    assert withheld_by_check(results) == {"count": 1, "supported": 1}
    rows = {row["check"]: row for row in check_ablation(results, Settings(checks=("supported", "count")))}
    assert rows["count"]["switched"] == "off" and rows["count"]["answer_f1"] == 1.0
    assert rows["count"]["abstain_recall"] == 1.0
    assert rows["supported"]["answer_f1"] == 0.5 and rows["supported"]["abstain_recall"] == 0.0
    assert rows["adds"]["switched"] == "on"  # not enforced in this run: it recorded no failure, so nothing moves
    assert rows["adds"]["answer_f1"] == 0.5
