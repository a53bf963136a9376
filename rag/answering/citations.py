"""Turning the generator's ``[n]`` markers into citations of exact passages, and whether those passages hold the
answer's words."""

from __future__ import annotations

import re

from rag.ingest.chunking import split_sentences
from rag.ingest.spreadsheets import row_at
from rag.types import Citation, Hit
from rag.words import as_numerals, content_words

_MARKER = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")


def is_supported(answer: str, passages: str) -> bool:
    """Whether every content word of ``answer`` (markers aside) occurs in ``passages``, and there is one at least.

    >>> is_supported("The Swiss Alps [1]", "The Rhine rises in the Swiss Alps.")
    True
    >>> is_supported("$2 billion", "It costs.")
    False
    >>> is_supported("3 [1]", "The lake has three parts.")  # small numbers in digits or in words alike
    True
    """
    words = as_numerals(content_words(strip_markers(answer)))
    return bool(words) and words <= as_numerals(content_words(passages))


def supported_by_citations(answer: str, citations: list[Citation], hits: list[Hit]) -> bool:
    """Whether the passages (chunks among ``hits``) that ``citations`` point at contain every content word of
    ``answer``. The assistant abstains when they do not; evaluation's grounded rate counts the same thing."""
    cited = {c.chunk_id for c in citations}
    return is_supported(answer, " ".join(h.chunk.text for h in hits if h.chunk.id in cited))


def strip_markers(text: str) -> str:
    """``text`` without citation markers and the spaces before them."""
    return re.sub(r"\s*" + _MARKER.pattern, "", text).strip()


def best_supporting_span(answer: str, hit: Hit) -> tuple[int, int]:
    """Document offsets of the sentence of ``hit``'s chunk that shares most content words with ``answer``.

    Falls back to the whole chunk when no sentence shares any.
    """
    chunk = hit.chunk
    wanted = content_words(strip_markers(answer))
    best, best_overlap = (chunk.start, chunk.end), 0
    for start, end in split_sentences(chunk.text):
        overlap = len(wanted & content_words(chunk.text[start:end]))
        if overlap > best_overlap:
            best, best_overlap = (chunk.start + start, chunk.start + end), overlap
    return best


def parse_citations(answer: str, hits: list[Hit]) -> tuple[str, list[Citation]]:
    """Citations for the ``[n]`` markers in ``answer``, where ``[n]`` means ``hits[n - 1]``.

    Markers pointing at no passage (``[0]``, ``[7]`` of 5) are removed from the text; a passage cited several times
    yields one citation. Returns the cleaned text and the citations in order of first mention.
    """
    cited: list[int] = []

    def keep_valid(match: re.Match[str]) -> str:
        numbers = [int(x) for x in re.split(r"[,;]", match.group(1))]
        valid = [n for n in numbers if 1 <= n <= len(hits)]
        for n in valid:
            if n not in cited:
                cited.append(n)
        return "".join(f"[{n}]" for n in dict.fromkeys(valid))

    text = _MARKER.sub(keep_valid, answer)
    text = re.sub(r"(\[\d+\])(?:\s*\1)+", r"\1", text)  # "[2][2]" -> "[2]"
    text = re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", text)).strip()
    return text, [make_citation(n, hits[n - 1], text) for n in cited]


def make_citation(n: int, hit: Hit, answer: str) -> Citation:
    """Citation ``n`` of ``hit``, quoting its sentence that best supports ``answer``."""
    return quote_citation(n, hit, *best_supporting_span(answer, hit))


def quote_citation(n: int, hit: Hit, start: int, end: int) -> Citation:
    """Citation ``n`` of ``hit``, quoting its document's text from ``start`` to ``end`` (within the chunk)."""
    chunk = hit.chunk
    return Citation(
        n=n,
        doc=chunk.doc_name,
        doc_title=chunk.doc_title,
        chunk_id=chunk.id,
        quote=chunk.text[start - chunk.start : end - chunk.start],
        start=start,
        end=end,
        page=chunk.page_at(start),
        place=row.place if (row := row_at(chunk.doc_name, chunk.text, start - chunk.start)) else None,
    )


def attribute_unmarked(answer: str, hits: list[Hit], question: str = "") -> tuple[str, list[Citation]]:
    """For an answer without valid markers, cite the passage it came from.

    When the answer occurs verbatim in some sentences (case and spacing aside), the citation quotes the one that
    shares most content words with ``question`` (the others merely mention the answer), the better-ranked passage
    on ties. Otherwise it cites the passage sharing most content words with the answer, if any does.
    """
    needle = normalized(strip_markers(answer))
    wanted = content_words(question)
    best: tuple[int, int, int, int] | None = None  # (question overlap, -rank, start, end) of a verbatim sentence
    for rank, hit in enumerate(hits):
        chunk = hit.chunk
        for start, end in split_sentences(chunk.text) or [(0, len(chunk.text))]:
            sentence = chunk.text[start:end]
            if needle and needle in normalized(sentence):
                key = (len(wanted & content_words(sentence)), -rank, chunk.start + start, chunk.start + end)
                best = max(best, key) if best else key
    if best is not None:
        n = 1 - best[1]
        text = f"{answer.rstrip()} [{n}]"
        return text, [quote_citation(n, hits[n - 1], best[2], best[3])]

    overlaps = [len(content_words(answer) & content_words(hit.chunk.text)) for hit in hits]
    if not overlaps or max(overlaps) == 0:
        return answer, []
    n = overlaps.index(max(overlaps)) + 1
    text = f"{answer.rstrip()} [{n}]"
    return text, [make_citation(n, hits[n - 1], text)]


def normalized(text: str) -> str:
    return " ".join(text.lower().replace("’", "'").split()).strip(" .,;:!?")


def naming_sentences(answer: str, question: str, hits: list[Hit]) -> list[Citation]:
    """Citations of every sentence among ``hits`` that holds at least half of the content words ``answer`` adds to
    ``question`` ("Brenner, who in 2001 became the first ..." for "Ada Brenner"), in passages that hold all of
    them. The candidates among which the answer's citation can be the sentence most about the question."""
    added = content_words(strip_markers(answer)) - content_words(question)
    if not added:
        return []
    found: list[Citation] = []
    for n, hit in enumerate(hits, start=1):
        chunk = hit.chunk
        if not added <= content_words(chunk.text):
            continue
        for start, end in split_sentences(chunk.text):
            if 2 * len(added & content_words(chunk.text[start:end])) >= len(added):
                found.append(quote_citation(n, hit, chunk.start + start, chunk.start + end))
    return found
