"""A local question-answering assistant that cites its sources.

>>> from rag import Assistant                      # doctest: +SKIP
>>> Assistant.from_folder("documents").ask("...")  # doctest: +SKIP
"""

import os

# Nothing may reach a model hub. huggingface_hub reads this once, when it is first imported, so it is set here,
# before any submodule pulls in transformers or sentence-transformers. A user's explicit setting is kept.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The public API, imported on first use (PEP 562): the pipeline pulls in torch and transformers, which the
# command line's help and the lighter submodules do not need.
_EXPORTS = {
    "Answer": "rag.types", "AnswerStream": "rag.assistant", "Assistant": "rag.assistant", "Chunk": "rag.types",
    "Citation": "rag.types", "Document": "rag.types", "Hit": "rag.types", "QuestionError": "rag.types",
    "Scope": "rag.types", "Settings": "rag.config", "SettingsError": "rag.config", "Timings": "rag.types",
    "Turn": "rag.answering.conversation",
}


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)


__all__ = sorted(_EXPORTS)
