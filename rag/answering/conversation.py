"""Follow-up questions: making "Who resisted it?" searchable by folding in the turn it follows.

Rewriting with the language model would cost another generation (seconds on a CPU); a follow-up that points back
("it", "they", "what about ...") is instead searched joined to the previous question and its answer, which gives
retrieval the missing words, and the model reads the previous turn as a real chat exchange (``rag.answering.prompts``).
Questions that stand on their own are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.answering.citations import strip_markers

_POINTS_BACK = re.compile(
    # "that", "there" and "then" are left out: they mostly appear in questions that stand alone.
    r"\b(it|its|it's|they|them|their|theirs|he|him|his|she|her|hers|this|these|those|"
    r"the same|the latter|the former)\b|^\s*(why|when|where|who|how)\W*$",
    re.IGNORECASE,
)
_OPENERS = re.compile(r"^\s*(and|also|what about|how about)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Turn:
    """One earlier exchange: the question as the user asked it and the answer shown (citation markers allowed)."""

    question: str
    answer: str
    abstained: bool = False


def is_follow_up(question: str) -> bool:
    """Whether ``question`` leans on an earlier turn: it opens with "and ..." / "what about ...", or it holds a
    pronoun pointing back and names nothing itself.

    >>> is_follow_up("Who resisted it?"), is_follow_up("Which mayor opposed the harbour ferry?")
    (True, False)
    """
    if _OPENERS.search(question):
        return True
    # A pronoun in a question that names things of its own ("Where would the league open its office in Asia?") usually
    # points at those; in one that names nothing ("Who resisted it?") it points back.
    return bool(_POINTS_BACK.search(question)) and not _names_something(question)


def _names_something(question: str) -> bool:
    words = re.findall(r"[\w'’-]+", question)
    return any(word[:1].isupper() or word[:1].isdigit() for word in words[1:])


def turn_followed(question: str, history: Sequence[Turn]) -> Turn | None:
    """The earlier turn ``question`` leans on (the last one) if it is a follow-up; ``None`` if it stands alone.

    >>> turn_followed("Who resisted it?", [Turn("Where would the league open an office?", "In Osaka [1]")]).answer
    'In Osaka [1]'
    """
    return history[-1] if history and is_follow_up(question) else None


def standalone_question(question: str, history: Sequence[Turn]) -> str:
    """``question`` made self-contained with the last turn when it is a follow-up; otherwise unchanged.

    >>> standalone_question("Who resisted it?", [Turn("Where would the league open an office?", "In Osaka [1]")])
    'Where would the league open an office? In Osaka. Who resisted it?'
    """
    last = turn_followed(question, history)
    if last is None:
        return question
    earlier = last.question.strip()
    if not last.abstained:
        earlier = f"{earlier} {strip_markers(last.answer).rstrip('.')}."
    return f"{earlier} {question.strip()}"
