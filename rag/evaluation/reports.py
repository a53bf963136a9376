"""Evaluation reports: report.json (everything), report.md (for people), report.png (at a glance), comparisons."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from rag.config import Settings  # noqa: E402
from rag.evaluation.scoring import (  # noqa: E402
    INTERVAL_METRICS,
    QuestionResult,
    answerability_auroc,
    bootstrap_intervals,
    check_ablation,
    paired_differences,
    withheld_by_check,
)

SUMMARY_ORDER = (
    "answer_f1", "answer_em", "baseline_f1", "baseline_em", "recall_at_1", "recall_at_3", "recall_at_5",
    "recall_at_10", "mrr", "citation_precision", "citation_recall", "abstain_recall", "abstain_false_rate",
    "grounded_rate", "latency_p50_s", "latency_p95_s", "latency_max_s", "retrieval_p50_s",
    "generation_tokens_per_s", "n_questions", "n_answerable",
)


def write_report(
    out_dir: Path, metrics: dict[str, float], results: list[QuestionResult], run_info: dict,
    settings: Settings | None = None,
) -> dict[str, Path]:
    """Write report.json, report.md and report.png into ``out_dir``; returns their paths.

    Beside the metrics: their bootstrap 95% intervals, how many answers each check withheld, and (with the
    run's ``settings``) what switching each check would have given (``check_ablation``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / f"report.{name}" for name in ("json", "md", "png")}
    answered = bool(results) and "answer_f1" in metrics
    extra = {
        "intervals": bootstrap_intervals(results) if answered else {},
        "withheld_by_check": withheld_by_check(results),
        "answerability_auroc": answerability_auroc(results),
        "ablation": check_ablation(results, settings) if answered and settings is not None else [],
    }
    report = {**metrics, **run_info, **extra, "questions": [asdict(r) for r in results]}
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    paths["md"].write_text(markdown_report(metrics, results, run_info, extra), encoding="utf-8")
    plot_report(metrics, results, paths["png"])
    return paths


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _cell(text: object, limit: int = 80) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary_table(metrics: dict[str, float], intervals: dict[str, list[float]] | None = None) -> str:
    intervals = intervals or {}
    rows = ["| metric | value | 95% interval |", "|---|---|---|"]
    for name in (n for n in SUMMARY_ORDER if n in metrics):
        interval = f"{intervals[name][0]:.3f} - {intervals[name][1]:.3f}" if name in intervals else ""
        rows.append(f"| {name} | {_fmt(metrics[name])} | {interval} |")
    return "\n".join(rows)


def ablation_table(rows: list[dict]) -> str:
    """One row per check: the metrics had it been switched (off if enforced, on if not)."""
    lines = ["| check | switched | F1 | EM | abstain recall | false abstention |", "|---|---|---|---|---|---|"]
    for row in rows:
        note = f" ({row['no_draft']} never drafted)" if row["no_draft"] else ""
        lines.append(
            f"| {row['check']} | {row['switched']}{note} | {row['answer_f1']:.3f} | {row['answer_em']:.3f} | "
            f"{row['abstain_recall']:.3f} | {row['abstain_false_rate']:.3f} |"
        )
    return "\n".join(lines)


def markdown_report(
    metrics: dict[str, float], results: list[QuestionResult], run_info: dict, extra: dict | None = None
) -> str:
    """The summary table with intervals, withholdings by check, the checks' ablation, the run's settings, and one
    row per question with failures first."""
    extra = extra or {}
    lines = [f"# Evaluation: {run_info.get('gold', '')}", ""]
    if run_info.get("partial"):
        lines += [f"**Partial**: stopped after {run_info.get('answered')} of {run_info.get('of')} questions; "
                  "the same command with `--resume` finishes it.", ""]
    if run_info.get("sample"):
        sample = run_info["sample"]
        lines += [f"A sample of {sample['size']} of {sample['of']} questions (seed {sample['seed']}), keeping the "
                  "set's share of unanswerable ones; the intervals are the sample's.", ""]
    if run_info.get("rescored_from"):
        lines += [f"Re-scored from the drafts recorded in `{run_info['rescored_from']}`, no model loaded: "
                  + "; ".join(run_info.get("notes", [])) + ".", ""]
    lines += [summary_table(metrics, extra.get("intervals")), ""]
    if extra.get("withheld_by_check"):
        lines += ["Answers withheld, by check: " + ", ".join(f"{k} {v}" for k, v in extra["withheld_by_check"].items()),
                  ""]
    if extra.get("answerability_auroc") is not None:
        lines += [f"Answerability score AUROC (right drafts above wrong ones): {extra['answerability_auroc']:.3f}", ""]
    if extra.get("ablation"):
        lines += ["## Each check switched, from this run's verdicts", "", ablation_table(extra["ablation"]), ""]
    lines += ["Baseline: the same retrieval, answering with the best sentence of the top passage.", ""]
    lines += [f"- {key}: `{_cell(value, 200)}`" for key, value in run_info.items() if key != "settings"]
    lines += [f"- settings: `{json.dumps(run_info.get('settings', {}))}`", "", "## Questions (failures first)", ""]
    lines += ["| id | question | gold | answer | F1 | evidence rank | cited | withheld by | s |",
              "|---|---|---|---|---|---|---|---|---|"]

    def failure_first(r: QuestionResult) -> tuple:
        correct = (r.abstained if not r.answerable else r.f1 >= 0.5)
        return (correct, r.f1, r.id)

    for r in sorted(results, key=failure_first):
        gold = " / ".join(r.gold_answers) if r.answerable else "(unanswerable)"
        answer = f"(abstained; draft: {r.draft})" if r.abstained and r.draft else (
            "(abstained)" if r.abstained else r.answer)
        lines.append(
            f"| {r.id} | {_cell(r.question, 70)} | {_cell(gold, 40)} | {_cell(answer, 60)} | {r.f1:.2f} | "
            f"{r.evidence_rank or '-'} | {_cell(', '.join(r.cited_docs), 40) or '-'} | "
            f"{', '.join(r.withheld_by) or '-'} | {r.latency_s:.2f} |"
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


def load_results(report: dict) -> list[QuestionResult]:
    """The per-question results of a loaded report.json (fields a report of another version lacks take their
    defaults; ones this version does not know are dropped)."""
    return [QuestionResult.from_record(q) for q in report.get("questions", [])]


def compare_reports(first: Path, second: Path) -> str:
    """The numeric top-level metrics of two report.json files (or the report folders holding them) side by side
    with their differences; for the questions both asked, the main metrics' paired bootstrap 95% intervals of the
    difference, and whether each difference falls outside the noise (its interval excludes 0)."""
    paths = [Path(p) / "report.json" if Path(p).is_dir() else Path(p) for p in (first, second)]
    a, b = (json.loads(p.read_text(encoding="utf-8")) for p in paths)
    paired = paired_differences(load_results(a), load_results(b))
    names = [n for n in SUMMARY_ORDER if n in a or n in b]
    names += sorted(n for n in set(a) | set(b) if n not in names and isinstance(a.get(n, b.get(n)), (int, float))
                    and not isinstance(a.get(n, b.get(n)), bool))
    rows = ["| metric | A | B | B - A | paired B - A (95% interval) | outside the noise |", "|---|---|---|---|---|---|"]
    for name in names:
        va, vb = a.get(name), b.get(name)
        delta = f"{vb - va:+.3f}" if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else "-"
        shown = [_fmt(v) if v is not None else "-" for v in (va, vb)]
        interval, verdict = "", ""
        if name in paired:
            difference, low, high = paired[name]
            interval, verdict = f"{difference:+.3f} ({low:+.3f} to {high:+.3f})", "yes" if low > 0 or high < 0 else "no"
        rows.append(f"| {name} | {shown[0]} | {shown[1]} | {delta} | {interval} | {verdict} |")
    shared = len({q["id"] for q in a.get("questions", [])} & {q["id"] for q in b.get("questions", [])})
    note = f"Intervals: paired bootstrap over the {shared} questions both runs asked ({', '.join(INTERVAL_METRICS)})."
    return f"A: {first}\nB: {second}\n\n" + "\n".join(rows) + "\n\n" + note
