"""A local question-answering assistant that cites its sources.

>>> from rag import Assistant                      # doctest: +SKIP
>>> Assistant.from_folder("documents").ask("...")  # doctest: +SKIP
"""

from rag.assistant import Answer, AnswerStream, Assistant, QuestionError
from rag.config import Settings, SettingsError
from rag.types import Chunk, Citation, Document, Hit, Timings

__all__ = [
    "Answer",
    "AnswerStream",
    "Assistant",
    "Chunk",
    "Citation",
    "Document",
    "Hit",
    "QuestionError",
    "Settings",
    "SettingsError",
    "Timings",
]
