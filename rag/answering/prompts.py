"""The prompt that turns numbered passages and a question into chat messages for the generator."""

from __future__ import annotations

from rag.answering.citations import strip_markers
from rag.answering.conversation import Turn
from rag.answering.injection import withhold_instructions
from rag.config import PassageHeader
from rag.models.base import IDK
from rag.types import Hit

# The model is asked for the bare answer, not for [n] markers: on the dev gold set the 0.5B default often replied
# with a marker alone ("[1]") when asked to cite, F1 0.40 -> 0.79 without (eval/README.md). Citations are then
# attributed to the passage that supports the answer; markers a stronger model writes anyway are still honoured.
SYSTEM_PROMPT = (
    "You answer questions using only the passages given. Reply with just the answer: the shortest phrase "
    "from the passages that answers the question, such as a name, a number, a date or a place. "
    f"If the passages do not contain the answer, reply exactly: {IDK}."
)


# Worked examples shown before the real question, as earlier turns of the chat. Made up (a harbour nobody wrote
# about), so they teach the form of a reply, not facts: a bare span copied from a passage, a count, and the
# refusal for a question the passage seems to answer but does not (it names the ferry, not when it stopped).
# Measured with the 0.5B default (eval/README.md, row 49): it still never refused, so they are off by default.
EXAMPLE_PASSAGE = (
    "[1] (Harbour notes) The Kessock ferry first sailed in 1998 from the north quay. It carries up to 40 cars "
    "and crosses in ten minutes."
)
EXAMPLES = (
    ("From which quay did the Kessock ferry first sail?", "the north quay"),
    ("When did the Kessock ferry stop sailing?", IDK),
    ("How many cars can the Kessock ferry carry?", "up to 40"),
)


def format_passages(hits: list[Hit], header: PassageHeader = "lead") -> str:
    """Passages numbered from 1 in retrieval order; ``[n]`` in an answer refers to ``hits[n - 1]``. Each opens
    with its document's title (``header`` "title") or opening line ("lead") in brackets, or with nothing.
    Sentences that address the model rather than the reader are withheld (``rag.answering.injection``)."""
    return "\n\n".join(
        f"[{n}] {_header(hit, header)}{withhold_instructions(hit.chunk.text)}" for n, hit in enumerate(hits, start=1)
    )


def _header(hit: Hit, header: PassageHeader) -> str:
    shown = {"title": hit.chunk.doc_title, "lead": hit.chunk.doc_lead}.get(header, "")
    return f"({withhold_instructions(shown)}) " if shown else ""


def build_messages(
    question: str, hits: list[Hit], earlier: Turn | None = None, examples: int = 0, header: PassageHeader = "lead"
) -> list[dict[str, str]]:
    """Chat messages asking ``question`` about the numbered ``hits``.

    A follow-up passes the ``earlier`` turn it leans on; it is replayed as a real exchange (passages and earlier
    question, earlier answer, then the follow-up) because the 0.5B default resolves "it" far better that way than
    from one joined question: 5 of 5 follow-ups answered against 3 of 5 (eval/README.md, follow-up log).
    """
    messages = _preamble(examples)
    passages = _passages_block(hits, header)
    if earlier is not None:
        messages += [
            {"role": "user", "content": f"{passages}Question: {earlier.question}"},
            {"role": "assistant", "content": IDK if earlier.abstained else strip_markers(earlier.answer)},
        ]
        passages = ""
    messages.append({"role": "user", "content": f"{passages}Question: {question}"})
    return messages


def prompt_starts(
    hits: list[Hit], examples: int = 0, header: PassageHeader = "lead"
) -> list[list[dict[str, str]]]:
    """Beginnings of every ``build_messages(..., hits, ...)`` prompt that do not depend on the question: the
    system message with the worked examples, then those and the first passage (a user message the real one
    continues).

    Any question whose best passage is ``hits[0]`` starts the same way; the generator keeps the attention caches of
    these starts (``rag.models.local.prefix_cache``) and prefills only the rest of such a prompt.
    """
    preamble = _preamble(examples)
    if not hits:
        return [preamble]
    return [preamble, [*preamble, {"role": "user", "content": _passages_block(hits[:1], header)}]]


def _preamble(examples: int) -> list[dict[str, str]]:
    """The system message, then the first ``examples`` worked examples as earlier turns."""
    messages = [_system_message()]
    for question, answer in EXAMPLES[:examples]:
        messages += [
            {"role": "user", "content": f"Passages:\n{EXAMPLE_PASSAGE}\n\nQuestion: {question}"},
            {"role": "assistant", "content": answer},
        ]
    return messages


def _system_message() -> dict[str, str]:
    return {"role": "system", "content": SYSTEM_PROMPT}


def _passages_block(hits: list[Hit], header: PassageHeader) -> str:
    """How the passages open the first user message; a start of it must spell the same (``prompt_starts``)."""
    return f"Passages:\n{format_passages(hits, header)}\n\n"



# The verifier's question (the "confirmed" check, rag/verification.py). It reads only the question, the answer and
# the sentences the answer cites, so its prompt stays short enough for a larger model than the answering one.
VERIFY_SYSTEM_PROMPT = "You check answers against their source. Reply with Yes or No only."
VERIFY_OPTIONS = ("Yes", "No")


# The answering model's own question about the sentences its draft cites (the "answered_prob" feature of the
# answerability score, rag/answerability.py). It is not shown the answer: a decoy question that reuses a sentence's
# words while asking what the sentence does not say is told apart better that way (Rhine tuning half, eval log
# row 62: AUROC 0.85 for answerable against not, against 0.74 when it also reads the answer).
ANSWERED_SYSTEM_PROMPT = "You decide whether a text answers a question. Reply with Yes or No only."
ANSWERED_OPTIONS = ("Yes", "No")


def answered_messages(question: str, sources: list[str]) -> list[dict[str, str]]:
    """Chat messages asking whether ``sources`` answer ``question``; the reply is one of ``ANSWERED_OPTIONS``."""
    text = " ".join(withhold_instructions(source) for source in sources)
    return [
        {"role": "system", "content": ANSWERED_SYSTEM_PROMPT},
        {"role": "user", "content": (
            f"Text: {text}\n\nQuestion: {question}\n\n"
            "Does the text answer this question? A question can reuse the text's words yet ask something the text "
            "does not say. Reply Yes or No."
        )},
    ]


def verification_messages(question: str, answer: str, sources: list[str]) -> list[dict[str, str]]:
    """Chat messages asking whether ``sources`` state that ``answer`` answers ``question``; the reply is one of
    ``VERIFY_OPTIONS``."""
    source = " ".join(withhold_instructions(text) for text in sources)
    return [
        {"role": "system", "content": VERIFY_SYSTEM_PROMPT},
        {"role": "user", "content": (
            f"Source: {source}\n\nQuestion: {question}\nProposed answer: {answer}\n\n"
            "Does the source state that the proposed answer answers the question? Reply Yes or No."
        )},
    ]
