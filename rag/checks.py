"""Checks that an answer fits the kind of question asked, read from the sentences it cites.

Each takes the question, the answer and its citations, and passes questions of other kinds. They catch what the
word-support check cannot: an answer whose words are all in its sentence, but which answers something else
("how many employees?" answered with the city's residents).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from rag.citations import STOPWORDS, content_words, strip_markers
from rag.types import Citation

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
# Nouns that count anything: "37 individuals" answers "how many beetles", "60,000 passengers" "how many people".
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
    the same noun in the singular or plural, a generic noun on either side ("37 individuals" for beetles, "60,000
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


_ROLE_QUESTION = re.compile(
    r"\s*who\s+(?:is|was|are|were)\s+(?:the\s+)?(.+?)"
    r"(?:\s+(?:of|in|at|for|from|by|on|to|with|who|that|mentioned|quoted|named|cited)\b|\s*\?|\s*$)",
    re.IGNORECASE,
)
_ROLE_QUALIFIERS = frozenset("current former new then present acting".split())


def asked_role(question: str) -> set[str]:
    """The words of the role a "who is the ..." question asks about ("Who is the current president of South
    Korea?" -> {"president"}), singular, qualifiers such as "current" dropped; empty for other questions."""
    match = _ROLE_QUESTION.match(question)
    if not match:
        return set()
    return {_singular(w) for w in _WORD.findall(match.group(1).lower())} - STOPWORDS - _ROLE_QUALIFIERS


def names_the_role_asked(question: str, citations: list[Citation]) -> bool:
    """Whether a cited sentence names the role a "who is the X ..." question asks about. Asked for the president
    of South Korea, the default model answered with a professor quoted in a sentence that names South Korea but
    no president; the sentence that gives a person a role names the role ("Mayor Irene Castell"). Questions of
    other kinds pass.
    """
    role = asked_role(question)
    if not role:
        return True
    return any(role & {_singular(w) for w in _WORD.findall(c.quote.lower())} for c in citations)


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


# Verbs of a decision between parties, each with the forms a sentence reporting that decision uses. "What did
# they agree?" presupposes an agreement: a sentence saying they will discuss it does not answer it. Verbs of
# finding out (conclude, find, show) are left out: a finding is reported in many words ("the researchers argue").
_OUTCOME_FORMS = {
    verb: frozenset(forms.split())
    for verb, forms in {
        "agree": "agree agrees agreed agreeing agreement agreements",
        "decide": "decide decides decided deciding decision decisions",
        "approve": "approve approves approved approving approval",
        "settle": "settle settles settled settling settlement",
        "vote": "vote votes voted voting",
        "rule": "rule rules ruled ruling rulings",
        "pledge": "pledge pledges pledged pledging",
        "promise": "promise promises promised promising",
    }.items()
}
_WHAT_QUESTION = re.compile(r"\s*what\b", re.IGNORECASE)


def asked_outcome(question: str) -> frozenset[str]:
    """The forms of the decision a "what did X agree/decide/approve ...?" question asks for ("What did the
    council decide?" -> {"decide", "decided", "decision", ...}); empty for other questions."""
    if not _WHAT_QUESTION.match(question):
        return frozenset()
    words = {w.lower() for w in _WORD.findall(question)}
    return next((forms for forms in _OUTCOME_FORMS.values() if words & forms), frozenset())


def states_the_outcome_asked(question: str, citations: list[Citation]) -> bool:
    """Whether a cited sentence reports the decision a "what did X agree/decide/approve ...?" question asks about.
    Asked what two men agreed about a factory, the default model answered from a headline saying they would
    "discuss" it; a sentence that reports an agreement says "agreed" or "agreement". Questions of other kinds pass.
    """
    outcome = asked_outcome(question)
    if not outcome:
        return True
    return any(outcome & {w.lower() for w in _WORD.findall(c.quote)} for c in citations)
