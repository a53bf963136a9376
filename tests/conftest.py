"""Shared fixtures: cheap deterministic fakes for the plumbing, and the real models loaded once per session."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the suite must pass without a network

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = REPO / "documents"


class FakeEmbedder:
    """Bag-of-words vectors from hashed words: texts sharing words are similar, and nothing is loaded."""

    name = "fake-embedder"
    dimensions = 64

    def __init__(self) -> None:
        self.calls: list[int] = []  # number of texts per embed() call

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimensions] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class FakeGenerator:
    """Replies with queued answers, word by word, and records the prompts it was given; with ``signals``, reports
    them as its token probabilities after each reply (a real generator measures them)."""

    name = "fake-generator"

    def __init__(self, replies: list[str] | None = None, signals: object = None) -> None:
        self.replies = list(replies or [])
        self.signals = signals
        self.prompts: list[list[dict[str, str]]] = []
        self.constraints: list[object] = []

    def stream(
        self, messages: list[dict[str, str]], max_new_tokens: int, constraint: object = None,
        max_seconds: float | None = None, starts: object = (), on_signals=None,
    ) -> Iterator[str]:
        self.prompts.append(messages)
        self.constraints.append(constraint)
        reply = self.replies.pop(0) if self.replies else "I don't know."
        yield from re.findall(r"\S+\s*", reply)
        if on_signals is not None and self.signals is not None:
            on_signals(self.signals)

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class StoppableGenerator(FakeGenerator):
    """Writes ``words`` one at a time (``pause_s`` apart) and notes after how many its reader closed the stream."""

    def __init__(self, words: list[str], pause_s: float = 0.0) -> None:
        super().__init__()
        self.words, self.pause_s = words, pause_s
        self.closed_after: int | None = None

    def stream(self, *args, **kwargs) -> Iterator[str]:
        written = 0
        try:
            for word in self.words:
                time.sleep(self.pause_s)
                written += 1
                yield word + " "
        except GeneratorExit:
            self.closed_after = written
            raise


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "rivers.txt").write_text(
        "The Danube flows through ten countries. It is 2,850 km long.\n\nThe Rhine rises in the Swiss Alps.",
        encoding="utf-8",
    )
    (folder / "cities.md").write_text(
        "# Cities\n\nVienna lies on the Danube. Basel lies on the Rhine.", encoding="utf-8"
    )
    return folder


@pytest.fixture(scope="session")
def real_embedder():
    from rag.models.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def real_assistant(tmp_path_factory, real_embedder):
    """The product as a user gets it: default corpus, real embedder, real default generator."""
    from rag import Assistant

    index_dir = tmp_path_factory.mktemp("index")
    return Assistant.from_folder(DOCUMENTS, index_dir, embedder=real_embedder)


def tiny_causal_lm():
    """A randomly initialised one-layer Qwen2 model with a 64-token vocabulary: the real architecture, tiny."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    return Qwen2ForCausalLM(config)


@pytest.fixture(scope="session")
def reference_assistant(real_assistant, tmp_path_factory, real_embedder):
    """The default model on the reference engine (transformers), for what only that engine does (quote mode, the
    attention caches of prompt starts): the product itself where it runs there (a processor with AMX), else the
    same model loaded on transformers beside it."""
    from rag import Assistant
    from rag.config import DEFAULT_CHECKS

    if real_assistant.settings.engine == "transformers":
        return real_assistant
    # The checks and the score go back to the defaults, to be those of the model on this engine.
    settings = real_assistant.settings.with_changes(engine="transformers", checks=DEFAULT_CHECKS,
                                                    answerability_model=None)
    return Assistant.from_folder(DOCUMENTS, tmp_path_factory.mktemp("reference-index"), settings,
                                 embedder=real_embedder)
