"""Hybrid retrieval: FAISS dense search and BM25 keyword search, fused with reciprocal rank fusion."""

from __future__ import annotations

import numpy as np

from rag.embedding import Embedder
from rag.index import KnowledgeIndex, keyword_tokens
from rag.types import Hit


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = 60) -> list[tuple[int, float]]:
    """Fuse ranked lists of ids: each id scores the sum of ``1 / (k + rank)`` over the lists it appears in.

    Ties keep the order in which ids were first seen, so the result is deterministic.

    >>> reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)[0][0]
    1
    """
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


class HybridRetriever:
    """Finds the chunks of a KnowledgeIndex most relevant to a question."""

    def __init__(self, index: KnowledgeIndex, embedder: Embedder, candidates: int = 20, rrf_k: int = 60) -> None:
        self.index = index
        self.embedder = embedder
        self.candidates = candidates
        self.rrf_k = rrf_k

    def search(self, query: str, top_k: int) -> list[Hit]:
        """The ``top_k`` best chunks for ``query``, best first; empty when the index is empty."""
        n = len(self.index.chunks)
        if n == 0:
            return []
        depth = min(self.candidates, n)
        query_vector = self.embedder.embed([query])
        similarities, rows = self.index.dense.search(query_vector, depth)
        dense_ranking = [int(r) for r in rows[0] if r >= 0]
        keyword_ranking = self.keyword_ranking(query, depth)
        fused = reciprocal_rank_fusion([dense_ranking, keyword_ranking], k=self.rrf_k)[:top_k]

        cosine = dict(zip(dense_ranking, similarities[0].tolist()))
        missing = [row for row, _ in fused if row not in cosine]
        if missing:  # keyword-only hits: score them densely too, so every hit carries a comparable relevance
            vectors = np.stack([self.index.dense.reconstruct(row) for row in missing])
            cosine.update(zip(missing, (vectors @ query_vector[0]).tolist()))
        dense_rank = {row: rank for rank, row in enumerate(dense_ranking, start=1)}
        keyword_rank = {row: rank for rank, row in enumerate(keyword_ranking, start=1)}
        return [
            Hit(
                chunk=self.index.chunks[row],
                score=score,
                dense_score=float(cosine[row]),
                dense_rank=dense_rank.get(row),
                keyword_rank=keyword_rank.get(row),
            )
            for row, score in fused
        ]

    def keyword_ranking(self, query: str, depth: int) -> list[int]:
        """Rows of up to ``depth`` chunks sharing words with ``query``, best BM25 score first."""
        tokens = keyword_tokens([query])
        if self.index.keyword is None or not tokens[0]:
            return []
        rows, scores = self.index.keyword.retrieve(tokens, k=depth, show_progress=False)
        return [int(r) for r, s in zip(rows[0], scores[0]) if s > 0]
