"""Tests of an answer's words against the question and the sentences it cites (``rag.verification.verifier`` runs them).

``adds_to_question``: the answer is not an echo of the question. ``counts_what_was_asked``: a number answering
"how many X" counts X in its sentence, not something else ("how many employees?" answered with a city's residents).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from difflib import SequenceMatcher

from rag.answering.citations import strip_markers
from rag.types import Citation
from rag.words import STOPWORDS, content_words

_WORD = re.compile(r"\w+")


def adds_to_question(answer: str, question: str) -> bool:
    """Whether ``answer`` holds a content word that ``question`` does not: one that only repeats the question
    ("What does ITPP stand for?" - "ITPP") tells the reader nothing.

    >>> adds_to_question("ITPP", "What does ITPP stand for?"), adds_to_question("2014", "When was it signed?")
    (False, True)
    """
    return bool(content_words(strip_markers(answer)) - content_words(question))


_COUNT_QUESTION = re.compile(
    r"\bhow many\s+(?:of\s+(?:the\s+)?)?(?:([\w'-]+(?:\s+[\w'-]+){0,3}?)\s+(?:do|does|did|will|would|can|could|has|"
    r"have|had|is|are|was|were|should|must|may|might)\b|([\w'-]+))",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"\d[\d,.]*\d|\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens?|hundreds?"
    r"|thousands?|millions?)\b",
    re.IGNORECASE,
)
_SCALE_WORDS = frozenset("hundred thousand million billion trillion".split())
# Nouns that count anything: "12 individuals" answers "how many owls", "60,000 passengers" "how many people".
_GENERIC_COUNTED = frozenset("people person individual time one item unit case member".split())  # singular


def counted_noun(question: str) -> str | None:
    """What a "how many ..." question counts ("How many new trains did they order?" -> "new trains"); else None."""
    match = _COUNT_QUESTION.search(question)
    # Before an auxiliary verb the phrase is the counted thing ("new trains has"); else only the first word is
    # safe to take ("employees work at ...").
    return (match.group(1) or match.group(2)).lower() if match else None


def noun_after_number(answer: str, text: str) -> str | None:
    """The words that follow the answer's first number where ``text`` states it (up to three, to the first stop
    word or the clause's end, scale words skipped): what that number counts there. None when the answer holds no
    number, ``text`` does not state it, or a stop word or the clause's end follows it.

    >>> noun_after_number("180,000", "drinking water for its 180,000 residents.")
    'residents'
    """
    number = _NUMBER.search(strip_markers(answer))
    if not number:
        return None
    stated = re.search(rf"(?<![\w.,]){re.escape(number.group())}(?![\w]|[.,]\d)", text, re.IGNORECASE)
    if not stated:
        return None
    clause = re.split(r"[.;:,()\"“”]", text[stated.end():], maxsplit=1)[0]
    words = [w.lower() for w in _WORD.findall(clause)]
    while words and words[0] in _SCALE_WORDS:
        words.pop(0)
    if not words or words[0] in STOPWORDS:
        return None
    stop = next((i for i, w in enumerate(words) if w in STOPWORDS), len(words))
    return " ".join(words[: min(stop, 3)])


def counts_what_was_asked(
    answer: str, question: str, citations: list[Citation], similarity: Callable[[str, str], float],
    min_similarity: float = 0.6,
) -> bool:
    """Whether a number answering "how many X" counts X where its cited sentence states it. "How many employees
    work there?" answered "180,000" from "its 180,000 residents" does not. Counts that the sentence does not name,
    the same noun in the singular or plural, a generic noun on either side ("12 individuals" for owls, "60,000
    passengers" for people) and phrases whose ``similarity`` is at least ``min_similarity`` ("soldiers" - "troops")
    pass. Questions of other kinds pass.
    """
    asked = counted_noun(question)
    if asked is None:
        return True
    for citation in citations:
        found = noun_after_number(answer, citation.quote)
        if found is None:
            continue
        stated, wanted = {_singular(w) for w in found.split()}, _singular(asked.split()[-1])
        if wanted in stated or (stated | {wanted}) & _GENERIC_COUNTED:
            return True
        return similarity(asked, found) >= min_similarity
    return True


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


# A number as a question writes it: 2013, 1,230, 3.5 (a bare one-digit number is too common to pin anything).
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")
_QUOTED = re.compile(r"[\"“”«»]([^\"“”«»]{2,80})[\"“”«»]")
# A capitalised word, or a run of them joined by "of", "the", "-" ("Bank of England", "Rhine-Meuse").
# A hyphen joins only capitalised parts: "Norway-funded" pins Norway.
_NAME = re.compile(r"\b[A-Z][\w'’]*(?:-[A-Z][\w'’]*)*(?:\s+(?:of|the|de|von|van|and)?\s*[A-Z][\w'’]*(?:-[A-Z][\w'’]*)*)*")


def pinned_terms(question: str) -> list[str]:
    """What ``question`` pins its answer to, as written: numbers and years, quoted titles, and names (capitalised
    words not opening the question, stop words and question words aside).

    >>> pinned_terms('Who won the 2019 final at Wimbledon after "The Long Rally" aired?')
    ['2019', 'The Long Rally', 'Wimbledon']
    >>> pinned_terms("When was the bridge over the river built?")
    []
    """
    pins: set[str] = set()
    quoted = [m.group(1).strip() for m in _QUOTED.finditer(question)]
    pins.update(q for q in quoted if q)
    rest = _QUOTED.sub(" ", question)
    pins.update(n for n in (m.group() for m in _NUMBER.finditer(rest)) if len(n.replace(",", "")) >= 2)
    # The first word is capitalised because it opens the question; a name there ("Luther") is missed, not guessed.
    opening = re.match(r"\s*\w+", rest)
    body = rest[opening.end():] if opening else rest
    for match in _NAME.finditer(body):
        words = [w for w in re.split(r"\s+", match.group()) if w.lower() not in STOPWORDS]
        if words:
            pins.add(" ".join(words).rstrip("'’").removesuffix("'s").removesuffix("’s"))
    return sorted(pins)


def missing_pins(question: str, evidence: str) -> list[str]:
    """The terms ``question`` pins its answer to (``pinned_terms``) that ``evidence`` does not mention: a number
    must appear as written (thousands separators aside), a name or title by each of its content words, a word of
    five letters or more also as a near spelling (a question's typo: "Wessel" for "Wesel").

    >>> missing_pins("Who won the 2019 final at Wimbledon?", "The 2018 Wimbledon final was won by Novak.")
    ['2019']
    >>> missing_pins("What runs beside the Wessel-Datteln canal?", "The Wesel-Datteln Canal runs beside the Lippe.")
    []
    """
    words = {w.lower() for w in _WORD.findall(evidence)}
    numbers = {n.replace(",", "") for n in _NUMBER.findall(evidence)}
    missing = []
    for pin in pinned_terms(question):
        if _NUMBER.fullmatch(pin):
            if pin.replace(",", "") not in numbers:
                missing.append(pin)
        elif not all(_mentioned(word, words) for word in content_words(pin)):
            missing.append(pin)
    return missing


def _mentioned(word: str, words: set[str]) -> bool:
    if word in words:
        return True
    if len(word) < 5:
        return False
    return any(len(other) >= 4 and SequenceMatcher(None, word, other).ratio() >= 0.8 for other in words)
