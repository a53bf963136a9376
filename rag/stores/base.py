"""What every store shares: the settings its vectors depend on, what it holds, the update it is given to write
(``WritableStore``: the one update path in ``rag.ingest.indexing`` chunks and embeds, a store only writes), the
report of an update, and its errors.

Imports only the ground floor and the embedder's interface.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rag.config import Settings
from rag.types import Chunk, Document, SkippedFile
from rag.words import printable

if TYPE_CHECKING:  # the embedder's module loads torch; only its interface is named here
    from rag.models.embedding import Embedder


class IndexStoreError(Exception):
    """Base class for index problems; messages tell the user what to do."""


class IndexNotFound(IndexStoreError):
    pass


class IndexCorrupt(IndexStoreError):
    pass


class IndexLocked(IndexStoreError):
    pass


@dataclass(frozen=True)
class IndexSettings:
    """What the vectors depend on: loading an index with other values would give silently wrong results."""

    embedding_model: str
    dimensions: int
    chunk_tokens: int
    chunk_overlap_tokens: int


@dataclass(frozen=True)
class Held:
    """What a store holds: the settings its vectors were made with (None: nothing yet) and its documents by name."""

    settings: IndexSettings | None
    documents: dict[str, Document]


@dataclass(frozen=True)
class Update:
    """One update for a store to write: every document the folder holds now (in folder order), the chunks and
    vectors of each text the store does not hold yet (copies of a text under several names share them), and
    whether to drop everything held first (a rebuild, or other embedding or chunking settings)."""

    settings: IndexSettings
    documents: list[Document]
    chunks: list[Chunk]
    vectors: np.ndarray  # one row per chunk
    start_over: bool = False


class WritableStore(Protocol):
    """What the update path needs of a store: FAISS (``rag.stores.faiss_store.FaissStore``) and Milvus
    (``rag.stores.milvus_store.MilvusIndex``) both give it."""

    def writing(self) -> AbstractContextManager[object]:
        """Held for the whole update, from ``held`` to ``write``: one writer at a time where the store needs it."""
        ...

    def held(self) -> Held:
        """What the store holds now (raises ``IndexStoreError`` for a damaged store: a rebuild does not ask)."""
        ...

    def write(self, update: Update) -> int:
        """Make the store hold exactly ``update.documents``, atomically for a reader; returns its chunk count."""
        ...


@dataclass
class BuildReport:
    """What a build changed, by document name."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    incomplete: list[SkippedFile] = field(default_factory=list)  # indexed, but with parts unread (scanned pages)
    chunks_embedded: int = 0
    total_chunks: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        lines = [
            f"added {len(self.added)}, updated {len(self.updated)}, removed {len(self.removed)}, "
            f"unchanged {len(self.unchanged)}, skipped {len(self.skipped)}; "
            f"{self.chunks_embedded} chunks embedded, {self.total_chunks} in the index"
        ]
        # Names as the user's files spell them, but a line break or direction mark in one shown as an escape.
        lines += [f"  added:   {printable(name)}" for name in self.added]
        lines += [f"  updated: {printable(name)}" for name in self.updated]
        lines += [f"  removed: {printable(name)}" for name in self.removed]
        lines += [f"  skipped: {printable(s.name)} ({printable(s.reason)})" for s in self.skipped]
        lines += [f"  incomplete: {printable(s.name)} ({printable(s.reason)})" for s in self.incomplete]
        return "\n".join(lines)


def index_settings_for(settings: Settings, embedder: Embedder) -> IndexSettings:
    return IndexSettings(
        embedding_model=embedder.name,
        dimensions=embedder.dimensions,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap_tokens=settings.chunk_overlap_tokens,
    )


