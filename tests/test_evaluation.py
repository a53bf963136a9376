"""Evaluation metrics against hand-worked cases, and a whole run with fakes."""

import json

import pytest

from rag import Assistant, Settings
from rag.evaluation.scoring import (
    Evidence,
    GoldFormatError,
    GoldItem,
    Span,
    best_exact_match,
    best_f1,
    evidence_spans,
    extractive_baseline,
    f1_score,
    find_evidence,
    first_relevant_rank,
    load_gold,
    mean_reciprocal_rank,
    normalize_answer,
    percentile,
    recall_at,
    run_evaluation,
)
from rag.types import Chunk, Document, Hit
from tests.conftest import FakeGenerator


def test_squad_normalisation_drops_case_punctuation_articles_and_spaces():
    assert normalize_answer("The  Membership Action Plan (MAP).") == "membership action plan map"
    assert normalize_answer("NATO’s") == normalize_answer("NATO's") == "natos"


def test_f1_and_exact_match_by_hand():
    # prediction "vilnius summit 2023" vs gold "nato vilnius summit": 2 common, P=2/3, R=2/3
    assert f1_score("Vilnius summit 2023", "NATO Vilnius summit") == pytest.approx(2 / 3)
    assert f1_score("Tokyo", "Paris") == 0.0
    assert f1_score("", "") == 1.0 and f1_score("x", "") == 0.0
    assert best_f1("in Tokyo", ["Tokyo", "in Tokyo"]) == 1.0
    assert best_exact_match("The Vilnius summit.", ["Vilnius summit", "Vilnius"]) == 1.0
    assert best_exact_match("Vilnius, Lithuania", ["Vilnius"]) == 0.0
    assert best_f1("anything", []) == 0.0


def _hit(doc: str, start: int, end: int) -> Hit:
    return Hit(Chunk(f"{doc}-{start}", "id", doc, "t", 0, start, end, "x" * (end - start)), 1.0, 0.5)


def test_a_chunk_is_a_hit_when_it_overlaps_an_evidence_span():
    spans = [Span("a.txt", 100, 120)]
    hits = [_hit("b.txt", 100, 120), _hit("a.txt", 0, 100), _hit("a.txt", 119, 200)]
    assert first_relevant_rank(hits, spans) == 3  # touching at 100 is not overlapping; 119 is
    assert first_relevant_rank(hits[:2], spans) is None


def test_recall_and_mrr_by_hand():
    ranks = [1, 2, None, 4]
    assert recall_at(ranks, 1) == 0.25 and recall_at(ranks, 3) == 0.5 and recall_at(ranks, 5) == 0.75
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 0.5 + 0.25) / 4)
    assert recall_at([], 5) == 0.0


def test_evidence_quotes_are_located_in_cleaned_text():
    doc = Document("id", "a.txt", "t", "One “quoted” phrase here. Another.")
    item = GoldItem("q", "?", ["x"], True, [Evidence("a.txt", "“quoted”  phrase"), Evidence("zz.txt", "One")])
    assert evidence_spans(item, {"a.txt": doc}) == [Span("a.txt", 4, 19)]  # "“quoted” phrase"


def test_evidence_typed_with_plain_quotes_or_other_line_breaks_is_still_found_at_its_exact_place():
    text = "He said NATO’s “global partners” group\nsince the early 2010s."
    documents = {"a.txt": Document("id", "a.txt", "t", text)}
    span = find_evidence(Evidence("a.txt", 'nato\'s "global partners" group since'), documents)
    assert text[span.start : span.end] == "NATO’s “global partners” group\nsince"
    assert find_evidence(Evidence("a.txt", "NATO's global"), documents) is None  # words must still be contiguous
    assert find_evidence(Evidence("b.txt", "He said"), documents) is None


def test_percentiles():
    assert percentile([3.0], 50) == 3.0 and percentile([], 95) == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)


def test_baseline_picks_the_top_passage_sentence_sharing_most_question_words():
    text = "Paris is big. The Rhine rises in the Alps. Bern is small."
    hit = Hit(Chunk("c", "d", "a.txt", "t", 0, 0, len(text), text), 1.0, 0.5)
    assert extractive_baseline("Where does the Rhine rise?", [hit]) == "The Rhine rises in the Alps."
    assert extractive_baseline("anything", []) == ""


def test_bad_gold_lines_are_reported_with_their_line_number(tmp_path):
    path = tmp_path / "gold.jsonl"
    path.write_text('{"id": "1", "question": "q", "answers": ["a"]}\n{"question": "no id"}\n')
    with pytest.raises(GoldFormatError, match="gold.jsonl:2"):
        load_gold(path)


def test_a_run_counts_answers_abstentions_and_citations(docs_dir, tmp_path, fake_embedder):
    gold_path = tmp_path / "gold.jsonl"
    rows = [
        {"id": "r", "question": "Where does the Rhine rise?", "answers": ["Swiss Alps"], "answerable": True,
         "evidence": [{"doc": "rivers.txt", "quote": "The Rhine rises in the Swiss Alps."}]},
        {"id": "u", "question": "How deep is the Rhine?", "answers": [], "answerable": False, "evidence": []},
    ]
    gold_path.write_text("\n".join(json.dumps(r) for r in rows))
    generator = FakeGenerator(["The Swiss Alps [1]", "I don't know."])
    settings = Settings(chunk_tokens=8, chunk_overlap_tokens=0, top_k=2, candidates=4)
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", settings, generator, fake_embedder)

    metrics, results = run_evaluation(assistant, load_gold(gold_path), progress=False)
    assert metrics["answer_f1"] == 1.0 and metrics["answer_em"] == 1.0
    assert metrics["recall_at_1"] == 1.0 and metrics["mrr"] == 1.0
    assert metrics["citation_precision"] == 1.0 and metrics["citation_recall"] == 1.0
    assert metrics["abstain_recall"] == 1.0 and metrics["abstain_false_rate"] == 0.0
    assert metrics["grounded_rate"] == 1.0 and metrics["n_questions"] == 2
    assert results[0].cited_docs == ["rivers.txt"] and results[1].abstained


def test_a_run_counts_how_often_a_wrongly_withheld_answer_stood_in_the_closest_sentence_quoted(
        docs_dir, tmp_path, fake_embedder):
    gold_path = tmp_path / "gold.jsonl"
    rows = [{"id": "r", "question": "Where does the Rhine rise?", "answers": ["Swiss Alps"], "answerable": True,
             "evidence": []}]
    gold_path.write_text(json.dumps(rows[0]))
    settings = Settings(chunk_tokens=8, chunk_overlap_tokens=0, top_k=2, candidates=4)
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", settings, FakeGenerator(["I don't know."]),
                                      fake_embedder)
    metrics, [result] = run_evaluation(assistant, load_gold(gold_path), progress=False)
    assert result.abstained and "Swiss Alps" in result.closest["quote"]
    assert metrics["abstain_false_rate"] == 1.0 and metrics["closest_holds_answer"] == 1.0


def test_evidence_missing_from_the_documents_is_reported_not_silently_scored(docs_dir, tmp_path, fake_embedder, caplog):
    gold_path = tmp_path / "gold.jsonl"
    gold_path.write_text(json.dumps(
        {"id": "m", "question": "Where does the Rhine rise?", "answers": ["Swiss Alps"], "answerable": True,
         "evidence": [{"doc": "rivers.txt", "quote": "The Rhine rises on the Moon."}]}
    ))
    settings = Settings(chunk_tokens=8, chunk_overlap_tokens=0, top_k=2, candidates=4)
    assistant = Assistant.from_folder(docs_dir, tmp_path / "index", settings, FakeGenerator(["x"]), fake_embedder)
    _, [result] = run_evaluation(assistant, load_gold(gold_path), retrieval_only=True, progress=False)
    assert result.evidence_not_found == ["rivers.txt: The Rhine rises on the Moon."]
    assert "m: evidence not found" in caplog.text


@pytest.mark.parametrize(
    "gold, docs", [("eval/gold/dev.jsonl", "documents"), ("eval/heldout/gold.jsonl", "eval/heldout/documents")]
)
def test_the_shipped_gold_sets_quote_their_documents_verbatim(gold, docs):
    from rag.ingest.loaders import load_folder
    from tests.conftest import REPO

    documents = {d.name: d for d in load_folder(REPO / docs).documents}
    items = load_gold(REPO / gold)
    assert len({item.id for item in items}) == len(items)
    for item in items:
        assert item.answerable == bool(item.answers) == bool(item.evidence), item.id
        assert len(evidence_spans(item, documents)) == len(item.evidence), item.id
