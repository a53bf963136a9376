"""Turning the generator's ``[n]`` markers into citations of exact passages, and recognising abstentions."""

from __future__ import annotations

import re

from rag.chunking import split_sentences
from rag.types import Citation, Hit

_MARKER = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
_WORD = re.compile(r"\w+")
_ABSTAIN = re.compile(
    r"\b(i\s+(do\s+not|don'?t|don’t)\s+know|(cannot|can'?t|can’t|unable to)\s+(answer|determine|find)"
    r"|no information|not (mentioned|stated|specified|provided|given|available)"
    r"|(passages?|documents?|text|context) (do(es)?\s*n[o']?t|do not) (say|mention|state|contain|provide|specify))",
    re.IGNORECASE,
)
STOPWORDS = frozenset(
    "a an the of in on at to for and or but is are was were be been by with as from that this these those it its "
    "their his her they he she we you i which who whom what when where why how do does did has have had not no "
    "into than then there so such about over under after before during".split()
)


def content_words(text: str) -> set[str]:
    """Lower-cased words of ``text`` that carry meaning (stop words dropped).

    >>> sorted(content_words("The fair in Ghent"))
    ['fair', 'ghent']
    """
    return {w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in STOPWORDS}


def is_abstention(text: str) -> bool:
    """Whether the generator said it cannot answer from the passages.

    >>> is_abstention("I don't know."), is_abstention("Ghent [1]")
    (True, False)
    """
    return not text.strip() or bool(_ABSTAIN.search(text))


def is_supported(answer: str, passages: str) -> bool:
    """Whether every content word of ``answer`` (markers aside) occurs in ``passages``, and there is one at least.

    >>> is_supported("The Swiss Alps [1]", "The Rhine rises in the Swiss Alps.")
    True
    >>> is_supported("$2 billion", "It costs.")
    False
    """
    words = content_words(strip_markers(answer))
    return bool(words) and words <= content_words(passages)


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
    )


def attribute_unmarked(answer: str, hits: list[Hit], question: str = "") -> tuple[str, list[Citation]]:
    """For an answer without valid markers, cite the passage it came from.

    When the answer occurs verbatim in some sentences (case and spacing aside), the citation quotes the one that
    shares most content words with ``question`` (the others merely mention the answer), the better-ranked passage
    on ties. Otherwise it cites the passage sharing most content words with the answer, if any does.
    """
    needle = _normalized(strip_markers(answer))
    wanted = content_words(question)
    best: tuple[int, int, int, int] | None = None  # (question overlap, -rank, start, end) of a verbatim sentence
    for rank, hit in enumerate(hits):
        chunk = hit.chunk
        for start, end in split_sentences(chunk.text) or [(0, len(chunk.text))]:
            sentence = chunk.text[start:end]
            if needle and needle in _normalized(sentence):
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


_TOKEN = re.compile(r"\w+|%")
_SKIPPABLE = frozenset("and or the a an".split())  # what a model drops when it shortens a list or a name


def as_written(answer: str, quotes: list[str]) -> str:
    """``answer`` in the words of the first quote that says it in other spelling: "40%" becomes "40 percent" when
    a cited sentence says "40 percent", "wheat, barley, oats" takes back its "and". The quoted span must hold the
    answer's words in order ("%" and "per cent" as "percent"), with only "and", "or" and articles between them.
    An answer found as it stands, or not at all, is returned unchanged, its ``[n]`` markers kept.

    >>> as_written("40% [2]", ["Members voted 40 percent in favour."])
    '40 percent [2]'
    """
    text = strip_markers(answer)
    markers = answer[len(text) :]
    if not answer.startswith(text) or strip_markers(markers):
        return answer  # markers inside the answer: which words they belong to would be lost
    wanted = [word for word, _, _ in _tokens(text)]
    if not wanted or any(_normalized(text) in _normalized(quote) for quote in quotes):
        return answer
    for quote in quotes:
        tokens = _tokens(quote)
        for first in range(len(tokens)):
            last = _match_end(tokens, first, wanted)
            if last is not None:
                return quote[tokens[first][1] : tokens[last][2]] + markers
    return answer


def _match_end(tokens: list[tuple[str, int, int]], first: int, wanted: list[str]) -> int | None:
    """Where ``wanted`` ends when read in ``tokens`` from ``first`` on, only ``_SKIPPABLE`` words between its
    words; None when it is not there."""
    matched = 0
    for i in range(first, len(tokens)):
        if tokens[i][0] == wanted[matched]:
            matched += 1
            if matched == len(wanted):
                return i
        elif matched == 0 or tokens[i][0] not in _SKIPPABLE:
            return None
    return None


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """Lower-cased words of ``text`` with their offsets; "%" and "per cent" read as "percent"."""
    tokens: list[tuple[str, int, int]] = []
    for match in _TOKEN.finditer(text):
        word = "percent" if match.group() == "%" else match.group().lower()
        if word == "cent" and tokens and tokens[-1][0] == "per":
            tokens[-1] = ("percent", tokens[-1][1], match.end())
        else:
            tokens.append((word, match.start(), match.end()))
    return tokens


def _normalized(text: str) -> str:
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
