"""Who wrote a document: the byline at its head, and the questions that ask for it.

A news article names its writer in a byline ("GABRIEL DOMINGUEZ", "By Jane Smith, Reuters") that no sentence
of the text repeats, so the model, asked "Who wrote the article about ...?", answers with a person the article
quotes. The byline answers such a question directly, cited where it stands.
"""

from __future__ import annotations

import re

# "Who wrote the Japan Times article about ...?", "Who is the author of this story?", "Who authored the piece?"
_WORK = r"(?i:article|story|piece|column|op-?ed|essay|blog\s+post|post|news\s+report)"
# Between "the" and the work only a name or an ordinal may stand ("the Japan Times article", "the first
# article"), so that "Who wrote the letter mentioned in the article?" is not taken to ask for the byline.
_ORDINAL = r"(?i:first|second|third|last|latest|recent|other|original|above|following)"
_QUALIFIER = rf"(?:(?:[A-Z0-9][\w'’.-]*|{_ORDINAL})\s+){{0,5}}?"
_THE = r"(?i:this|the|that)\s+"
_AUTHOR_QUESTION = re.compile(
    rf"(?i:\bwho\s+(?:wrote|authored|penned|has\s+written|had\s+written))\s+{_THE}{_QUALIFIER}{_WORK}\b"
    rf"|(?i:\bwho\s+(?:is|was)\s+the\s+(?:author|writer)\s+of)\s+{_THE}{_QUALIFIER}{_WORK}\b"
    rf"|(?i:\bwho\s+(?:is|was)\s+){_THE}{_QUALIFIER}{_WORK}(?i:'s|’s)?\s+(?i:author|writer|by|written\s+by)\b"
)
_NAME_WORD = r"[A-Z][\w'’.-]*"
_NAME = rf"{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{1,3}}"
# "By Jane Smith", "BY JANE SMITH and JOHN DOE, Reuters", "Written by Jane Smith", "Author: Jane Smith"
_BY_LINE = re.compile(
    # Only the lead words ignore case: a name's words must be capitalised ("By the way, ..." is no byline).
    rf"(?i:by|written\s+by|author:)[ \t]+(?P<names>{_NAME}(?:[ \t]*(?:,|(?i:and)|&)[ \t]*{_NAME})*)(?:[ \t]*[,|–—-].*)?"
)
# A line of two to four capitalised words and nothing else: "GABRIEL DOMINGUEZ".
_CAPS_NAME_LINE = re.compile(r"(?P<names>[A-Z][A-Z'’.-]+(?:[ \t]+[A-Z][A-Z'’.-]+){1,3})")
# Capitalised lines that head articles without naming anyone.
_NOT_NAMES = frozenset(
    "news breaking exclusive analysis opinion editorial update updated live report press release world business "
    "politics sport sports culture science technology health comment feature features".split()
)
HEAD_LINES = 4  # a byline stands among the first lines, before or after the headline


def asks_for_author(question: str) -> bool:
    """Whether ``question`` asks who wrote the article (story, column...) itself, not a work it mentions.

    >>> asks_for_author("Who wrote the Japan Times article about Kishida?"), asks_for_author("Who wrote Faust?")
    (True, False)
    """
    return bool(_AUTHOR_QUESTION.search(question))


def find_byline(text: str) -> tuple[int, int] | None:
    """Offsets in ``text`` of the writer's name(s) in a byline among its first ``HEAD_LINES`` non-empty lines:
    "By Jane Smith", "Written by ...", "Author: ...", or a line that is only a capitalised name. None without one.

    >>> text = "Port opens plant\\nBy Jane Smith, Reuters\\nThe port opened..."
    >>> start, end = find_byline(text); text[start:end]
    'Jane Smith'
    """
    lines = 0
    for line in re.finditer(r"[^\n]+", text):
        stripped = line.group().strip()
        if not stripped:
            continue
        offset = line.start() + line.group().index(stripped)
        for pattern, upper_only in ((_BY_LINE, False), (_CAPS_NAME_LINE, True)):
            match = pattern.fullmatch(stripped)
            if match and not (upper_only and _reads_as_heading(match.group("names"))):
                return offset + match.start("names"), offset + match.end("names")
        lines += 1
        if lines == HEAD_LINES:
            return None
    return None


def display_name(byline: str) -> str:
    """The name as an answer shows it: an all-capitals byline in title case ("GABRIEL DOMINGUEZ" -> "Gabriel
    Dominguez", "JANE SMITH AND JOHN DOE" -> "Jane Smith and John Doe"), any other as written."""
    if not byline.isupper():
        return byline
    return " ".join(word.lower() if word == "AND" else word.title() for word in byline.split())


def _reads_as_heading(line: str) -> bool:
    return any(word.lower().strip(".") in _NOT_NAMES for word in line.split())


_WRITING = re.compile(
    r"\b(?:wrote|written|writes|writing|authored|author|byline|penned|reporter|correspondent)\b", re.IGNORECASE
)


def states_authorship(answer: str, quotes: list[str]) -> bool:
    """Whether any of the cited ``quotes`` speaks of writing, or puts "by" before ``answer``. Asked who wrote an
    article without a byline, the default model answered with an expert the article quotes ("..., said Sebastian
    Maslow"): a sentence that names someone as a source does not make them the writer."""
    by_answer = re.compile(rf"\bby\s+{re.escape(answer.strip())}", re.IGNORECASE)
    return any(_WRITING.search(quote) or by_answer.search(quote) for quote in quotes)
