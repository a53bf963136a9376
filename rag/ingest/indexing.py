"""Building and updating the index from a documents folder: only new or changed documents are embedded."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.ingest.chunking import chunk_document
from rag.ingest.loaders import load_folder
from rag.ingest.ocr import Ocr
from rag.models.embedding import Embedder
from rag.stores.base import BuildReport, IndexNotFound, index_settings_for
from rag.stores.faiss_store import KnowledgeIndex, load_index, save_index, write_lock
from rag.stores.milvus_store import open_milvus_index, update_milvus_index
from rag.types import Chunk, Document

log = logging.getLogger(__name__)


def ocr_for(settings: Settings) -> Ocr | None:
    """How ``settings`` read scanned pages: None when OCR is off."""
    if not settings.ocr:
        return None
    return Ocr(language=settings.ocr_language, dpi=settings.ocr_dpi, cache_dir=settings.cache_dir)


def update_index(
    documents: list[Document],
    embedder: Embedder,
    settings: Settings,
    previous: KnowledgeIndex | None,
) -> tuple[KnowledgeIndex, BuildReport]:
    """A new index over ``documents`` that reuses the vectors of every document ``previous`` already holds
    with the same content and the same embedding and chunking settings; everything else is chunked and embedded.
    """
    wanted = index_settings_for(settings, embedder)
    report = _classify(documents, previous)
    reusable = previous if previous is not None and previous.settings == wanted else None
    if reusable is not None and reusable.documents == {d.name: d for d in documents}:
        # Nothing to do: the loaded index is the answer (rebuilding FAISS and BM25 took seconds at 10^4 chunks).
        report.total_chunks = len(reusable.chunks)
        return reusable, report

    # The rows of one document per content: copies of a text (under several names) share its chunks' vectors.
    old_rows_by_content: dict[str, list[int]] = {}
    if reusable is not None:
        rows_by_name: dict[str, list[int]] = {}
        for row, chunk in enumerate(reusable.chunks):
            rows_by_name.setdefault(chunk.doc_name, []).append(row)
        for rows in rows_by_name.values():
            old_rows_by_content.setdefault(reusable.chunks[rows[0]].doc_id, rows)
    old_vectors = reusable.vectors() if reusable is not None else None
    chunks: list[Chunk] = []
    vector_parts: list[np.ndarray] = []
    pending: list[Chunk] = []  # chunks to embed, in order, appended to ``chunks`` as a block at the end
    indexed: set[str] = set()
    for document in documents:
        if document.id in indexed:
            # A copy of a text already indexed (the same file kept twice): a document of its own, whose passages
            # are those of the first name holding that text, as in the Milvus store. Indexing them twice gave
            # chunks one id, and a duplicate passage took a place among the few the model reads.
            continue
        indexed.add(document.id)
        rows = old_rows_by_content.get(document.id)
        if rows and reusable is not None and old_vectors is not None:
            # Same text under any name: same chunks and vectors; only the name and title may differ.
            chunks.extend(_renamed(reusable.chunks[r], document) for r in rows)
            vector_parts.append(old_vectors[rows])
        else:
            pending.extend(
                chunk_document(document, settings.chunk_tokens, settings.chunk_overlap_tokens, embedder.count_tokens)
            )
    if pending:
        vector_parts.append(embedder.embed([c.text for c in pending]))
        chunks.extend(pending)
    report.chunks_embedded = len(pending)
    report.total_chunks = len(chunks)
    vectors = np.concatenate(vector_parts) if vector_parts else np.zeros((0, wanted.dimensions), np.float32)
    index = KnowledgeIndex.build(wanted, documents, chunks, vectors, exact_search_limit=settings.exact_search_limit)
    return index, report


def _classify(documents: list[Document], previous: KnowledgeIndex | None) -> BuildReport:
    """Which documents are added, updated, unchanged or removed relative to ``previous``, by name and content."""
    old_ids_by_name = {d.name: d.id for d in previous.documents.values()} if previous else {}
    report = BuildReport()
    for document in documents:
        old_id = old_ids_by_name.get(document.name)
        if old_id is None:
            report.added.append(document.name)
        elif old_id != document.id:
            report.updated.append(document.name)
        else:
            report.unchanged.append(document.name)
    current_names = {d.name for d in documents}
    report.removed = sorted(name for name in old_ids_by_name if name not in current_names)
    return report


def _renamed(chunk: Chunk, document: Document) -> Chunk:
    """``chunk`` of the same text under ``document``'s name, title and pages (all three may have changed)."""
    return dataclasses.replace(chunk, **document.chunk_fields(chunk.start, chunk.end))


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
    loaded = load_folder(settings.docs_dir, settings.max_file_mb, ocr_for(settings))
    report = update_milvus_index(index, loaded.documents, embedder, settings, _chunker(settings, embedder), rebuild)
    report.skipped, report.incomplete = loaded.skipped, loaded.incomplete
    return index, report


def _chunker(settings: Settings, embedder: Embedder):
    """How ``settings`` split a document into chunks, for a store that chunks what it lacks."""
    def chunk(document: Document) -> list[Chunk]:
        return chunk_document(document, settings.chunk_tokens, settings.chunk_overlap_tokens, embedder.count_tokens)

    return chunk


def build_or_update(
    docs_dir: Path, index_dir: Path, embedder: Embedder, settings: Settings, rebuild: bool = False
) -> tuple[KnowledgeIndex, BuildReport]:
    """Bring the index in ``index_dir`` up to date with ``docs_dir`` and return it.

    Holds the writer lock for the whole update; writes a new generation only when something changed.
    ``rebuild`` ignores (and so replaces) whatever index is there, damaged or not.
    """
    with write_lock(index_dir, settings.index_lock_wait_s):
        loaded = load_folder(docs_dir, settings.max_file_mb, ocr_for(settings))
        previous = None
        if not rebuild:
            try:
                previous = load_index(index_dir)
            except IndexNotFound:
                previous = None
        index, report = update_index(loaded.documents, embedder, settings, previous)
        report.skipped = loaded.skipped
        report.incomplete = loaded.incomplete
        if index is not previous:  # anything rebuilt (content, names, titles, settings) is saved
            save_index(index, index_dir)
        return index, report
