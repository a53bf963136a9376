"""Evaluation run folders: answers recorded as they come, a stopped run resumed, a sample that keeps the set's share
of unanswerable questions, and a run re-scored from its recorded drafts without a model."""

import dataclasses
import json

import pytest

from rag import Assistant, Settings
from rag.config import SettingsError
from rag.evaluation.runs import (
    ANSWERS_FILE,
    AnswerLog,
    RunError,
    changed_settings,
    differences,
    load_run,
    read_answers,
    rescore,
    run_identity,
    settings_from_record,
    settings_record,
    start_run,
)
from rag.evaluation.scoring import GoldItem, QuestionResult, check_ablation, run_evaluation, sample_gold, summarize
from rag.interfaces.cli import main
from rag.types import GenerationSignals
from rag.verification.answerability import AnswerabilityModel
from tests.conftest import FakeGenerator

SETTINGS = Settings(chunk_tokens=8, chunk_overlap_tokens=0, top_k=2, candidates=4)


def gold_items(n: int, unanswerable_every: int = 0) -> list[GoldItem]:
    return [
        GoldItem(f"q{i}", f"Question {i} about the Rhine?", [] if unanswerable_every and i % unanswerable_every == 0
                 else ["Swiss Alps"], not (unanswerable_every and i % unanswerable_every == 0), [])
        for i in range(n)
    ]


class CountingGenerator(FakeGenerator):
    """A fake generator that fails on a chosen call, as a run stopped part-way does."""

    def __init__(self, replies, fail_at: int | None = None, signals=None) -> None:
        super().__init__(replies, signals)
        self.calls = 0
        self.fail_at = fail_at

    def stream(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return super().stream(*args, **kwargs)


def assistant_with(docs_dir, tmp_path, fake_embedder, generator, settings=SETTINGS) -> Assistant:
    return Assistant.from_folder(docs_dir, tmp_path / "index", settings, generator, fake_embedder)


# ------------------------------------------------------------------------------- results as they come, resume


def test_each_answer_is_on_disk_before_the_next_question_is_asked(docs_dir, tmp_path, fake_embedder):
    generator = CountingGenerator(["In the Swiss Alps [1]."] * 3, fail_at=3)
    assistant = assistant_with(docs_dir, tmp_path, fake_embedder, generator)
    log = AnswerLog(tmp_path / ANSWERS_FILE)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(assistant, gold_items(4), progress=False, on_result=log)
    recorded = read_answers(tmp_path / ANSWERS_FILE)
    assert [r.id for r in recorded] == ["q0", "q1"]  # the third was being asked when the run stopped
    assert recorded[0].draft and recorded[0].passages and recorded[0].verdicts


def test_a_resumed_run_asks_only_what_is_missing_and_reports_the_whole_set_in_order(docs_dir, tmp_path,
                                                                                   fake_embedder):
    generator = CountingGenerator(["In the Swiss Alps [1]."] * 4)
    assistant = assistant_with(docs_dir, tmp_path, fake_embedder, generator)
    _, done = run_evaluation(assistant, gold_items(4)[:1] + gold_items(4)[2:3], progress=False)
    calls = generator.calls
    _, results = run_evaluation(assistant, gold_items(4), progress=False, done=done)
    assert generator.calls - calls == 2  # q1 and q3 only
    assert [r.id for r in results] == ["q0", "q1", "q2", "q3"]


def test_a_line_cut_off_by_a_kill_is_dropped_and_the_next_answer_starts_a_line_of_its_own(tmp_path):
    path = tmp_path / ANSWERS_FILE
    whole = json.dumps(dataclasses.asdict(QuestionResult("a", "Q?", ["x"], True, answer="x")))
    path.write_text(whole + "\n" + whole[:40], encoding="utf-8")
    assert [r.id for r in read_answers(path)] == ["a"]
    AnswerLog(path)(QuestionResult("b", "Q?", ["y"], True))
    assert [r.id for r in read_answers(path)] == ["a", "b"]


def test_a_broken_line_before_the_last_is_an_error_not_a_silent_loss(tmp_path):
    path = tmp_path / ANSWERS_FILE
    whole = json.dumps(dataclasses.asdict(QuestionResult("a", "Q?", ["x"], True)))
    path.write_text(f"{whole}\n{{broken\n{whole}\n", encoding="utf-8")
    with pytest.raises(RunError, match=f"{ANSWERS_FILE}:2"):
        read_answers(path)


def test_a_folder_holding_answers_is_only_reused_with_resume(tmp_path):
    identity = run_identity("gold.jsonl", ["a", "b"], None, SETTINGS, "bfloat16")
    start_run(tmp_path, identity, resume=False)
    AnswerLog(tmp_path / ANSWERS_FILE)(QuestionResult("a", "Q?", ["x"], True))
    with pytest.raises(RunError, match="--resume"):
        start_run(tmp_path, identity, resume=False)
    assert [r.id for r in start_run(tmp_path, identity, resume=True)] == ["a"]


def test_resuming_with_other_settings_model_or_precision_names_each_difference(tmp_path):
    start_run(tmp_path, run_identity("gold.jsonl", ["a"], None, SETTINGS, "bfloat16"), resume=False)
    other = run_identity("gold.jsonl", ["a"], None, SETTINGS.with_changes(top_k=3, generator_model="x.gguf"),
                         "float32")
    with pytest.raises(RunError) as error:
        start_run(tmp_path, other, resume=True)
    message = str(error.value)
    assert "settings.top_k: 2 -> 3" in message and "precision: 'bfloat16' -> 'float32'" in message
    assert "settings.generator_model" in message and "model:" in message


def test_where_things_are_may_differ_on_resume(tmp_path):
    recorded = run_identity("gold.jsonl", ["a"], None, SETTINGS.with_changes(index_dir=tmp_path / "one"), None)
    current = run_identity("gold.jsonl", ["a"], None, SETTINGS.with_changes(index_dir=tmp_path / "two"), None)
    assert differences(recorded, current) == []
    assert differences(recorded, run_identity("gold.jsonl", ["b"], None, SETTINGS, None))  # other questions


def test_settings_survive_their_json_record():
    settings = SETTINGS.with_checks("count").with_changes(min_answerability=0.3)
    assert settings_from_record(json.loads(json.dumps(settings_record(settings)))) == settings


# ---------------------------------------------------------------------------------------------------- sample


def test_a_sample_keeps_the_share_of_unanswerable_questions_and_its_seed_repeats_it():
    gold = gold_items(90, unanswerable_every=3)  # a third unanswerable
    sample = sample_gold(gold, 30, seed=7)
    assert len(sample) == 30 and sum(not item.answerable for item in sample) == 10
    assert sample == sample_gold(gold, 30, seed=7) and sample != sample_gold(gold, 30, seed=8)
    assert [item.id for item in sample] == sorted((item.id for item in sample), key=lambda i: int(i[1:]))
    assert sample_gold(gold, 500) == gold


# -------------------------------------------------------------------------------------------------- rescoring


SIGNALS = GenerationSignals(refusal_prob=0.01, mean_logprob=-0.1, min_logprob=-0.2, tokens=3)


def recorded_run(docs_dir, tmp_path, fake_embedder, settings=SETTINGS):
    replies = ["In the Swiss Alps [1].", "The Rhine [1].", "Ten countries [1].", "I don't know.",
               "Vienna and Basel [2]."]
    assistant = assistant_with(docs_dir, tmp_path, fake_embedder, FakeGenerator(replies, SIGNALS), settings)
    questions = ["Where does the Rhine rise?", "Which river rises in the Swiss Alps?",
                 "How many countries does the Danube flow through?", "How deep is the Rhine?",
                 "Which cities lie on rivers?"]
    gold = [GoldItem(f"q{i}", q, ["Swiss Alps"] if i == 0 else [], i == 0, []) for i, q in enumerate(questions)]
    return run_evaluation(assistant, gold, progress=False, settings=assistant.settings)[1], assistant.settings


def test_a_rescore_under_the_runs_own_settings_reproduces_its_results(docs_dir, tmp_path, fake_embedder):
    results, settings = recorded_run(docs_dir, tmp_path, fake_embedder)
    rescored, notes = rescore(results, settings, settings)
    assert summarize(rescored) == summarize(results)
    assert [r.verdicts for r in rescored] == [r.verdicts for r in results]
    assert "0 of 5 questions changed" in notes[0]


def test_a_check_switched_in_a_rescore_matches_the_runs_own_ablation_row(docs_dir, tmp_path, fake_embedder):
    results, settings = recorded_run(docs_dir, tmp_path, fake_embedder)
    ablation = {row["check"]: row for row in check_ablation(results, settings)}
    for check in ("supported", "adds", "citation_relevance", "count"):
        switched = changed_settings(settings, without_checks=[check]) if check in settings.checks else \
            changed_settings(settings, with_checks=[check])
        metrics = summarize(rescore(results, settings, switched)[0])
        row = ablation[check]
        assert [metrics[k] for k in ("answer_f1", "abstain_recall", "abstain_false_rate")] == \
            [row[k] for k in ("answer_f1", "abstain_recall", "abstain_false_rate")], check


def test_a_threshold_changed_in_a_rescore_judges_the_recorded_features_again(docs_dir, tmp_path, fake_embedder):
    results, settings = recorded_run(docs_dir, tmp_path, fake_embedder)
    drafted = [r for r in results if r.draft]
    strict = changed_settings(settings, with_checks=["answerability"], min_answerability=1.0)
    rescored = {r.id: r for r in rescore(results, settings, strict)[0]}
    assert all(rescored[r.id].abstained and "answerability" in rescored[r.id].withheld_by for r in drafted)
    reason = next(v["reason"] for v in rescored[drafted[0].id].verdicts if v["check"] == "answerability")
    assert "< 1.00" in reason
    lenient = changed_settings(settings, without_checks=list(settings.checks))
    shown = rescore(results, settings, lenient)[0]
    assert all(not r.abstained for r in shown if r.draft)  # every draft shown, scored as its draft
    assert all(r.abstained for r in shown if not r.draft)  # the model's own refusal has nothing to show


def test_a_rescore_refuses_what_only_a_model_could_judge(docs_dir, tmp_path, fake_embedder):
    results, settings = recorded_run(docs_dir, tmp_path, fake_embedder)
    with pytest.raises(RunError, match="count_min_similarity"):
        rescore(results, settings, settings.with_changes(count_min_similarity=0.9))
    with pytest.raises(RunError, match="verifier"):
        rescore(results, settings, settings.with_changes(verifier_model="qwen2.5-coder-1.5b"))
    names = ("answered_prob",)
    asks = AnswerabilityModel(names, (0.0,), (1.0,), (1.0,), 0.0, threshold=0.5)
    (tmp_path / "asks.json").write_text(asks.to_json())
    with pytest.raises(RunError, match="answered_prob"):
        rescore(results, settings, settings.with_changes(answerability_model=tmp_path / "asks.json"))
    with pytest.raises(SettingsError, match="another model"):
        changed_settings(settings, preset="fast")


def test_rag_eval_rescore_writes_a_report_from_a_run_folder(docs_dir, tmp_path, fake_embedder, capsys):
    results, settings = recorded_run(docs_dir, tmp_path, fake_embedder)
    run = tmp_path / "run"
    start_run(run, run_identity("gold.jsonl", [r.id for r in results], None, settings, None), resume=False)
    for result in results:
        AnswerLog(run / ANSWERS_FILE)(result)
    before = (run / ANSWERS_FILE).read_bytes()
    assert main(["eval", "--rescore", str(run), "--without", "supported", "--out", str(tmp_path / "re")]) == 0
    report = json.loads((tmp_path / "re" / "report.json").read_text())
    assert report["rescored_from"] == str(run) and "supported" not in report["settings"]["checks"]
    assert (run / ANSWERS_FILE).read_bytes() == before  # the run itself is left as it was
    assert [r.id for r in load_run(run)[1]] == [r.id for r in results]
    assert main(["eval", "--rescore", str(run), "--top-k", "6"]) == 2
    assert "top_k" in capsys.readouterr().err
    assert main(["eval", "eval/gold/dev.jsonl", "--resume"]) == 2
