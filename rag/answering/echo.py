"""Cutting the question's echo out of a reply: "The river turns north near Chur." asked "Where does the river turn
north?" answers "Chur".

A small model often restates the question before its answer. The restated part is not the answer, and showing it
buries what the reader asked for. The rule is general, not about any kind of question: in a reply of a sentence's
length, drop the leading words that the question already holds (or that only join them) and cut the rest at the
end of its first clause. A reply with nothing left is kept as it is. Only what is shown is cut: the checks read the
whole reply (``Draft.reply``), because a restatement in words the passage lacks is a sign that the passage answers
another question (eval/README.md, row 54).
"""

from __future__ import annotations

import re

from rag.answering.citations import strip_markers
from rag.words import STOPWORDS

# Words that join a restated question to its answer without being part of either.
_JOINERS = STOPWORDS | frozenset(
    "also called known named near located situated now then being can could will would may might must shall should "
    "because due".split()
)
# Replies shorter than this are phrases, kept whole: in "Lake Constance", asked which lake, "Lake" is the answer's.
MIN_SENTENCE_WORDS = 5
# Where a reply's answer clause ends: a clause mark, or a relative clause opening after a comma.
_CLAUSE_END = re.compile(r"\s*(?:[;:(]|,\s*(?:which|who|whom|whose|where|when|while|and|but|as|giving)\b|\.\s|\.$)")


def stem(word: str) -> str:
    """A crude stem, enough to tell that "turns", "turned" and "turning" restate "turn".

    >>> stem("Turns") == stem("turned") == stem("turning") == stem("turn"), stem("lakes") == stem("lake")
    (True, True)
    >>> stem("carries") == stem("carry"), stem("river's") == stem("river"), stem("glass")
    (True, True, 'glass')
    """
    word = re.sub(r"'s$", "", word.lower().strip("'*-"))
    if word.endswith(("ies", "ied")) and len(word) > 4:
        return word[:-3] + "y"  # "carries", "carried": "carry"
    for suffix in ("ing", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def trim_echo(reply: str, question: str) -> str:
    """``reply`` without the part that restates ``question`` (markers such as ``[2]`` kept at the end).

    >>> trim_echo("The river turns north near Chur. [1]", "Where does the river turn north?")
    'Chur [1]'
    >>> trim_echo("1998 [2]", "When did the ferry first sail?")
    '1998 [2]'
    """
    markers = " ".join(re.findall(r"\[\d+(?:\s*[,;]\s*\d+)*\]", reply))
    text = strip_markers(reply).strip()
    asked = {stem(w) for w in re.findall(r"\w+", question)} - {""}
    words = list(re.finditer(r"\S+", text))
    if len(words) < MIN_SENTENCE_WORDS:
        return reply  # a phrase ("Lake Constance"), not a restating sentence: its words are all the answer
    start = 0
    echoed = False
    while start < len(words):
        bare = re.sub(r"^\W+|\W+$", "", words[start].group())
        if stem(bare) in asked and bare.lower() not in STOPWORDS:
            echoed = True
        elif bare and bare.lower() not in _JOINERS:
            break
        start += 1
    if not echoed or start >= len(words):
        return reply  # nothing restated, or nothing but the restatement
    rest = text[words[start].start():]
    end = _CLAUSE_END.search(rest)
    answer = rest[: end.start()] if end else rest
    tail = answer.split()
    while tail and tail[-1].lower().strip(".,\"'") in _JOINERS:
        tail.pop()
    answer = " ".join(tail).rstrip(".,;:")
    if not answer:
        return reply
    return f"{answer} {markers}".strip()
