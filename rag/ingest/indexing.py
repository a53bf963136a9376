"""Building and updating the index from a documents folder: only new or changed documents are embedded."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.ingest.chunking import chunk_document
from rag.ingest.loaders import load_folder
from rag.ingest.ocr import Ocr
from rag.models.embedding import Embedder
from rag.stores.base import BuildReport, Held, Update, WritableStore, index_settings_for
from rag.stores.faiss_store import FaissStore, KnowledgeIndex
from rag.stores.milvus_store import open_milvus_index
from rag.types import Document

log = logging.getLogger(__name__)


def ocr_for(settings: Settings) -> Ocr | None:
    """How ``settings`` read scanned pages: None when OCR is off."""
    if not settings.ocr:
        return None
    return Ocr(language=settings.ocr_language, dpi=settings.ocr_dpi, cache_dir=settings.cache_dir)


def update_store(store: WritableStore, documents: list[Document], embedder: Embedder, settings: Settings,
                 rebuild: bool = False) -> BuildReport:
    """The one update path, for any store: what changed by name and content, then only the texts the store does not
    hold chunked and embedded (once per text, however many names it has), then the store writes the result.
    ``rebuild``, or a store made with other embedding or chunking settings, starts over.

    Call it inside ``store.writing()``, with the folder read inside too: the update is then one writer's."""
    wanted = index_settings_for(settings, embedder)
    held = Held(None, {}) if rebuild else store.held()
    start_over = rebuild or (held.settings is not None and held.settings != wanted)
    # Starting over, every document is written again: reported as added.
    report = _classify(documents, {} if start_over else held.documents)
    kept = set() if start_over else {d.id for d in held.documents.values()}
    fresh: dict[str, Document] = {}
    for document in documents:
        if document.id not in kept:
            fresh.setdefault(document.id, document)
    chunks = [piece for document in fresh.values() for piece in
              chunk_document(document, settings.chunk_tokens, settings.chunk_overlap_tokens, embedder.count_tokens)]
    vectors = embedder.embed([c.text for c in chunks]) if chunks else np.zeros((0, wanted.dimensions), np.float32)
    report.chunks_embedded = len(chunks)
    report.total_chunks = store.write(Update(wanted, documents, chunks, vectors, start_over))
    return report


def update_index(
    documents: list[Document],
    embedder: Embedder,
    settings: Settings,
    previous: KnowledgeIndex | None,
) -> tuple[KnowledgeIndex, BuildReport]:
    """A new in-memory index over ``documents`` that reuses the vectors of every text ``previous`` already holds
    with the same embedding and chunking settings; everything else is chunked and embedded."""
    store = FaissStore(previous, exact_search_limit=settings.exact_search_limit)
    report = update_store(store, documents, embedder, settings)
    assert store.index is not None  # written by update_store
    return store.index, report


def _classify(documents: list[Document], held: dict[str, Document]) -> BuildReport:
    """Which documents are added, updated, unchanged or removed relative to ``held``, by name and content."""
    report = BuildReport()
    for document in documents:
        old = held.get(document.name)
        if old is None:
            report.added.append(document.name)
        elif old.id != document.id:
            report.updated.append(document.name)
        else:
            report.unchanged.append(document.name)
    current_names = {d.name for d in documents}
    report.removed = sorted(name for name in held if name not in current_names)
    return report


def open_and_update(
    settings: Settings, embedder: Embedder, rebuild: bool = False, index=None
):
    """The index ``settings.store`` names, brought up to date with ``settings.docs_dir``, and what changed.

    ``index`` is the store's index already open (a Milvus connection is kept, not made again).
    """
    if settings.store == "faiss":
        return build_or_update(settings.docs_dir, settings.index_dir, embedder, settings, rebuild)
    if index is None:
        uri = settings.milvus_location
        if "://" not in uri:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        index = open_milvus_index(uri, settings.milvus_collection, os.environ.get("MILVUS_TOKEN", ""))
    with index.writing():
        loaded = load_folder(settings.docs_dir, settings.max_file_mb, ocr_for(settings))
        report = update_store(index, loaded.documents, embedder, settings, rebuild)
    report.skipped, report.incomplete = loaded.skipped, loaded.incomplete
    return index, report


def build_or_update(
    docs_dir: Path, index_dir: Path, embedder: Embedder, settings: Settings, rebuild: bool = False
) -> tuple[KnowledgeIndex, BuildReport]:
    """Bring the index in ``index_dir`` up to date with ``docs_dir`` and return it.

    Holds the writer lock for the whole update (the folder is read under it too); writes a new generation only
    when something changed. ``rebuild`` ignores (and so replaces) whatever index is there, damaged or not.
    """
    store = FaissStore(folder=index_dir, exact_search_limit=settings.exact_search_limit,
                       lock_wait_s=settings.index_lock_wait_s)
    with store.writing():
        loaded = load_folder(docs_dir, settings.max_file_mb, ocr_for(settings))
        report = update_store(store, loaded.documents, embedder, settings, rebuild)
    report.skipped = loaded.skipped
    report.incomplete = loaded.incomplete
    assert store.index is not None  # written by update_store
    return store.index, report
