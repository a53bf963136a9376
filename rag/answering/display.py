"""Rewriting a shown answer in the words of the sentence it cites ("40%" as the source's "40 percent")."""

from __future__ import annotations

import re

from rag.answering.citations import normalized, strip_markers
from rag.words import NUMERALS

_TOKEN = re.compile(r"\w+|%")
_SKIPPABLE = frozenset("and or the a an".split())  # what a model drops when it shortens a list or a name


def as_written(answer: str, quotes: list[str]) -> str:
    """``answer`` in the words of the first quote that says it in other spelling: "40%" becomes "40 percent" when
    a cited sentence says "40 percent", "wheat, barley, oats" takes back its "and". The quoted span must hold the
    answer's words in order ("%" and "per cent" as "percent"), with only "and", "or" and articles between them.
    An answer found as it stands, or not at all, is returned unchanged, its ``[n]`` markers kept.

    >>> as_written("40% [2]", ["Members voted 40 percent in favour."])
    '40 percent [2]'
    >>> as_written("3 [1]", ["The lake has three parts."])
    'three [1]'
    """
    text = strip_markers(answer)
    markers = answer[len(text) :]
    if not answer.startswith(text) or strip_markers(markers):
        return answer  # markers inside the answer: which words they belong to would be lost
    wanted = [word for word, _, _ in _tokens(text)]
    if not wanted or any(normalized(text) in normalized(quote) for quote in quotes):
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
    """Lower-cased words of ``text`` with their offsets; "%" and "per cent" read as "percent", "three" as "3"."""
    tokens: list[tuple[str, int, int]] = []
    for match in _TOKEN.finditer(text):
        word = "percent" if match.group() == "%" else match.group().lower()
        word = NUMERALS.get(word, word)
        if word == "cent" and tokens and tokens[-1][0] == "per":
            tokens[-1] = ("percent", tokens[-1][1], match.end())
        else:
            tokens.append((word, match.start(), match.end()))
    return tokens
