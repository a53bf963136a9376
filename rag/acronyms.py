"""Acronyms a small model confuses: asked about the IPCP, it answers from a sentence about the ITPP.

Near-identical capitals are a known weak spot of small models. When the sentence an answer cites (or the one
before it, which a sentence starting "It ..." leans on) names another acronym and not the one asked about, the
answer is about the wrong thing; the model is asked again with only the sentences that name the right one.
"""

from __future__ import annotations

import re
from dataclasses import replace

from rag.chunking import split_sentences
from rag.types import Citation, Hit

# "IPCP", "ITPPs" (as "ITPP"), "G7", "UNESCO"; longer runs of capitals are words in capitals ("GABRIEL").
_ACRONYM = re.compile(r"\b([A-Z][A-Z0-9&]{1,5})s?\b")


def acronyms(text: str) -> set[str]:
    """The acronyms ``text`` names, plurals as their singular.

    >>> sorted(acronyms("The ITPPs build on the IPCP of 2014 with NATO."))
    ['IPCP', 'ITPP', 'NATO']
    """
    return {match.group(1) for match in _ACRONYM.finditer(text) if not match.group(1).isdigit()}


def context_of(citation: Citation, hits: list[Hit]) -> str:
    """The cited sentence and the one before it in its passage, which a sentence starting "It ..." leans on."""
    hit = next((hit for hit in hits if hit.chunk.id == citation.chunk_id), None)
    if hit is None:
        return citation.quote
    chunk = hit.chunk
    start = citation.start - chunk.start
    before = [chunk.text[s:e] for s, e in split_sentences(chunk.text[:start])]
    return " ".join([*before[-1:], citation.quote])


def confused_acronym(question: str, answer: str, citations: list[Citation], hits: list[Hit]) -> str | None:
    """The acronym ``question`` asks about when ``answer`` cites only sentences that name other acronyms and not
    it (nor their preceding sentences); None when the answer is about what was asked, or nothing tells."""
    asked = acronyms(question) - acronyms(answer)
    if not asked or not citations:
        return None
    contexts = [acronyms(context_of(citation, hits)) for citation in citations]
    if any(named & asked for named in contexts) or not any(named - asked for named in contexts):
        return None
    return sorted(asked)[0]


def passage_naming(acronym: str, hits: list[Hit]) -> list[Hit]:
    """One passage of the sentences among ``hits`` that name ``acronym``, in rank order, each once; none when no
    sentence does. What the model is asked again from: with the other acronym's sentences out of sight."""
    sentences: dict[str, None] = {}
    source: Hit | None = None
    for hit in hits:
        for start, end in split_sentences(hit.chunk.text):
            sentence = hit.chunk.text[start:end]
            if acronym in acronyms(sentence):
                sentences[sentence] = None
                source = source or hit
    if source is None:
        return []
    # Only the prompt reads this passage; the answer is cited against the real passages, at their offsets.
    return [replace(source, chunk=replace(source.chunk, text=" ".join(sentences)))]
