"""Sentence-aware chunking with exact character offsets.

Sentences are packed into chunks of at most ``max_tokens`` embedder tokens; consecutive chunks share up to
``overlap_tokens`` worth of whole sentences so an answer that straddles a boundary is still found whole. A run of
characters without spaces longer than the embedder reads as a word counts a token a character (``counting_runs``),
so a hex dump or a base64 blob is cut into passages the answering model can read too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.ingest.spreadsheets import is_spreadsheet
from rag.types import Chunk, Document

TokenCounter = Callable[[str], int]

# A sentence ends at terminal punctuation (with any closing quotes or brackets) before whitespace, or at a newline.
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n")
_LAST_WORD = re.compile(r"(\S+)$")
_WORD = re.compile(r"\S+")
# WordPiece (the embedder's tokenizer) reads a run of more than 100 characters without spaces as one unknown token,
# where the answering model's tokenizer needs up to one token a character (a 100,000-character hex string: 88,000).
LONG_RUN_CHARS = 100
_LONG_RUN = re.compile(r"\S{%d,}" % (LONG_RUN_CHARS + 1))
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e u.s u.k u.n no fig gen gov sen rep lt col capt sgt inc ltd co corp "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split()
)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    tokens: int


def _is_abbreviation(text: str, period_at: int) -> bool:
    match = _LAST_WORD.search(text, 0, period_at)
    if not match:
        return False
    word = match.group(1).lstrip("(\"'“‘").lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _continues_in_lower_case(text: str, at: int) -> bool:
    following = text[at : at + 8].lstrip(" \t")
    return bool(following) and following[0].islower()


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of ``text``, whitespace trimmed, in order.

    >>> text = "Dr. Who came. He left!\\nBye"
    >>> [text[s:e] for s, e in split_sentences(text)]
    ['Dr. Who came.', 'He left!', 'Bye']
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        if match.group() != "\n" and _continues_in_lower_case(text, match.end()):
            continue  # “Really?” she asked.
        if match.group() == "." and _is_abbreviation(text, match.start()):
            continue
        _append_trimmed(spans, text, start, match.end())
        start = match.end()
    _append_trimmed(spans, text, start, len(text))
    return spans


def _append_trimmed(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


def _split_oversized(text: str, start: int, end: int, max_tokens: int, count: TokenCounter) -> list[Span]:
    """Cut a span longer than ``max_tokens`` at word boundaries (or inside a giant word) into fitting pieces."""
    pieces: list[Span] = []
    piece_start, piece_tokens, piece_end = None, 0, start
    for word in _WORD.finditer(text, start, end):
        w_start, w_end = word.span()
        w_tokens = count(text[w_start:w_end])
        if w_tokens > max_tokens:  # e.g. a long URL or base64 blob: cut by characters
            if piece_start is not None:
                pieces.append(Span(piece_start, piece_end, piece_tokens))
                piece_start, piece_tokens = None, 0
            pieces.extend(_split_by_characters(text, w_start, w_end, max_tokens, count))
            continue
        if piece_start is not None and piece_tokens + w_tokens > max_tokens:
            pieces.append(Span(piece_start, piece_end, piece_tokens))
            piece_start, piece_tokens = None, 0
        if piece_start is None:
            piece_start = w_start
        piece_tokens += w_tokens
        piece_end = w_end
    if piece_start is not None:
        pieces.append(Span(piece_start, piece_end, piece_tokens))
    return pieces


def _split_by_characters(text: str, start: int, end: int, max_tokens: int, count: TokenCounter) -> list[Span]:
    """A word too long for one chunk in pieces of ``max_tokens`` characters, each counted a token a character:
    a tokenizer may need that many for text without spaces (hex, base64), whatever the embedder's says."""
    return [Span(at, min(at + max_tokens, end), max(count(text[at:min(at + max_tokens, end)]),
                                                   min(at + max_tokens, end) - at))
            for at in range(start, end, max_tokens)]


def sentence_spans(text: str, max_tokens: int, count: TokenCounter) -> list[Span]:
    """Sentences of ``text`` with their token counts, any sentence over ``max_tokens`` cut into fitting pieces."""
    spans: list[Span] = []
    for start, end in split_sentences(text):
        tokens = count(text[start:end])
        if tokens <= max_tokens:
            spans.append(Span(start, end, tokens))
        else:
            spans.extend(_split_oversized(text, start, end, max_tokens, count))
    return spans


def _lines(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the non-empty lines of ``text``, whitespace trimmed."""
    spans: list[tuple[int, int]] = []
    start = 0
    for end in [*(m.start() for m in re.finditer("\n", text)), len(text)]:
        _append_trimmed(spans, text, start, end)
        start = end + 1
    return spans


def sentence_spans_of(text: str, start: int, end: int, max_tokens: int, count: TokenCounter) -> list[Span]:
    """The span ``start:end`` of ``text`` with its token count, cut into fitting pieces if over ``max_tokens``."""
    tokens = count(text[start:end])
    return [Span(start, end, tokens)] if tokens <= max_tokens else _split_oversized(text, start, end, max_tokens, count)


def counting_runs(count: TokenCounter) -> TokenCounter:
    """``count``, with each run of more than ``LONG_RUN_CHARS`` characters without spaces counted as one token a
    character: the most any tokenizer makes of it, where the embedder's counts it as one.

    >>> counting_runs(lambda text: len(text.split()))("a " + "f" * 300)
    301
    """
    def counted(text: str) -> int:
        runs = [len(match.group()) for match in _LONG_RUN.finditer(text)]
        return count(text) + sum(runs) - len(runs)

    return counted


def chunk_document(document: Document, max_tokens: int, overlap_tokens: int, count: TokenCounter) -> list[Chunk]:
    """Split a document into overlapping chunks of whole sentences; a spreadsheet into a chunk per row.

    Every chunk satisfies ``document.text[chunk.start:chunk.end] == chunk.text`` and holds at most ``max_tokens``
    tokens as ``count`` measures them sentence by sentence (a long run without spaces a token a character:
    ``counting_runs``); together the chunks cover every non-space character.
    """
    count = counting_runs(count)
    if is_spreadsheet(document.name):
        # Each row is a passage of its own, its line naming its place and headers: packed with its neighbours,
        # the model read a neighbouring row's value for the one asked about (a fee of row 2 for row 3's boat).
        rows = [span for start, end in _lines(document.text) for span in sentence_spans_of(document.text, start, end,
                                                                                             max_tokens, count)]
        return [_make_chunk(document, i, [span]) for i, span in enumerate(rows)]
    spans = sentence_spans(document.text, max_tokens, count)
    groups: list[list[Span]] = []
    current: list[Span] = []
    current_tokens = 0
    for span in spans:
        if current and current_tokens + span.tokens > max_tokens:
            groups.append(current)
            current = _overlap_tail(current, overlap_tokens, room=max_tokens - span.tokens)
            current_tokens = sum(s.tokens for s in current)
        current.append(span)
        current_tokens += span.tokens
    if current:
        groups.append(current)
    return [_make_chunk(document, i, group) for i, group in enumerate(groups)]


def _overlap_tail(previous: list[Span], overlap_tokens: int, room: int) -> list[Span]:
    """The last sentences of ``previous`` worth at most ``overlap_tokens`` (and fitting ``room``), never all of it."""
    tail: list[Span] = []
    tokens = 0
    for span in reversed(previous[1:]):
        if tokens + span.tokens > min(overlap_tokens, room):
            break
        tail.insert(0, span)
        tokens += span.tokens
    return tail


def _make_chunk(document: Document, index: int, group: list[Span]) -> Chunk:
    start, end = group[0].start, group[-1].end
    return Chunk(
        id=f"{document.id[:16]}-{index:04d}",
        doc_id=document.id,
        index=index,
        start=start,
        end=end,
        text=document.text[start:end],
        **document.chunk_fields(start, end),
    )
