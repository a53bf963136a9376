"""The answerability score: features every draft has, a logistic regression fitted on evaluation drafts, and a
threshold chosen for a bounded false-abstention rate."""

import json
import math
from dataclasses import asdict

import pytest

from rag.evaluation.calibration import (
    calibrate,
    choose_feature_threshold,
    choose_threshold,
    choose_threshold_over_answerable,
)
from rag.evaluation.scoring import QuestionResult
from rag.types import Chunk, Citation, Draft, GenerationSignals, Hit
from rag.verification.answerability import FEATURES, AnswerabilityModel, auroc, fit, measure
from tests.conftest import FakeEmbedder

TEXT = "The lighthouse at Kessock was built in 1902. Its lamp burns paraffin."
CHUNK = Chunk("c1", "d1", "coast.txt", "Coast", 0, 0, len(TEXT), TEXT)
HIT = Hit(CHUNK, score=1.0, dense_score=0.62)


def cite(quote: str) -> Citation:
    start = TEXT.index(quote)
    return Citation(1, "coast.txt", "Coast", "c1", quote, start, start + len(quote))


def test_features_measure_how_much_of_the_question_the_cited_sentence_covers():
    signals = GenerationSignals(refusal_prob=0.2, mean_logprob=-0.3, min_logprob=-1.1, tokens=2)
    built = measure(Draft("When was the Kessock lighthouse built?", "1902 [1]",
                          [cite("The lighthouse at Kessock was built in 1902.")], [HIT], signals), FakeEmbedder().embed)
    moved = measure(Draft("When was the Kessock lighthouse moved?", "1902 [1]",
                          [cite("The lighthouse at Kessock was built in 1902.")], [HIT], signals), FakeEmbedder().embed)
    assert set(built) == set(FEATURES)
    # "moved" is not in the sentence: two of the question's three content words are
    assert built["question_in_sentence"] == 1.0 and math.isclose(moved["question_in_sentence"], 2 / 3)
    assert built["retrieval_cosine"] == 0.62 and built["refusal_prob"] == 0.2 and built["answer_words"] == 1.0
    assert built["citation_cosine"] > moved["citation_cosine"]


def test_an_uncited_draft_without_signals_measures_zero_rather_than_failing():
    features = measure(Draft("Who lit the lamp?", "nobody", [], [HIT]), FakeEmbedder().embed)
    assert features["citation_cosine"] == 0.0 and features["question_in_sentence"] == 0.0
    assert features["refusal_prob"] == 0.0


def rows_with_a_signal(n: int = 200) -> tuple[list[dict[str, float]], list[int]]:
    """Drafts whose rightness follows the refusal probability, the other features noise-free constants."""
    rows, labels = [], []
    for i in range(n):
        refusal = (i % 20) / 20
        rows.append({name: 0.5 for name in FEATURES} | {"refusal_prob": refusal})
        labels.append(int(refusal < 0.5) if i % 10 else int(refusal >= 0.5))  # one in ten against the trend
    return rows, labels


def test_a_fitted_model_ranks_by_the_signal_and_round_trips_through_json(tmp_path):
    rows, labels = rows_with_a_signal()
    model = fit(rows, labels)
    assert model.coef[FEATURES.index("refusal_prob")] < 0
    scores = [model.score(row) for row in rows]
    assert auroc(scores, labels) > 0.8
    (tmp_path / "m.json").write_text(model.to_json())
    again = AnswerabilityModel.load(tmp_path / "m.json")
    assert again == model and math.isclose(again.score(rows[0]), scores[0])


def result(id_: str, answerable: bool, right: bool, refusal: float, withheld_by_other: bool = False) -> QuestionResult:
    verdicts = [{"check": "supported", "passed": not withheld_by_other, "reason": "", "enforced": True}]
    features = {name: 0.5 for name in FEATURES} | {"refusal_prob": refusal}
    return QuestionResult(id_, "q?", ["x"] if answerable else [], answerable, draft="x [1]",
                          draft_f1=float(right and answerable), verdicts=verdicts, features=features,
                          abstained=withheld_by_other)


def test_the_threshold_withholds_at_most_the_bound_of_the_right_answers_the_other_checks_let_through():
    model = AnswerabilityModel(FEATURES, (0.0,) * len(FEATURES), (1.0,) * len(FEATURES),
                               tuple(-5.0 if n == "refusal_prob" else 0.0 for n in FEATURES), 2.5, 0.5)
    right = [result(f"a{i}", True, True, refusal=i / 21) for i in range(21)]
    right[0] = result("a0", True, True, refusal=0.0, withheld_by_other=True)  # not the score's to withhold
    wrong = [result(f"w{i}", True, False, refusal=0.9 + i / 100) for i in range(5)]
    threshold = choose_threshold(model, right + wrong, max_false_abstention=0.10)
    lost = [r.id for r in right[1:] if model.score(r.features) < threshold]
    assert lost == ["a19", "a20"]  # 10% of the 20 right drafts it judges: the two least sure
    assert all(model.score(r.features) < threshold for r in wrong)


def test_bounding_every_answerable_question_counts_wrong_drafts_and_other_checks_withholdings_too():
    model = AnswerabilityModel(FEATURES, (0.0,) * len(FEATURES), (1.0,) * len(FEATURES),
                               tuple(-5.0 if n == "refusal_prob" else 0.0 for n in FEATURES), 2.5, 0.5)
    right = [result(f"a{i}", True, True, refusal=i / 40) for i in range(15)]
    wrong = [result(f"w{i}", True, False, refusal=0.5 + i / 40) for i in range(4)]
    other = [result("o", True, True, refusal=0.0, withheld_by_other=True)]  # 20 answerable in all
    unanswerable = [result(f"u{i}", False, False, refusal=0.95) for i in range(10)]
    results = right + wrong + other + unanswerable
    threshold = choose_threshold_over_answerable(model, results, max_false_abstention=0.20)
    withheld = [r.id for r in right + wrong if model.score(r.features) < threshold]
    assert withheld == ["w1", "w2", "w3"]  # 20% of 20 is 4, and the other check already withheld one
    assert choose_threshold_over_answerable(model, results, max_false_abstention=0.05) == 0.0


def test_the_verifiers_threshold_is_chosen_the_same_way_from_its_recorded_probability():
    right = [result(f"a{i}", True, True, refusal=0.1) for i in range(10)]
    for i, r in enumerate(right):
        r.features["confirmation_prob"] = 0.5 + i / 20  # 0.50 .. 0.95
    right[9].verdicts.append({"check": "confirmed", "passed": False, "reason": "", "enforced": True})
    wrong = [result("w", False, False, refusal=0.1)]
    wrong[0].features["confirmation_prob"] = 0.2
    # Its own verdict does not put a draft out of its reach; another check's does (right[0] below).
    right[0].verdicts[0]["passed"] = False
    limit = choose_feature_threshold(right + wrong, "confirmation_prob", "confirmed", max_false_abstention=0.2)
    assert limit == right[2].features["confirmation_prob"]  # withholds a1 alone: 20% of the 9 it judges, rounded down


def test_calibrate_fits_on_report_drafts_and_records_its_auroc(tmp_path):
    rows = [result(f"a{i}", True, right=i % 4 != 0, refusal=0.9 if i % 4 == 0 else 0.1) for i in range(40)]
    rows += [result(f"u{i}", False, right=False, refusal=0.8) for i in range(20)]
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"questions": [asdict(r) for r in rows]}))
    model, summary = calibrate([report], max_false_abstention=0.3)
    assert model.auroc > 0.9 and 0.0 < model.threshold <= 1.0 and "AUROC" in summary


def test_a_score_fitted_to_tell_answerable_questions_beside_fewer_checks_bounds_every_answerable_one_withheld(
        tmp_path):
    # Drafts to answerable questions (half of them right) have a low refusal probability, the others a high one;
    # a made-up check "strict" that the runs enforced withheld some of each.
    rows = [result(f"a{i}", True, right=i % 2 == 0, refusal=0.1 + 0.01 * i) for i in range(20)]
    rows += [result(f"u{i}", False, right=False, refusal=0.8 + 0.005 * i) for i in range(20)]
    for row in rows[::5]:
        row.verdicts = [{"check": "strict", "passed": False, "enforced": True}]
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"questions": [asdict(r) for r in rows]}))
    model, _ = calibrate([report], 0.10, ("refusal_prob",), bound="answerable", label="answerable", beside=())
    assert model.auroc == 1.0  # wrong answers to answerable questions count with the answerable ones
    withheld = [r for r in rows if r.answerable and model.score(r.features) < model.threshold]
    assert len(withheld) <= 2 and 0.0 < model.threshold  # "strict" not enforced beside it: 10% of 20 left to it


def test_calibration_needs_both_right_and_wrong_drafts(tmp_path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"questions": [asdict(result("a", True, True, 0.1))]}))
    with pytest.raises(ValueError, match="right and drafts that were wrong"):
        calibrate([report])


def test_a_score_over_the_verifiers_probability_is_fitted_on_the_drafts_that_have_it(tmp_path):
    from rag.verification.answerability import VERIFIED_FEATURES

    rows = [result(f"a{i}", True, right=i % 2 == 0, refusal=0.1) for i in range(40)]
    for i, r in enumerate(rows):
        r.features["confirmation_prob"] = 0.9 if i % 2 == 0 else 0.2  # the verifier tells right from wrong
    rows.append(result("unjudged", True, right=False, refusal=0.1))  # no verifier ran: not a training row
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"questions": [asdict(r) for r in rows]}))
    model, summary = calibrate([report], max_false_abstention=0.1, features=VERIFIED_FEATURES)
    assert model.features == VERIFIED_FEATURES and model.auroc > 0.95 and "confirmation_prob" in summary
    assert model.score(rows[0].features) > model.score(rows[1].features)


def test_rag_calibrate_writes_by_default_the_packaged_score_of_the_model_whose_drafts_it_fits(tmp_path, monkeypatch):
    from rag.models import registry
    from rag.interfaces.cli import main

    scores = {"qwen2.5-coder-0.5b": tmp_path / "small.json", "qwen2.5-coder-1.5b": tmp_path / "large.json"}
    monkeypatch.setattr(registry, "PACKAGED_SCORES", scores)
    rows = [result(f"a{i}", True, right=i % 4 != 0, refusal=0.9 if i % 4 == 0 else 0.1) for i in range(40)]
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"settings": {"generator_model": "qwen2.5-coder-1.5b"},
                                  "questions": [asdict(r) for r in rows]}))
    assert main(["calibrate", str(report), "--max-false-abstention", "0.3"]) == 0
    assert scores["qwen2.5-coder-1.5b"].is_file() and not scores["qwen2.5-coder-0.5b"].exists()
    refit = json.loads(scores["qwen2.5-coder-1.5b"].read_text())
    assert tuple(refit["features"]) == FEATURES  # nothing there before: the general features


def test_rag_calibrate_refits_the_features_the_score_it_replaces_reads_unless_told_others(tmp_path):
    from rag.interfaces.cli import main

    rows = [result(f"a{i}", True, right=i % 4 != 0, refusal=0.9 if i % 4 == 0 else 0.1) for i in range(40)]
    for i, r in enumerate(rows):
        r.features["answered_prob"] = 0.2 if i % 4 == 0 else 0.8
    report, out = tmp_path / "report.json", tmp_path / "score.json"
    report.write_text(json.dumps({"questions": [asdict(r) for r in rows]}))
    two = ("refusal_prob", "answered_prob")
    out.write_text(AnswerabilityModel(two, (0.0, 0.0), (1.0, 1.0), (0.0, 0.0), 0.0, 0.5).to_json())
    assert main(["calibrate", str(report), "--out", str(out), "--max-false-abstention", "0.3"]) == 0
    assert AnswerabilityModel.load(out).features == two
    assert main(["calibrate", str(report), "--out", str(out), "--features", "refusal_prob"]) == 0
    assert AnswerabilityModel.load(out).features == ("refusal_prob",)
