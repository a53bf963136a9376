"""Hybrid retrieval: dense and keyword rankings fused by weighted scores or by reciprocal rank."""

import pytest

from rag.answering.retrieval import HybridRetriever, reciprocal_rank_fusion, weighted_fusion
from rag.config import Settings
from rag.ingest.indexing import update_index
from rag.ingest.loaders import load_folder


def test_fusion_rewards_agreement_between_rankings():
    fused = reciprocal_rank_fusion([[1, 2, 3], [2, 4, 3]], k=60)
    assert [item for item, _ in fused] == [2, 3, 1, 4]  # 3 (ranks 3 and 3) beats 1 and 4 (one rank each)
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_fusion_of_one_ranking_keeps_its_order_and_ties_keep_first_seen_order():
    assert [i for i, _ in reciprocal_rank_fusion([[5, 1, 9]])] == [5, 1, 9]
    assert [i for i, _ in reciprocal_rank_fusion([[7], [8]])] == [7, 8]
    assert reciprocal_rank_fusion([]) == []


def test_weighted_fusion_keeps_the_margins_that_rank_fusion_drops():
    cosines = {1: 0.60, 2: 0.58, 3: 0.20}
    keyword = {2: 9.0, 1: 1.0}  # 2 is far ahead on keywords and only just behind on meaning
    assert [row for row, _ in weighted_fusion(cosines, keyword, keyword_weight=0.5)] == [2, 1, 3]
    assert reciprocal_rank_fusion([[1, 2, 3], [2, 1]])[0][1] == reciprocal_rank_fusion([[1, 2, 3], [2, 1]])[1][1]


def test_weighted_fusion_scores_are_the_weighted_sum_of_cosine_and_relative_bm25():
    fused = dict(weighted_fusion({1: 0.4, 2: 0.8}, {1: 6.0, 2: 3.0}, keyword_weight=0.25))
    assert fused[1] == pytest.approx(0.75 * 0.4 + 0.25 * 1.0)
    assert fused[2] == pytest.approx(0.75 * 0.8 + 0.25 * 0.5)


def test_weighted_fusion_at_the_extremes_is_one_ranking_and_ties_keep_dense_order():
    cosines, keyword = {1: 0.9, 2: 0.5, 3: 0.5}, {3: 2.0, 2: 1.0}
    assert [r for r, _ in weighted_fusion(cosines, keyword, keyword_weight=0.0)] == [1, 2, 3]
    assert [r for r, _ in weighted_fusion(cosines, keyword, keyword_weight=1.0)] == [3, 2, 1]
    assert [r for r, _ in weighted_fusion(cosines, {}, keyword_weight=0.5)] == [1, 2, 3]


def test_weighted_fusion_needs_a_cosine_for_every_keyword_hit():
    with pytest.raises(ValueError, match="without a cosine"):
        weighted_fusion({1: 0.5}, {2: 1.0}, keyword_weight=0.5)


@pytest.fixture
def index(docs_dir, fake_embedder):
    index, _ = update_index(load_folder(docs_dir).documents, fake_embedder, Settings(chunk_tokens=8,
                            chunk_overlap_tokens=0), None)
    return index


@pytest.fixture
def retriever(index, fake_embedder):
    return HybridRetriever(index, fake_embedder, candidates=10)


def test_search_returns_top_k_hits_with_ranks_and_scores(retriever):
    hits = retriever.search("Which river rises in the Swiss Alps?", top_k=2)
    assert len(hits) == 2
    assert "Swiss Alps" in hits[0].chunk.text
    assert hits[0].keyword_rank == 1
    assert hits[0].score >= hits[1].score
    assert all(-1.0 <= h.dense_score <= 1.0 for h in hits)


def test_keyword_only_hits_still_carry_a_dense_score(retriever):
    hits = retriever.search("Basel", top_k=5)
    assert any("Basel" in h.chunk.text and h.keyword_rank == 1 for h in hits)
    assert all(isinstance(h.dense_score, float) for h in hits)


@pytest.mark.parametrize("fusion", ["weighted", "rrf"])
def test_both_fusions_find_the_passage_that_names_the_answer(index, fake_embedder, fusion):
    retriever = HybridRetriever.from_settings(index, fake_embedder, Settings(candidates=10, fusion=fusion))
    assert retriever.fusion == fusion
    hits = retriever.search("Swiss Alps river", top_k=3)
    assert "Swiss Alps" in hits[0].chunk.text
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_query_of_stop_words_only_uses_dense_search(retriever):
    hits = retriever.search("the of and", top_k=3)
    assert all(h.keyword_rank is None for h in hits)
