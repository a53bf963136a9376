"""A local question-answering assistant that cites its sources.

>>> from rag import Assistant                      # doctest: +SKIP
>>> Assistant.from_folder("documents").ask("...")  # doctest: +SKIP
"""

import os

# Nothing may reach a model hub. huggingface_hub reads this once, when it is first imported, so it is set here,
# before any submodule pulls in transformers or sentence-transformers. A user's explicit setting is kept.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag.assistant import Answer, AnswerStream, Assistant, QuestionError  # noqa: E402
from rag.config import Settings, SettingsError  # noqa: E402
from rag.types import Chunk, Citation, Document, Hit, Timings  # noqa: E402

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
