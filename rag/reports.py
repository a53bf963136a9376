"""Evaluation reports: report.json (everything), report.md (for people), report.png (at a glance), comparisons."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from rag.evaluation import QuestionResult  # noqa: E402

SUMMARY_ORDER = (
    "answer_f1", "answer_em", "baseline_f1", "baseline_em", "recall_at_1", "recall_at_3", "recall_at_5",
    "recall_at_10", "mrr", "citation_precision", "citation_recall", "abstain_recall", "abstain_false_rate",
    "grounded_rate", "latency_p50_s", "latency_p95_s", "retrieval_p50_s", "generation_tokens_per_s",
    "n_questions", "n_answerable",
)


def write_report(
    out_dir: Path, metrics: dict[str, float], results: list[QuestionResult], run_info: dict
) -> dict[str, Path]:
    """Write report.json, report.md and report.png into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / f"report.{name}" for name in ("json", "md", "png")}
    report = {**metrics, **run_info, "questions": [asdict(r) for r in results]}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    paths["md"].write_text(markdown_report(metrics, results, run_info), encoding="utf-8")
    plot_report(metrics, results, paths["png"])
    return paths


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _cell(text: object, limit: int = 80) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary_table(metrics: dict[str, float]) -> str:
    rows = ["| metric | value |", "|---|---|"]
    rows += [f"| {name} | {_fmt(metrics[name])} |" for name in SUMMARY_ORDER if name in metrics]
    return "\n".join(rows)


def markdown_report(metrics: dict[str, float], results: list[QuestionResult], run_info: dict) -> str:
    """The summary table, the run's settings, and one row per question with failures first."""
    lines = [f"# Evaluation: {run_info.get('gold', '')}", "", summary_table(metrics), ""]
    lines += ["Baseline: the same retrieval, answering with the best sentence of the top passage.", ""]
    lines += [f"- {key}: `{_cell(value, 200)}`" for key, value in run_info.items() if key != "settings"]
    lines += [f"- settings: `{json.dumps(run_info.get('settings', {}))}`", "", "## Questions (failures first)", ""]
    lines += ["| id | question | gold | answer | F1 | evidence rank | cited | s |", "|---|---|---|---|---|---|---|---|"]

    def failure_first(r: QuestionResult) -> tuple:
        correct = (r.abstained if not r.answerable else r.f1 >= 0.5)
        return (correct, r.f1, r.id)

    for r in sorted(results, key=failure_first):
        gold = " / ".join(r.gold_answers) if r.answerable else "(unanswerable)"
        answer = "(abstained)" if r.abstained else r.answer
        lines.append(
            f"| {r.id} | {_cell(r.question, 70)} | {_cell(gold, 40)} | {_cell(answer, 60)} | {r.f1:.2f} | "
            f"{r.evidence_rank or '-'} | {_cell(', '.join(r.cited_docs), 40) or '-'} | {r.latency_s:.2f} |"
        )
    return "\n".join(lines) + "\n"


def plot_report(metrics: dict[str, float], results: list[QuestionResult], path: Path) -> None:
    fig, (recall_ax, f1_ax, latency_ax) = plt.subplots(1, 3, figsize=(14, 4))
    ks = [1, 3, 5, 10]
    recall_ax.plot(ks, [metrics[f"recall_at_{k}"] for k in ks], marker="o")
    recall_ax.set(title="Retrieval recall@k", xlabel="k (passages)", ylabel="recall", ylim=(0, 1.05), xticks=ks)
    recall_ax.grid(alpha=0.3)
    answerable = [r for r in results if r.answerable]
    f1_ax.hist([r.f1 for r in answerable], bins=10, range=(0, 1), color="tab:green", alpha=0.8, label="assistant")
    f1_ax.hist([r.baseline_f1 for r in answerable], bins=10, range=(0, 1), histtype="step", color="black",
               label="extractive baseline")
    f1_ax.set(title=f"Answer F1 per question (mean {metrics.get('answer_f1', 0):.2f})", xlabel="F1",
              ylabel="questions")
    f1_ax.legend()
    latency_ax.hist([r.latency_s for r in results], bins=15, color="tab:orange", alpha=0.8)
    latency_ax.set(title=f"Latency (p50 {metrics.get('latency_p50_s', 0):.2f} s)", xlabel="seconds",
                   ylabel="questions")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compare_reports(first: Path, second: Path) -> str:
    """The numeric top-level metrics of two report.json files side by side with their differences."""
    a, b = (json.loads(Path(p).read_text(encoding="utf-8")) for p in (first, second))
    names = [n for n in SUMMARY_ORDER if n in a or n in b]
    names += sorted(n for n in set(a) | set(b) if n not in names and isinstance(a.get(n, b.get(n)), (int, float))
                    and not isinstance(a.get(n, b.get(n)), bool))
    rows = ["| metric | A | B | B - A |", "|---|---|---|---|"]
    for name in names:
        va, vb = a.get(name), b.get(name)
        delta = f"{vb - va:+.3f}" if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else "-"
        shown = [_fmt(v) if v is not None else "-" for v in (va, vb)]
        rows.append(f"| {name} | {shown[0]} | {shown[1]} | {delta} |")
    return f"A: {first}\nB: {second}\n\n" + "\n".join(rows)
