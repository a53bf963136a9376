"""From the model's reply to a cited draft, and the citation of a shown answer moved to its best sentence."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rag.answering.citations import (
    attribute_unmarked,
    naming_sentences,
    parse_citations,
    quote_citation,
    strip_markers,
)
from rag.answering.display import as_written
from rag.answering.echo import trim_echo
from rag.ingest.chunking import split_sentences
from rag.types import Citation, Draft, GenerationSignals, Hit

# A sentence shorter than this many words (a heading, "See below.") says too little to show as what the documents hold.
CLOSEST_MIN_WORDS = 4


def draft(query: str, raw: str, hits: list[Hit], signals: GenerationSignals | None = None,
          trim: bool = True, asked: str = "") -> Draft:
    """The model's ``raw`` reply to ``query`` as a cited draft: the part restating the question cut off
    (``rag.answering.echo``, where ``trim``), its ``[n]`` markers resolved, or, without any, the passage holding its
    words cited; the answer in its cited sentence's spelling ("40%" -> "40 percent"). ``asked`` is the question as
    the person wrote it, where ``query`` made a follow-up standalone."""
    reply = raw = raw.strip()
    if trim:
        raw = trim_echo(raw, query)
    text, citations = parse_citations(raw, hits)
    if not citations:
        text, citations = attribute_unmarked(text, hits, query)
    text = as_written(text, [citation.quote for citation in citations])
    return Draft(query, text, citations, hits, signals, reply=strip_markers(reply) if reply != raw else "",
                 asked="" if asked == query else asked)


def most_relevant_citation(query: str, text: str, citation: Citation, hits: list[Hit],
                           embed: Callable[[list[str]], np.ndarray]) -> tuple[str, list[Citation]]:
    """``text`` citing, among the sentences that name its answer, the one whose embedding is closest to
    ``query``: "Ada Brenner", asked who first led the council, cites "Brenner, who in 2001 became the first
    woman to lead the council ..." rather than a sentence that merely names "Mayor Ada Brenner".

    Only the citation moves. The checks before it read the sentence that states the answer in full: judged on
    the sentence closest to the question, a wrong name that the documents mention often would pass them.
    """
    answer = strip_markers(text)
    cited = (citation.doc, citation.start)
    candidates = [c for c in naming_sentences(answer, query, hits) if (c.doc, c.start) != cited]
    if not candidates:
        return text, [citation]
    vectors = embed([query, citation.quote, *(c.quote for c in candidates)])
    cosines = vectors[1:] @ vectors[0]
    best = int(np.argmax(cosines))
    if best == 0:
        return text, [citation]
    chosen = candidates[best - 1]
    return f"{answer} [{chosen.n}]", [chosen]


def closest_sentence(question: str, hits: list[Hit], embed: Callable[[list[str]], np.ndarray]) -> Citation | None:
    """The sentence of ``hits`` whose embedding is closest to ``question``, cited as [n] of its passage: what the
    documents hold nearest to a question they were not found to answer ("the 2019 final was won by ..." for a
    question about 2013), shown beside an abstention so the person can ask again in the documents' terms. None when
    the passages hold no sentence of ``CLOSEST_MIN_WORDS`` words."""
    candidates = [
        (n, hit, hit.chunk.start + start, hit.chunk.start + end)
        for n, hit in enumerate(hits, start=1)
        for start, end in split_sentences(hit.chunk.text) or [(0, len(hit.chunk.text))]
        if len(hit.chunk.text[start:end].split()) >= CLOSEST_MIN_WORDS
    ]
    if not candidates:
        return None
    texts = [hit.chunk.text[start - hit.chunk.start:end - hit.chunk.start] for _, hit, start, end in candidates]
    vectors = embed([question, *texts])
    n, hit, start, end = candidates[int(np.argmax(vectors[1:] @ vectors[0]))]
    return quote_citation(n, hit, start, end)
