"""Answers to "why ...?" questions: the reason, not the sentence around it.

A small model answers a why-question by restating it ("The beetle lost its eyes because vision offered no
advantage ...") or by copying a sentence that gives no reason at all. The restatement's words are often not the
passage's ("the beetle" where it says "the population"), so the support check rejected right answers; the reason
clause alone is what was asked and what the passage says.
"""

from __future__ import annotations

import re

from rag.chunking import split_sentences
from rag.citations import content_words, quote_citation, strip_markers
from rag.types import Citation, Hit

_WHY = re.compile(r"\s*why\b", re.IGNORECASE)
# What introduces a reason: a causal connective, or a reporting verb whose clause is the reason someone gave.
_CAUSE = re.compile(
    r"\b(?:because(?:\s+of)?|due\s+to|owing\s+to|as\s+a\s+result\s+of|thanks\s+to|in\s+order\s+to|so\s+that"
    r"|(?:argu|warn|fear|claim|complain)(?:e|es|ed|s)?\s+that|(?:say|says|said|saying)\s+that)\b",
    re.IGNORECASE,
)
_REPORTING = re.compile(r"\w+\s+that$", re.IGNORECASE)  # "argued that": the reason starts after it
# Where a reason ends: a clause that only reports who gave it, or one that adds a contrast ("..., while ...").
_CLAUSE_END = re.compile(r"[;:]|,\s+(?:(?:\w+\s+){0,3}(?:said|says|argued|according)|while|whereas)\b", re.IGNORECASE)
_CONNECTIVE_WORDS = frozenset("because due owing result thanks order".split())


def asks_why(question: str) -> bool:
    """Whether ``question`` asks for a reason ("Why did the beetle lose its eyes?")."""
    return bool(_WHY.match(question))


def reason_clause(answer: str) -> str | None:
    """The reason ``answer`` gives, from its first causal connective to the end ("The beetle lost its eyes because
    vision offered none" -> "because vision offered none"; after a reporting verb, the reported clause: "They
    argued that the brine harms fish" -> "the brine harms fish"); None when it gives none.

    >>> reason_clause("Japan sends none due to guidelines that ban arms exports.")
    'due to guidelines that ban arms exports'
    """
    match = _CAUSE.search(answer)
    if not match:
        return None
    start = match.end() if _REPORTING.search(match.group()) else match.start()
    reason = _CLAUSE_END.split(answer[start:], maxsplit=1)[0].strip().rstrip(".")
    return reason if content_words(reason) - _CONNECTIVE_WORDS else None


def without_connective(reason: str) -> str:
    """``reason`` without the causal connective it starts with ("because X" -> "X"): what a passage must support
    when it gives the same reason with another connective."""
    match = _CAUSE.match(reason)
    return reason[match.end() :].strip() if match else reason


def gives_as_reason(reason: str, citations: list[Citation]) -> bool:
    """Whether a cited sentence gives ``reason`` as one: its content words all follow a causal connective there.
    "They will rise by 4 percent", offered as why bills rise, is in the sentence, but not as a reason."""
    wanted = content_words(without_connective(strip_markers(reason)))
    for citation in citations:
        for match in _CAUSE.finditer(citation.quote):
            if wanted and wanted <= content_words(citation.quote[match.start() :]):
                return True
    return False


def restates(reason: str, question: str) -> bool:
    """Whether ``reason`` holds half of ``question``'s content words or more: "due to guidelines that ban arms
    exports", offered as why arms exports are banned, names the ban, not a reason for it."""
    asked = _stems(question)
    return 2 * len(asked & _stems(reason)) >= len(asked)


def _stems(text: str) -> set[str]:
    # A word's first five letters stand for its inflections ("delivered", "delivers") without a stemmer.
    return {word[:5] for word in content_words(text)}


def stated_reason(question: str, hits: list[Hit]) -> tuple[str, Citation] | None:
    """The reason a sentence among ``hits`` gives for what ``question`` asks about, with its citation; None when
    none does.

    The sentence must hold a causal connective ("because", "due to" ...) after a clause holding all of the
    question's content words but one, and at least three of them: "Why has Japan not delivered weapons to
    Ukraine?" is answered by "... pacifist Japan has not delivered weapons due to guidelines that effectively ban
    arms exports" -> "due to guidelines that effectively ban arms exports". A looser match gives reasons for
    something else: that sentence does not say why Japan is pacifist.
    """
    asked = _stems(question)
    best: tuple[int, int, str, Citation] | None = None  # (question words matched, -rank, reason, citation)
    for n, hit in enumerate(hits, start=1):
        chunk = hit.chunk
        for start, end in split_sentences(chunk.text):
            sentence = chunk.text[start:end]
            match = next((m for m in _CAUSE.finditer(sentence) if not _REPORTING.search(m.group())), None)
            if not match:
                continue
            matched = len(asked & _stems(sentence[: match.start()]))
            reason = reason_clause(sentence[match.start() :])
            if reason is None or matched < max(3, len(asked) - 1) or restates(reason, question):
                continue
            key = (matched, -n, reason, quote_citation(n, hit, chunk.start + start, chunk.start + end))
            if best is None or key[:2] > best[:2]:
                best = key
    return (best[2], best[3]) if best else None


def answer_with_reason(
    question: str, text: str, citations: list[Citation], hits: list[Hit]
) -> tuple[str, list[Citation]] | None:
    """The answer ``text`` (citing ``citations``) to the why-``question`` cut to the reason it gives, with no
    citations (it is cited afresh); when it gives none, the reason a sentence among ``hits`` gives for what was
    asked, cited there; else ``text`` and ``citations`` unchanged. None when the reason only restates the
    question: the answer is to be withheld."""
    reason = reason_clause(strip_markers(text))
    if reason is not None:
        return None if restates(reason, question) else (reason, [])
    stated = stated_reason(question, hits)
    if stated is not None:
        reason, citation = stated
        return f"{reason} [{citation.n}]", [citation]
    return text, citations
