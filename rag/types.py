"""The plain data classes passed between pipeline stages.

load -> Document, chunk -> Chunk, retrieve -> Hit, generate -> GenerationSignals, verify -> Verdicts,
answer -> Answer (with Citations).
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from dataclasses import dataclass, field
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class Document:
    """A cleaned source document. ``id`` is the SHA-256 of ``text``, so the same text is the same document."""

    id: str
    name: str  # path relative to the documents folder, e.g. "000_210d74e5e6875247.txt"
    title: str
    text: str
    # Offsets in ``text`` where each page begins (``page_starts[0]`` is page 1); empty for a file without pages.
    page_starts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "page_starts", tuple(self.page_starts))  # read back from JSON as a list

    def page_at(self, offset: int) -> int | None:
        """The page (1-based) holding ``text[offset]``, or None for a file without pages."""
        return bisect_right(self.page_starts, offset) if self.page_starts else None

    def chunk_fields(self, start: int, end: int) -> dict:
        """What a chunk of the span ``start:end`` says of its document: name, title, opening line, and the pages
        it spans. They may change while the text stays (a rename, a new title rule), so they are derived again
        whenever a stored chunk is reused."""
        fields = {"doc_name": self.name, "doc_title": self.title, "doc_lead": opening_line(self.text)}
        if not self.page_starts:
            return fields | {"page": None, "page_breaks": ()}
        return fields | {
            "page": self.page_at(start),
            "page_breaks": tuple(offset for offset in self.page_starts if start < offset < end),
        }


LEAD_CHARS = 120


def opening_line(text: str) -> str:
    """The first line of ``text`` that holds anything, Markdown heading marks dropped, up to ``LEAD_CHARS``
    characters: what the passage header shows with ``passage_header="lead"``, whether it is a heading, a byline or
    a sentence."""
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:LEAD_CHARS]
    return ""


@dataclass(frozen=True)
class Chunk:
    """A span of a document's cleaned text: ``document.text[start:end] == text``."""

    id: str
    doc_id: str
    doc_name: str
    doc_title: str
    index: int  # position of the chunk within its document
    start: int
    end: int
    text: str
    doc_lead: str = ""  # the document's opening line, up to 120 characters (rag.types.opening_line)
    page: int | None = None  # the page the chunk begins on (1-based); None for a file without pages
    page_breaks: tuple[int, ...] = ()  # document offsets within the chunk where each following page begins

    def __post_init__(self) -> None:
        object.__setattr__(self, "page_breaks", tuple(self.page_breaks))

    def page_at(self, offset: int) -> int | None:
        """The page holding the document's character at ``offset`` (within this chunk), or None."""
        return None if self.page is None else self.page + bisect_right(self.page_breaks, offset)

    @property
    def last_page(self) -> int | None:
        return None if self.page is None else self.page + len(self.page_breaks)


@dataclass(frozen=True)
class Scope:
    """The documents a question is asked of: those whose name (the path relative to the documents folder) matches
    one of ``documents`` and whose file was last modified between ``modified_after`` and ``modified_before``
    (inclusive; None leaves that end open). A pattern is a name, a folder ("reports" or "reports/": everything under
    it) or a glob ("*.xlsx", "2024/*-minutes.md"); no pattern admits every name."""

    documents: tuple[str, ...] = ()
    modified_after: dt.datetime | None = None
    modified_before: dt.datetime | None = None

    def __post_init__(self) -> None:
        documents = (self.documents,) if isinstance(self.documents, str) else tuple(self.documents)
        object.__setattr__(self, "documents", tuple(p.strip() for p in documents if p.strip()))
        object.__setattr__(self, "modified_after", _moment(self.modified_after, dt.time.min))
        object.__setattr__(self, "modified_before", _moment(self.modified_before, dt.time.max))
        if self.modified_after and self.modified_before and self.modified_after > self.modified_before:
            raise QuestionError(f"the scope's dates are the wrong way round: after {self.modified_after:%Y-%m-%d %H:%M} "
                             f"but before {self.modified_before:%Y-%m-%d %H:%M}")

    @property
    def everything(self) -> bool:
        return not self.documents and self.modified_after is None and self.modified_before is None

    def admits(self, name: str, modified: dt.datetime | None) -> bool:
        """Whether document ``name``, last modified at ``modified`` (None: unknown), is in the scope; a document
        whose time is unknown is outside any date range."""
        if self.documents and not any(_matches(name, pattern) for pattern in self.documents):
            return False
        if self.modified_after is None and self.modified_before is None:
            return True
        if modified is None:
            return False
        return (self.modified_after is None or modified >= self.modified_after) and (
            self.modified_before is None or modified <= self.modified_before)

    def describe(self) -> str:
        """The scope in words: "documents matching 'reports/*', modified from 2024-01-01"."""
        parts = []
        if self.documents:
            parts.append("documents matching " + " or ".join(repr(p) for p in self.documents))
        if self.modified_after:
            parts.append(f"modified from {self.modified_after:%Y-%m-%d %H:%M}")
        if self.modified_before:
            parts.append(f"modified until {self.modified_before:%Y-%m-%d %H:%M}")
        return ", ".join(parts) or "every document"


def _matches(name: str, pattern: str) -> bool:
    folder = pattern.rstrip("/")
    return fnmatchcase(name, pattern) or name.startswith(folder + "/") or fnmatchcase(name, folder + "/*")


def _moment(value: dt.datetime | dt.date | str | None, at: dt.time) -> dt.datetime | None:
    """``value`` as a naive local datetime: a date (or "YYYY-MM-DD") at ``at``, an ISO datetime as it is."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            text = value.strip()
            value = dt.datetime.fromisoformat(text) if "T" in text or " " in text else dt.date.fromisoformat(text)
        except ValueError:
            raise QuestionError(f"{value!r} is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM)") from None
    if isinstance(value, dt.datetime):
        return value.astimezone().replace(tzinfo=None) if value.tzinfo else value
    return dt.datetime.combine(value, at)


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the ranks (1-based, None when absent) in each retriever."""

    chunk: Chunk
    score: float
    dense_score: float  # cosine similarity of question and chunk, whether or not dense search ranked it
    dense_rank: int | None = None
    keyword_rank: int | None = None


@dataclass(frozen=True)
class Citation:
    """A numbered pointer from an answer to the exact passage it relies on.

    ``quote == document.text[start:end]`` for the cited document.
    """

    n: int
    doc: str  # document file name
    doc_title: str
    chunk_id: str
    quote: str
    start: int
    end: int
    page: int | None = None  # the page the quote begins on, for a file with pages
    place: str | None = None  # for a spreadsheet, the row the quote begins in: "sheet Sales, row 5"


@dataclass(frozen=True)
class GenerationSignals:
    """What the generator knew about its own reply, read from its token probabilities (greedy decoding).

    ``refusal_prob``: the probability of the refusal's first token at the reply's first step, whatever was chosen.
    ``mean_logprob`` / ``min_logprob``: the natural log-probabilities of the tokens chosen, averaged and at worst.
    """

    refusal_prob: float
    mean_logprob: float
    min_logprob: float
    tokens: int


@dataclass(frozen=True)
class Verdict:
    """One check's judgement of a draft answer: ``passed`` or not, and ``reason`` in words a user can read.

    A check switched off in the settings is still run, so that evaluation can measure it from the same answers;
    its verdict is recorded with ``enforced`` False and withholds nothing.
    """

    check: str
    passed: bool
    reason: str
    enforced: bool = True

    def to_dict(self) -> dict:
        return {"check": self.check, "passed": self.passed, "reason": self.reason}


@dataclass(frozen=True)
class Draft:
    """An answer as generated and cited, before verification decides whether it is shown.

    ``question`` is the question as retrieval and the checks read it (a follow-up made standalone); ``text``
    carries ``[n]`` markers pointing at ``hits[n - 1]``, resolved in ``citations``.
    """

    question: str
    text: str
    citations: list[Citation]
    hits: list[Hit]
    signals: GenerationSignals | None = None
    reply: str = ""  # the model's whole reply, before the part restating the question was cut off (rag.answering.echo)
    # The question as the person wrote it, where it differs from ``question`` (a follow-up: "Who resisted it?").
    asked: str = ""


@dataclass(frozen=True)
class Timings:
    retrieval_s: float = 0.0
    generation_s: float = 0.0
    total_s: float = 0.0


@dataclass(frozen=True)
class Answer:
    """What the assistant says: the text with ``[n]`` markers, the citations they point at, and how it got there."""

    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    abstained: bool = False
    hits: list[Hit] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    raw_output: str = ""  # the generator's text before citation parsing, for debugging and evaluation
    # Every check's verdict on the draft, in the order run; an abstention lists the ones that failed among them.
    verdicts: list[Verdict] = field(default_factory=list)
    draft: Draft | None = None  # the answer as drafted, before the checks (shown only when none withheld it)
    features: dict[str, float] = field(default_factory=dict)  # what the answerability score read
    # With an abstention: the sentence of the passages read that comes closest to the question, so a person sees
    # what the documents do hold and can ask again in their terms. Never one of ``citations``: it answers nothing.
    closest: Citation | None = None

    @property
    def withheld_by(self) -> list[Verdict]:
        """The failed verdicts that made this answer an abstention (empty for a shown answer)."""
        return [v for v in self.verdicts if v.enforced and not v.passed] if self.abstained else []

    def to_dict(self) -> dict:
        """The JSON shape of ``rag ask --json``."""
        return {
            "answer": self.text,
            "abstained": self.abstained,
            "citations": [_citation_json(c) for c in self.citations],
            "verdicts": [v.to_dict() for v in self.verdicts if v.enforced],
            "closest": None if self.closest is None else _citation_json(self.closest),
            "timings": {
                "retrieval_s": self.timings.retrieval_s,
                "generation_s": self.timings.generation_s,
                "total_s": self.timings.total_s,
            },
        }


def _citation_json(c: Citation) -> dict:
    return {"n": c.n, "doc": c.doc, "chunk_id": c.chunk_id, "quote": c.quote, "start": c.start, "end": c.end,
            "page": c.page, "place": c.place}


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not read, or only in part, and why, in words a user can act on."""

    name: str
    reason: str


class QuestionError(ValueError):
    """The question cannot be asked as given (empty, too long); the message says why."""
