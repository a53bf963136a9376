"""Choosing what the generator reads: the part of each retrieved passage that bears on the question.

Prompt length is what a CPU pays for most (about 7.5 ms per prompt token for the default model on two cores), and
a small model reads a short, focused passage better than a long one. Each retrieved chunk is narrowed to a window
of whole, consecutive sentences around the sentence most similar to the question, so the sentences that give it
its subject ("It was signed ...") stay with it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rag.ingest.chunking import split_sentences
from rag.models.embedding import Embedder
from rag.types import Hit


def focus_passages(question: str, hits: list[Hit], embedder: Embedder, budget_tokens: int) -> list[Hit]:
    """``hits`` in the same order, each chunk narrowed to at most ``budget_tokens`` embedder tokens of whole
    sentences around its sentence most similar to ``question`` (a longer single sentence is kept whole).

    The narrowed chunks keep their ids, and their offsets stay exact: ``document.text[start:end] == text``.
    """
    sentence_spans = [split_sentences(hit.chunk.text) or [(0, len(hit.chunk.text))] for hit in hits]
    texts = [hit.chunk.text[s:e] for hit, spans in zip(hits, sentence_spans) for s, e in spans]
    if not texts:
        return hits
    vectors = embedder.embed([question, *texts])
    similarities = iter(vectors[1:] @ vectors[0])
    focused = []
    for hit, spans in zip(hits, sentence_spans):
        scores = np.array([next(similarities) for _ in spans])
        tokens = [embedder.count_tokens(hit.chunk.text[s:e]) for s, e in spans]
        first, last = _window(scores, tokens, budget_tokens)
        start, end = spans[first][0], spans[last][1]
        chunk = hit.chunk
        narrowed = dataclasses.replace(
            chunk, start=chunk.start + start, end=chunk.start + end, text=chunk.text[start:end]
        )
        focused.append(dataclasses.replace(hit, chunk=narrowed))
    return focused


def _window(scores: np.ndarray, tokens: list[int], budget: int) -> tuple[int, int]:
    """First and last index of the run of sentences grown from the best-scoring one, taking the earlier neighbour
    first (it usually names what the best sentence is about), while the total stays within ``budget``.

    >>> _window(np.array([0.1, 0.2, 0.9, 0.3]), [10, 10, 10, 10], 25)
    (1, 2)
    """
    first = last = int(np.argmax(scores))
    used = tokens[first]
    grown = True
    while grown:
        grown = False
        if first > 0 and used + tokens[first - 1] <= budget:
            first -= 1
            used += tokens[first]
            grown = True
        if last + 1 < len(tokens) and used + tokens[last + 1] <= budget:
            last += 1
            used += tokens[last]
            grown = True
    return first, last
