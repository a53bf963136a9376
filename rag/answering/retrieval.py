"""Hybrid retrieval: FAISS dense search and BM25 keyword search, fused into one ranking."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

import numpy as np

from rag.config import Fusion, Settings
from rag.models.embedding import Embedder
from rag.types import Chunk, Hit


def reciprocal_rank_fusion(rankings: list[list[Hashable]], k: int = 60) -> list[tuple[Hashable, float]]:
    """Fuse ranked lists of ids: each id scores the sum of ``1 / (k + rank)`` over the lists it appears in.

    Ties keep the order in which ids were first seen, so the result is deterministic.

    >>> reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)[0][0]
    1
    """
    scores: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def weighted_fusion(
    cosines: dict[int, float], keyword_scores: dict[int, float], keyword_weight: float
) -> list[tuple[int, float]]:
    """Fuse scores: each id scores ``(1 - keyword_weight) * cosine + keyword_weight * bm25 / best bm25``.

    Every id in ``keyword_scores`` must have a cosine; an id without a keyword score has none (0). Unlike rank
    fusion, this keeps how far apart the scores are: a chunk far ahead on one ranking and just behind on the
    other wins, where rank fusion calls it a tie. Ties keep the order of ``cosines``.

    >>> weighted_fusion({1: 0.50, 2: 0.45}, {2: 8.0, 1: 2.0}, keyword_weight=0.5)[0][0]
    2
    """
    missing = keyword_scores.keys() - cosines.keys()
    if missing:
        raise ValueError(f"keyword hits without a cosine: {sorted(missing)}")
    best = max(keyword_scores.values(), default=0.0)
    scale = keyword_weight / best if best > 0 else 0.0
    fused = {row: (1 - keyword_weight) * cos + scale * keyword_scores.get(row, 0.0) for row, cos in cosines.items()}
    return sorted(fused.items(), key=lambda pair: -pair[1])


class SearchableIndex(Protocol):
    """What retrieval needs of a store: dense and keyword search over chunks named by keys of the store's own
    kind (a row of the FAISS store, a primary key in Milvus), the chunk behind a key, and cosines on demand.
    ``within`` (document ids) limits a search to those documents' chunks before they are ranked; None searches
    all."""

    def chunk_total(self, within: frozenset[str] | None = None) -> int: ...
    def chunk(self, key: Hashable) -> Chunk: ...
    def dense_search(self, vector: np.ndarray, depth: int,
                     within: frozenset[str] | None = None) -> list[tuple[Hashable, float]]: ...
    def keyword_search(self, query: str, depth: int,
                       within: frozenset[str] | None = None) -> list[tuple[Hashable, float]]: ...
    def cosines(self, keys: list[Hashable], vector: np.ndarray) -> list[float]: ...


class HybridRetriever:
    """Finds the chunks of an index most relevant to a question."""

    def __init__(
        self,
        index: SearchableIndex,
        embedder: Embedder,
        candidates: int = 20,
        fusion: Fusion = "rrf",
        keyword_weight: float = 0.5,
        rrf_k: int = 60,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.candidates = candidates
        self.fusion = fusion
        self.keyword_weight = keyword_weight
        self.rrf_k = rrf_k

    @classmethod
    def from_settings(cls, index: SearchableIndex, embedder: Embedder, settings: Settings) -> HybridRetriever:
        """A retriever searching as ``settings`` say (candidates, fusion and its parameters)."""
        return cls(index, embedder, settings.candidates, settings.fusion, settings.keyword_weight, settings.rrf_k)

    def search(self, query: str, top_k: int, within: frozenset[str] | None = None) -> list[Hit]:
        """The ``top_k`` best chunks for ``query``, best first, of the documents whose ids are ``within`` (None:
        all): both rankings are made among those documents' chunks alone, so the top is the best of the scope, not
        what of an overall top survives a filter. Empty when there is nothing to search."""
        n = self.index.chunk_total(within)
        if n == 0:
            return []
        depth = min(self.candidates, n)
        query_vector = self.embedder.embed([query])[0]
        dense = self.index.dense_search(query_vector, depth, within)
        dense_ranking = [key for key, _ in dense]
        keyword_scores = self.keyword_scores(query, depth, within)
        keyword_ranking = list(keyword_scores)

        cosine = dict(dense)
        missing = [key for key in keyword_ranking if key not in cosine]
        if missing:  # keyword-only hits: score them densely too, so every hit carries a comparable relevance
            cosine.update(zip(missing, self.index.cosines(missing, query_vector)))
        if self.fusion == "rrf":
            fused = reciprocal_rank_fusion([dense_ranking, keyword_ranking], k=self.rrf_k)[:top_k]
        else:
            fused = weighted_fusion(cosine, keyword_scores, self.keyword_weight)[:top_k]
        dense_rank = {key: rank for rank, key in enumerate(dense_ranking, start=1)}
        keyword_rank = {key: rank for rank, key in enumerate(keyword_ranking, start=1)}
        return [
            Hit(
                chunk=self.index.chunk(key),
                score=score,
                dense_score=float(cosine[key]),
                dense_rank=dense_rank.get(key),
                keyword_rank=keyword_rank.get(key),
            )
            for key, score in fused
        ]

    def keyword_scores(self, query: str, depth: int, within: frozenset[str] | None = None) -> dict[Hashable, float]:
        """BM25 scores of up to ``depth`` chunks sharing words with ``query``, by key, best first."""
        return dict(self.index.keyword_search(query, depth, within))
