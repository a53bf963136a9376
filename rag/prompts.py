"""The prompt that turns numbered passages and a question into chat messages for the generator."""

from __future__ import annotations

from rag.types import Hit

IDK = "I don't know"

SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages you are given. "
    "Reply with the shortest phrase or single sentence that answers the question, then the number of the passage "
    "that states it in square brackets, for example: The river is 40 km long [2]. "
    f"If the passages do not state the answer, reply exactly: {IDK}."
)


def format_passages(hits: list[Hit]) -> str:
    """Passages numbered from 1 in retrieval order; ``[n]`` in an answer refers to ``hits[n - 1]``."""
    return "\n\n".join(f"[{n}] ({hit.chunk.doc_title}) {hit.chunk.text}" for n, hit in enumerate(hits, start=1))


def build_messages(question: str, hits: list[Hit]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Passages:\n{format_passages(hits)}\n\nQuestion: {question}"},
    ]
