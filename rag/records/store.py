"""What people did with the answers, kept in one SQLite file beside the index: each answer given (by the id its
client sees), the feedback given on it (``gold_items`` turns it into questions ``rag eval`` reads), and the chat
page's conversations, per login, to list, reopen with their sources, rename and delete.

Every write is one transaction, so a crash loses at most the write under way. A file that is not a readable
database is renamed aside (``records.sqlite.corrupt-<time>``) and a new one started: the assistant keeps working
and says what it set aside, rather than failing to start.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag.answering.citations import strip_markers
from rag.types import Answer, Citation, Timings, Verdict

log = logging.getLogger(__name__)

RECORDS_FILE = "records.sqlite"
Rating = Literal["up", "down"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id TEXT PRIMARY KEY,            -- the id the client was given (an OpenAI completion id, the page's answer id)
    owner TEXT,                     -- the login that asked, where the server has one
    created REAL NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    abstained INTEGER NOT NULL,
    citations TEXT NOT NULL,        -- JSON, as Answer.to_dict gives them
    verdicts TEXT NOT NULL,         -- JSON: every check's verdict, enforced or not
    model TEXT NOT NULL,
    settings TEXT NOT NULL          -- JSON: the settings the answer was made with
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    answer_id TEXT NOT NULL REFERENCES answers(id),
    owner TEXT,
    created REAL NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    correction TEXT,                -- "the answer is X", where given
    unanswerable INTEGER NOT NULL   -- 1: "the documents don't say"
);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    owner TEXT,                     -- the login it belongs to; NULL where the server has no logins
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, updated);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    position INTEGER NOT NULL,
    answer_id TEXT NOT NULL REFERENCES answers(id),
    shown TEXT NOT NULL,            -- JSON: the answer as it was shown, with its sources (shown_answer)
    PRIMARY KEY (conversation_id, position)
);
"""
TITLE_CHARS = 80  # a conversation's title: its first question, cut to this; a rename, at most this


class UnknownAnswer(KeyError):
    """Feedback names an answer these records do not hold."""


class UnknownConversation(KeyError):
    """No conversation of that id belongs to that login (deleted, never kept, or another person's)."""


@dataclass(frozen=True)
class ConversationSummary:
    """One kept conversation as a list shows it."""

    id: str
    title: str
    created: float
    updated: float  # when its last answer was kept, or it was renamed
    answers: int


@dataclass(frozen=True)
class SavedTurn:
    """One answer of a kept conversation, under the id feedback on it names."""

    answer_id: str
    answer: Answer


def shown_answer(answer: Answer) -> dict:
    """What reopening ``answer`` needs, as JSON: the question, the text, its citations whole (the source panel
    finds each passage by its offsets), the verdicts (an abstention says which withheld it) and the timings. The
    retrieved passages' scores are left out: they are a debugging view of the moment."""
    return {"question": answer.question, "text": answer.text, "abstained": answer.abstained,
            "citations": [dataclasses.asdict(c) for c in answer.citations],
            "verdicts": [dataclasses.asdict(v) for v in answer.verdicts],
            "timings": dataclasses.asdict(answer.timings),
            "closest": None if answer.closest is None else dataclasses.asdict(answer.closest)}


def answer_from_shown(shown: dict) -> Answer:
    """The ``Answer`` that ``shown_answer`` kept (without its retrieved passages)."""
    closest = shown.get("closest")  # turns kept before abstentions quoted it have none
    return Answer(shown["question"], shown["text"], [Citation(**c) for c in shown["citations"]],
                  shown["abstained"], verdicts=[Verdict(**v) for v in shown["verdicts"]],
                  timings=Timings(**shown["timings"]), closest=None if closest is None else Citation(**closest))


def title_of(text: str) -> str:
    """A conversation title: ``text`` on one line, cut to ``TITLE_CHARS``.

    >>> title_of("  Where does   the ferry go?  ")
    'Where does the ferry go?'
    """
    title = " ".join(text.split())
    return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1].rstrip() + "…"


@dataclass(frozen=True)
class Feedback:
    """One person's word on one answer, with the answer as it was given."""

    id: int
    answer_id: str
    rating: Rating
    correction: str | None
    unanswerable: bool
    created: float
    owner: str | None
    question: str
    answer: str
    abstained: bool
    citations: list[dict]
    model: str

    def gold_item(self) -> dict | None:
        """The gold question this feedback makes (``rag.evaluation.scoring.load_gold``'s shape), or None where it
        makes none: "the documents don't say" an unanswerable item; a correction the gold answer, with the
        sentence the answer cited as evidence; a thumbs up the answer given, with its citations. A thumbs down
        with nothing said holds no answer."""
        base = {"id": f"feedback-{self.id}", "question": self.question,
                "source": f"feedback {self.rating} on {self.answer_id}"}
        if self.unanswerable:
            return base | {"answers": [], "answerable": False, "evidence": []}
        evidence = [{"doc": c["doc"], "quote": c["quote"]} for c in self.citations]
        if self.correction:
            return base | {"answers": [self.correction], "answerable": True, "evidence": evidence}
        if self.rating == "up" and not self.abstained:
            return base | {"answers": [strip_markers(self.answer)], "answerable": True, "evidence": evidence}
        return None


class Records:
    """The answers given and the feedback on them, in the SQLite file ``path`` (made on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.set_aside: Path | None = None  # a corrupt file found at start, renamed to this
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            self.set_aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            self.path.rename(self.set_aside)
            log.warning("%s could not be read (%s); set aside as %s, a new one started", self.path, exc,
                        self.set_aside.name)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("its integrity check failed")
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def remember(self, answer_id: str, answer: Answer, model: str, settings: dict, owner: str | None = None,
                 conversation: str | None = None) -> None:
        """Keep ``answer`` under ``answer_id``, the id its client was given, so feedback can name it; with
        ``conversation``, also as that conversation's next turn (a new conversation, titled by this question, if
        ``owner`` has none of that id). One transaction: a crash keeps all of it or none."""
        payload = answer.to_dict()
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (answer_id, owner, now, answer.question, answer.text, int(answer.abstained),
                 json.dumps(payload["citations"], ensure_ascii=False),
                 json.dumps([v.to_dict() | {"enforced": v.enforced} for v in answer.verdicts], ensure_ascii=False),
                 model, json.dumps(settings, ensure_ascii=False, default=str)),
            )
            if conversation is None:
                return
            row = db.execute("SELECT owner FROM conversations WHERE id = ?", (conversation,)).fetchone()
            if row is None:
                db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?)",
                           (conversation, owner, title_of(answer.question), now, now))
            elif row[0] != owner:
                raise UnknownConversation(conversation)
            else:
                db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation))
            db.execute("INSERT INTO turns VALUES (?, (SELECT COUNT(*) FROM turns WHERE conversation_id = ?), ?, ?)",
                       (conversation, conversation, answer_id, json.dumps(shown_answer(answer), ensure_ascii=False)))

    def conversations(self, owner: str | None = None) -> list[ConversationSummary]:
        """``owner``'s conversations (where the server has no logins, None's: everyone's), the latest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id, c.title, c.created, c.updated, (SELECT COUNT(*) FROM turns t WHERE "
                "t.conversation_id = c.id) FROM conversations c WHERE c.owner IS ? ORDER BY c.updated DESC, c.rowid DESC",
                (owner,)).fetchall()
        return [ConversationSummary(*row) for row in rows]

    def conversation(self, conversation: str, owner: str | None = None) -> list[SavedTurn]:
        """The answers of ``owner``'s conversation ``conversation`` in the order given; ``UnknownConversation``
        where ``owner`` has none of that id."""
        with self._lock:
            self._owned(self._db, conversation, owner)
            rows = self._db.execute("SELECT answer_id, shown FROM turns WHERE conversation_id = ? ORDER BY position",
                                    (conversation,)).fetchall()
        return [SavedTurn(answer_id, answer_from_shown(json.loads(shown))) for answer_id, shown in rows]

    def rename_conversation(self, conversation: str, title: str, owner: str | None = None) -> str:
        """Give ``owner``'s conversation a new title (on one line, cut to ``TITLE_CHARS``) and return it."""
        title = title_of(title)
        if not title:
            raise ValueError("a conversation's title cannot be empty")
        with self._transaction() as db:
            self._owned(db, conversation, owner)
            db.execute("UPDATE conversations SET title = ?, updated = ? WHERE id = ?",
                       (title, time.time(), conversation))
        return title

    def delete_conversation(self, conversation: str, owner: str | None = None) -> None:
        """Delete ``owner``'s conversation with its answers, except answers someone gave feedback on: those are
        test questions now (``rag feedback``), kept until the feedback goes."""
        with self._transaction() as db:
            self._owned(db, conversation, owner)
            answers = [row[0] for row in db.execute("SELECT answer_id FROM turns WHERE conversation_id = ?",
                                                     (conversation,))]
            db.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation,))
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation,))
            db.executemany("DELETE FROM answers WHERE id = ? AND NOT EXISTS (SELECT 1 FROM feedback WHERE answer_id = ?)",
                           [(a, a) for a in answers])

    @staticmethod
    def _owned(db: sqlite3.Connection, conversation: str, owner: str | None) -> None:
        if db.execute("SELECT 1 FROM conversations WHERE id = ? AND owner IS ?", (conversation, owner)).fetchone() is None:
            raise UnknownConversation(conversation)

    def add_feedback(self, answer_id: str, rating: Rating, correction: str | None = None,
                     unanswerable: bool = False, owner: str | None = None) -> Feedback:
        """Record feedback on the answer ``answer_id``; ``UnknownAnswer`` where there is none."""
        if rating not in ("up", "down"):
            raise ValueError(f"rating must be 'up' or 'down', got {rating!r}")
        correction = " ".join((correction or "").split()) or None
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM answers WHERE id = ?", (answer_id,)).fetchone() is None:
                raise UnknownAnswer(answer_id)
            cursor = db.execute("INSERT INTO feedback (answer_id, owner, created, rating, correction, unanswerable) "
                                "VALUES (?, ?, ?, ?, ?, ?)",
                                (answer_id, owner, time.time(), rating, correction, int(unanswerable)))
            number = cursor.lastrowid
        [given] = self.feedback(number)
        return given

    def feedback(self, number: int | None = None) -> list[Feedback]:
        """Every feedback given, oldest first, with the answer it is about (only feedback ``number``, if given)."""
        query = ("SELECT f.id, f.answer_id, f.rating, f.correction, f.unanswerable, f.created, f.owner, a.question, "
                 "a.answer, a.abstained, a.citations, a.model FROM feedback f JOIN answers a ON a.id = f.answer_id")
        with self._lock:
            if number is None:
                rows = self._db.execute(query + " ORDER BY f.id").fetchall()
            else:
                rows = self._db.execute(query + " WHERE f.id = ?", (number,)).fetchall()
        return [Feedback(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7], row[8], bool(row[9]),
                         json.loads(row[10]), row[11]) for row in rows]

    def gold_items(self) -> tuple[list[dict], int]:
        """The gold questions the feedback makes (``Feedback.gold_item``), and how many feedbacks made none."""
        items = [f.gold_item() for f in self.feedback()]
        return [i for i in items if i is not None], sum(i is None for i in items)

    def close(self) -> None:
        with self._lock:
            self._db.close()
