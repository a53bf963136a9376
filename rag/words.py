"""The content words of a text: what the checks, the score and the citations compare (stop words dropped)."""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"\w+")
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


# Small numbers a model writes in digits where the passage spells them out, or the other way round ("3" for
# "three"): the same word to the grounding check and to the shown answer's spelling (rag/display.py).
NUMERALS = dict(zip(
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty".split(), (str(n) for n in range(1, 21)),
))


def as_numerals(words: set[str]) -> set[str]:
    """``words`` with the spelled-out small numbers as digits.

    >>> sorted(as_numerals({"three", "bridges"}))
    ['3', 'bridges']
    """
    return {NUMERALS.get(word, word) for word in words}


def printable(name: str) -> str:
    """A file name as one line of a report: control and format characters (a line break, a right-to-left
    override) written as escapes, so a name cannot forge a line or turn the text around it.

    >>> printable("a\\nb\\u202ec.txt")
    'a\\\\nb\\\\u202ec.txt'
    """
    return "".join(ascii(ch)[1:-1] if unicodedata.category(ch).startswith("C") else ch for ch in name)


def without_controls(text: str) -> str:
    """``text`` with each control or format character (NUL, escape sequences, line breaks, zero-width and
    direction marks) made a space: they carry no meaning in a question or a title, and can forge or reverse text.

    >>> without_controls("Rhine\\u202e report\\x00 2024")
    'Rhine  report  2024'
    """
    return "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
