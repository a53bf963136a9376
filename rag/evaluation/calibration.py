"""Fitting the answerability score (``rag calibrate``) on the drafts of evaluation runs, and choosing its threshold.

The label of a draft is whether it was right (F1 >= 0.5 against an answerable question's gold answers); drafts to
unanswerable questions are all wrong. With ``label="answerable"`` it is whether the question was answerable at
all: what abstain recall and false abstention count. The threshold is the highest that withholds at most the given
share of the right drafts that the other checks let through, or (``bound="answerable"``) of every answerable
question, counting those the other checks withheld: the false-abstention rate evaluation reports.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal

from rag.evaluation.runs import load_results
from rag.evaluation.scoring import QuestionResult, is_right
from rag.verification.answerability import FEATURES, AnswerabilityModel, auroc, fit


def withheld_anyway(result: QuestionResult, check: str = "answerability", beside: Collection[str] | None = None) -> bool:
    """Whether something other than ``check`` withheld the answer (or there was no draft): a check the run enforced,
    or, given ``beside``, one of those checks (the model's own refusal always counts)."""
    if not result.draft:
        return result.abstained

    def enforced(v: dict) -> bool:
        return v["enforced"] if beside is None else v["check"] in beside or v["check"] == "refusal"

    return any(not v["passed"] and enforced(v) and v["check"] != check for v in result.verdicts)


def choose_threshold(
    model: AnswerabilityModel, results: Sequence[QuestionResult], max_false_abstention: float
) -> float:
    """The highest threshold on the answerability score that withholds at most ``max_false_abstention`` of the
    right drafts the other checks let through: as many wrong answers withheld as that allows.

    The bound is on right answers lost, not on every answerable question withheld: a small model's wrong answers
    to answerable questions are better withheld too, and counting them against the score would forbid it to
    withhold anything once the other checks have withheld their share.
    """
    right = [model.score(r.features) for r in results if is_right(r) and not withheld_anyway(r) and r.features]
    return _lowest_kept(right, max_false_abstention)


def choose_threshold_over_answerable(
    model: AnswerabilityModel, results: Sequence[QuestionResult], max_false_abstention: float,
    beside: Collection[str] | None = None,
) -> float:
    """The highest threshold at which the answerable questions withheld, by the score or anything else (the checks
    the runs enforced, or those ``beside`` names), stay within ``max_false_abstention`` of them all; 0.0 when the
    other checks already withhold that many."""
    answerable = [r for r in results if r.answerable]
    anyway = sum(1 for r in answerable if withheld_anyway(r, beside=beside))
    scored = sorted(model.score(r.features) for r in answerable if not withheld_anyway(r, beside=beside) and r.features)
    allowed = int(max_false_abstention * len(answerable)) - anyway
    if allowed <= 0 or not scored:
        return 0.0
    return scored[allowed] if allowed < len(scored) else 1.0


def choose_feature_threshold(
    results: Sequence[QuestionResult], feature: str, check: str, max_false_abstention: float
) -> float:
    """``choose_threshold`` for a check that compares one recorded feature (such as the verifier's
    ``confirmation_prob``, read by ``confirmed``) with its threshold."""
    right = [
        r.features[feature] for r in results if is_right(r) and not withheld_anyway(r, check) and feature in r.features
    ]
    return _lowest_kept(right, max_false_abstention)


def _lowest_kept(right_scores: list[float], max_false_abstention: float) -> float:
    right = sorted(right_scores)
    allowed = int(max_false_abstention * len(right))  # right drafts the threshold may withhold
    if not right:
        return 0.0
    # Withholding below right[allowed] withholds exactly the ``allowed`` lowest-scored right drafts (ties aside).
    return right[allowed] if allowed < len(right) else 1.0


def calibrate(
    reports: Sequence[Path], max_false_abstention: float = 0.10, features: Sequence[str] = FEATURES,
    bound: Literal["right", "answerable"] = "right", label: Literal["right", "answerable"] = "right",
    beside: Collection[str] | None = None,
) -> tuple[AnswerabilityModel, str]:
    """Fit the score over ``features`` on every draft of ``reports`` that has them, labelled right or wrong, or
    answerable or not (``label``), and set its threshold (bounding the right drafts lost, or every answerable
    question withheld: ``bound``; ``beside``: the checks enforced with it, where they differ from the runs'); the
    drafts those checks withhold anyway are left out of the fit. Returns the model and a summary."""
    results = load_results(reports)
    drafted = [r for r in results if r.draft and r.features and all(name in r.features for name in features)]
    if beside is not None:
        drafted = [r for r in drafted if not withheld_anyway(r, beside=beside)]
    labels = [int(r.answerable) if label == "answerable" else is_right(r) for r in drafted]
    if len(set(labels)) < 2:
        raise ValueError("calibration needs drafts of both kinds: " + (
            "right and drafts that were wrong" if label == "right" else "to answerable and to unanswerable questions"))
    model = fit([r.features for r in drafted], labels, ", ".join(str(p) for p in reports), features)
    if bound == "answerable":
        threshold = choose_threshold_over_answerable(model, results, max_false_abstention, beside)
    else:
        threshold = choose_threshold(model, results, max_false_abstention)
    scores = [model.score(r.features) for r in drafted]
    model = AnswerabilityModel(**(model.__dict__ | {"threshold": threshold, "auroc": auroc(scores, labels)}))
    return model, summary(model, drafted, labels, scores)


def summary(model: AnswerabilityModel, drafted: list[QuestionResult], labels: list[int], scores: list[float]) -> str:
    lines = [
        f"drafts: {len(drafted)} ({sum(labels)} labelled 1); AUROC on them {model.auroc:.3f}; "
        f"threshold {model.threshold:.3f}",
        "", "| feature | weight (standardised) |", "|---|---|",
    ]
    lines += [f"| {name} | {coef:+.3f} |" for name, coef in zip(model.features, model.coef)]
    lines += ["", reliability_table(scores, labels)]
    return "\n".join(lines)


def reliability_table(scores: Sequence[float], labels: Sequence[int], bins: int = 5) -> str:
    """The calibration curve as a table: per score bin, how many drafts, their mean score and how many were right.

    >>> print(reliability_table([0.1, 0.9], [0, 1], bins=2))
    | score | drafts | mean score | right |
    |---|---|---|---|
    | 0.0-0.5 | 1 | 0.10 | 0.00 |
    | 0.5-1.0 | 1 | 0.90 | 1.00 |
    """
    rows = ["| score | drafts | mean score | right |", "|---|---|---|---|"]
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [(s, y) for s, y in zip(scores, labels) if low <= s < high or (b == bins - 1 and s == 1.0)]
        if inside:
            mean = sum(s for s, _ in inside) / len(inside)
            right = sum(y for _, y in inside) / len(inside)
            rows.append(f"| {low:.1f}-{high:.1f} | {len(inside)} | {mean:.2f} | {right:.2f} |")
    return "\n".join(rows)
