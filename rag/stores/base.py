"""What every store shares: the settings its vectors depend on, the report of an update, and its errors.

Imports only the ground floor and the embedder's interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rag.config import Settings
from rag.types import SkippedFile
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


