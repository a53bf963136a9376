"""The on-disk knowledge index: documents, chunks, FAISS vectors and a BM25 keyword index, described by a manifest.

Layout of ``index_dir``::

    CURRENT              name of the live generation folder (replaced atomically)
    .lock                held by the one process that is writing
    gen-<time>-<rand>/   manifest.json, documents.jsonl, chunks.jsonl, dense.faiss, keyword/ (bm25s, JSON + .npy)

A writer builds a complete generation in a temporary folder, renames it into place and only then points
``CURRENT`` at it, so a crash at any moment leaves the previous generation whole and live. Nothing is unpickled:
metadata is JSON, arrays are loaded with ``allow_pickle=False``, and every file is checked against the SHA-256
the manifest records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import bm25s
import faiss
import numpy as np

from rag.stores.base import (
    Held,
    IndexCorrupt,
    IndexLocked,
    IndexNotFound,
    IndexSettings,
    IndexStoreError,
    Update,
)
from rag.types import Chunk, Document

log = logging.getLogger(__name__)
# bm25s sets its own logger to DEBUG when imported, which printed its progress on every start: the level the
# application configured (the root's) applies again.
logging.getLogger("bm25s").setLevel(logging.NOTSET)

FORMAT_VERSION = 1
CURRENT_FILE = "CURRENT"
LOCK_FILE = ".lock"
MANIFEST_FILE = "manifest.json"
KEYWORD_DIR = "keyword"

# Cells searched per question. At 10^6 chunks (4,000 cells) this gave recall@10 of 1.0 against exact search at
# 0.9 ms a question in `rag bench retrieval`.
IVF_NPROBE = 32


def keyword_tokens(texts: list[str]) -> list[list[str]]:
    """Lower-cased word tokens without English stop words, as the BM25 index and its queries see them."""
    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


@dataclass
class KnowledgeIndex:
    """Everything retrieval needs, in memory. ``chunks[i]`` is row ``i`` of ``dense`` and document ``i`` of BM25."""

    settings: IndexSettings
    documents: dict[str, Document]  # by document name
    chunks: list[Chunk]
    dense: faiss.Index
    keyword: bm25s.BM25 | None  # None when there are no chunks

    @classmethod
    def build(
        cls,
        settings: IndexSettings,
        documents: list[Document],
        chunks: list[Chunk],
        vectors: np.ndarray,
        *,
        exact_search_limit: int,
    ) -> KnowledgeIndex:
        if vectors.shape != (len(chunks), settings.dimensions):
            raise ValueError(f"expected {len(chunks)} vectors of {settings.dimensions} dims, got {vectors.shape}")
        dense = dense_index(vectors, exact_search_limit)
        keyword = keyword_index([c.text for c in chunks])
        return cls(settings, {d.name: d for d in documents}, list(chunks), dense, keyword)

    def row_covering(self, doc_name: str, start: int, end: int) -> int | None:
        """The row of the first chunk of document ``doc_name`` whose span holds ``start:end`` of its text; None
        if no chunk does."""
        rows = self._rows_by_document.get(doc_name, [])
        return next((r for r in rows if self.chunks[r].start <= start and end <= self.chunks[r].end), None)

    def chunk_count(self, doc_name: str) -> int:
        """How many chunks document ``doc_name`` was split into (0 for a document the index lacks)."""
        return len(self._rows_by_document.get(doc_name, []))

    @cached_property
    def _rows_by_document(self) -> dict[str, list[int]]:
        return _rows_by(self.chunks, "doc_name")

    # What retrieval asks of a store (rag.answering.retrieval.SearchableIndex); here a chunk's key is its row.

    def chunk_total(self, within: frozenset[str] | None = None) -> int:
        return len(self.chunks) if within is None else len(self._rows_within(within))

    def chunk(self, key: int) -> Chunk:
        return self.chunks[key]

    def dense_search(self, vector: np.ndarray, depth: int,
                     within: frozenset[str] | None = None) -> list[tuple[int, float]]:
        """The ``depth`` rows nearest ``vector`` (one normalised embedding) with their cosines, nearest first; only
        rows of documents whose ids are ``within``, where given."""
        query = vector.reshape(1, -1)
        if within is None:
            similarities, rows = self.dense.search(query, depth)
        else:
            allowed = self._rows_within(within)
            if not len(allowed):
                return []
            if not isinstance(self.dense, faiss.IndexFlat) and len(allowed) <= EXACT_SCOPE_ROWS:
                # An inverted file searches a few cells: a small scope may have no rows there. Exact instead.
                cosines = np.asarray(self.cosines(allowed.tolist(), vector))
                best = np.argsort(-cosines, kind="stable")[:depth]
                return [(int(allowed[i]), float(cosines[i])) for i in best]
            selector = faiss.IDSelectorBatch(allowed)
            params = (faiss.SearchParameters(sel=selector) if isinstance(self.dense, faiss.IndexFlat)
                      else faiss.SearchParametersIVF(sel=selector, nprobe=faiss.extract_index_ivf(self.dense).nprobe))
            similarities, rows = self.dense.search(query, depth, params=params)
        return [(int(r), float(s)) for r, s in zip(rows[0], similarities[0]) if r >= 0]

    def keyword_search(self, query: str, depth: int,
                       within: frozenset[str] | None = None) -> list[tuple[int, float]]:
        """BM25 scores of up to ``depth`` rows sharing words with ``query``, best first; only rows of documents
        whose ids are ``within``, where given."""
        tokens = keyword_tokens([query])
        if self.keyword is None or not tokens[0]:
            return []
        mask = None
        if within is not None:
            mask = np.zeros(len(self.chunks), dtype=np.float32)
            mask[self._rows_within(within)] = 1.0
        rows, scores = self.keyword.retrieve(tokens, k=min(depth, len(self.chunks)), show_progress=False,
                                             weight_mask=mask)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if s > 0]

    def _rows_within(self, within: frozenset[str]) -> np.ndarray:
        """The rows of the documents whose ids are ``within``, in order; the last scope's are kept, as one question
        asks for them three times (its count, and each ranking)."""
        last = self.__dict__.get("_last_scope")
        if last is None or last[0] != within:
            rows = [row for doc_id in within for row in self._rows_by_id.get(doc_id, ())]
            last = self.__dict__["_last_scope"] = (within, np.asarray(sorted(rows), dtype=np.int64))
        return last[1]

    @cached_property
    def _rows_by_id(self) -> dict[str, list[int]]:
        return _rows_by(self.chunks, "doc_id")

    def cosines(self, keys: list[int], vector: np.ndarray) -> list[float]:
        """Cosines of ``vector`` with the chunks of ``keys``."""
        if not keys:
            return []
        return (np.stack([self.dense.reconstruct(row) for row in keys]) @ vector.reshape(-1)).tolist()

    def vectors(self) -> np.ndarray:
        """All chunk vectors, row ``i`` for ``chunks[i]``."""
        if not self.chunks:
            return np.zeros((0, self.settings.dimensions), dtype=np.float32)
        return self.dense.reconstruct_n(0, self.dense.ntotal)


def _rows_by(chunks: list[Chunk], field: str) -> dict[str, list[int]]:
    """The rows of ``chunks`` grouped by one of their fields (a document's name or id), in order."""
    rows: dict[str, list[int]] = {}
    for row, chunk in enumerate(chunks):
        rows.setdefault(getattr(chunk, field), []).append(row)
    return rows


# A scope of at most this many rows is searched exactly, its vectors read back, rather than in an inverted file's
# cells (which may hold none of them); reading 20,000 vectors back takes about 20 ms.
EXACT_SCOPE_ROWS = 20_000


def dense_index(vectors: np.ndarray, exact_search_limit: int) -> faiss.Index:
    """A FAISS index over unit ``vectors`` (row ``i`` has id ``i``) that ranks by cosine similarity.

    Up to ``exact_search_limit`` rows it is exact (flat). Above, it is an inverted file of about 4·sqrt(n) cells
    holding float16 vectors (half the memory), searched ``IVF_NPROBE`` cells deep. (8-bit vectors, a quarter of
    the memory, capped recall@10 at 0.93 of exact at 10^6 chunks whatever the depth; float16 kept it at 1.0.)
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dimensions = vectors.shape
    if n <= exact_search_limit:
        dense = faiss.IndexFlatIP(dimensions)  # inner product of unit vectors = cosine
        if n:
            dense.add(vectors)
        return dense
    cells = max(1, min(int(4 * np.sqrt(n)), n // 40))
    dense = faiss.index_factory(dimensions, f"IVF{cells},SQfp16", faiss.METRIC_INNER_PRODUCT)
    # k-means needs about 40 points per cell; more only slows training. A fixed seed keeps builds reproducible.
    sample = np.random.default_rng(0).choice(n, size=min(n, 40 * cells), replace=False)
    dense.train(vectors[np.sort(sample)])
    dense.add(vectors)
    _prepare_for_search(dense)
    return dense


def keyword_index(texts: list[str]) -> bm25s.BM25 | None:
    """A BM25 index whose document ``i`` is ``texts[i]``; None for no texts."""
    if not texts:
        return None
    keyword = bm25s.BM25()
    keyword.index(keyword_tokens(texts), show_progress=False)
    return keyword


def _prepare_for_search(dense: faiss.Index) -> None:
    """Set how deep an inverted-file index searches, and let it return stored vectors by id (for hits that only
    the keyword index found). A flat index needs neither."""
    if isinstance(dense, faiss.IndexFlat):
        return
    ivf = faiss.extract_index_ivf(dense)
    ivf.nprobe = min(IVF_NPROBE, ivf.nlist)
    ivf.make_direct_map()


# ---------------------------------------------------------------------------------------------- persistence


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_generation(index: KnowledgeIndex, folder: Path) -> None:
    folder.mkdir(parents=True)
    _write_jsonl(folder / "documents.jsonl", [asdict(d) for d in index.documents.values()])
    _write_jsonl(folder / "chunks.jsonl", [asdict(c) for c in index.chunks])
    faiss.write_index(index.dense, str(folder / "dense.faiss"))
    if index.keyword is not None:
        index.keyword.save(str(folder / KEYWORD_DIR))
    files = {
        p.relative_to(folder).as_posix(): _sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **asdict(index.settings),
        "counts": {"documents": len(index.documents), "chunks": len(index.chunks)},
        "documents": [
            {"name": d.name, "id": d.id, "title": d.title, "chunks": index.chunk_count(d.name)}
            for d in index.documents.values()
        ],
        "files": files,
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


@contextmanager
def write_lock(index_dir: Path, timeout_s: float = 600.0) -> Iterator[None]:
    """Hold the index's writer lock; waits up to ``timeout_s`` for another writer, then raises IndexLocked.

    Once held, what a writer killed mid-way left behind is removed: unfinished generations (``.tmp-gen-*``), one
    it finished but never made live, and older ones it had not yet removed (``_remove_unused_generations``).
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / LOCK_FILE, "a+") as lock:
        deadline = time.monotonic() + timeout_s
        waited = False
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log.warning("another process is updating the index in %s; waiting up to %.0f s", index_dir,
                                timeout_s)
                    waited = True
                if time.monotonic() >= deadline:
                    raise IndexLocked(
                        f"another process is updating the index in {index_dir}; try again when it has finished"
                    ) from None
                time.sleep(0.2)
        _remove_unused_generations(index_dir)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def save_index(index: KnowledgeIndex, index_dir: Path | str) -> Path:
    """Write ``index`` as a new generation and make it live atomically. Caller should hold ``write_lock``."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    name = f"gen-{stamp}-{secrets.token_hex(3)}"
    problem = inconsistency(index)
    if problem is not None:  # a bug upstream: keep the live generation rather than publish a broken one
        raise IndexCorrupt(f"refusing to write an inconsistent index to {index_dir}: {problem}")
    staging = index_dir / f".tmp-{name}"
    _write_generation(index, staging)
    os.rename(staging, index_dir / name)
    pointer = index_dir / f".{CURRENT_FILE}.tmp"
    pointer.write_text(name + "\n", encoding="utf-8")
    with open(pointer, "rb") as f:
        os.fsync(f.fileno())
    os.replace(pointer, index_dir / CURRENT_FILE)
    _fsync_dir(index_dir)
    _remove_unused_generations(index_dir)  # the one just replaced stays: a reader may be loading it
    return index_dir / name


def _remove_unused_generations(index_dir: Path) -> None:
    """With the writer lock held, remove the generations no reader can be using: unfinished ones, ones written
    after the live one (finished, but their writer was killed before moving ``CURRENT``), and all before the live
    one but the newest, which a reader that read ``CURRENT`` just before the last swap may still be loading.

    Generations are ordered by when they were written (their folders' modification times), so what a killed
    writer left is recognised without any record of it.
    """
    for unfinished in index_dir.glob(".tmp-gen-*"):
        shutil.rmtree(unfinished, ignore_errors=True)
    try:
        live = current_generation(index_dir)
    except IndexStoreError:
        return  # no trustworthy pointer: nothing else is removed
    live_written = live.stat().st_mtime_ns
    written = {path: path.stat().st_mtime_ns for path in index_dir.glob("gen-*") if path.is_dir() and path != live}
    before_live = sorted((path for path in written if written[path] < live_written), key=written.get)
    for path in set(written) - set(before_live[-1:]):
        shutil.rmtree(path, ignore_errors=True)


def current_generation(index_dir: Path | str) -> Path:
    """The live generation folder; raises IndexNotFound when the folder holds no index."""
    index_dir = Path(index_dir)
    pointer = index_dir / CURRENT_FILE
    if not pointer.is_file():
        raise IndexNotFound(f"no index in {index_dir}; build one with `rag index`")
    name = pointer.read_text(encoding="utf-8").strip()
    if not name.startswith("gen-") or "/" in name or not (index_dir / name).is_dir():
        raise IndexCorrupt(f"{pointer} points at a missing generation; rebuild with `rag index --rebuild`")
    return index_dir / name


def load_index(index_dir: Path | str) -> KnowledgeIndex:
    """Load the live index, verifying checksums and that vectors, chunk rows and keyword index agree.

    Raises IndexNotFound or IndexCorrupt with a message that says how to rebuild.
    """
    folder = current_generation(index_dir)
    hint = "; rebuild it with `rag index --rebuild`"
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexCorrupt(f"index format {manifest.get('format_version')} is not {FORMAT_VERSION}{hint}")
        for rel, digest in manifest["files"].items():
            path = folder / rel
            if not path.is_file() or _sha256(path) != digest:
                raise IndexCorrupt(f"index file {path} is missing or damaged (checksum mismatch){hint}")
        settings = IndexSettings(
            embedding_model=manifest["embedding_model"],
            dimensions=int(manifest["dimensions"]),
            chunk_tokens=int(manifest["chunk_tokens"]),
            chunk_overlap_tokens=int(manifest["chunk_overlap_tokens"]),
        )
        documents = [Document(**row) for row in _read_jsonl(folder / "documents.jsonl")]
        chunks = [Chunk(**row) for row in _read_jsonl(folder / "chunks.jsonl")]
        dense = faiss.read_index(str(folder / "dense.faiss"))
        _prepare_for_search(dense)
        keyword = None
        if (folder / KEYWORD_DIR).is_dir():
            keyword = bm25s.BM25.load(str(folder / KEYWORD_DIR), load_corpus=False, allow_pickle=False)
    except IndexStoreError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexCorrupt(f"cannot read the index in {folder} ({exc.__class__.__name__}: {exc}){hint}") from exc

    counts = manifest["counts"]
    index = KnowledgeIndex(settings, {d.name: d for d in documents}, chunks, dense, keyword)
    problem = inconsistency(index)
    if problem is None and (len(chunks), len(documents)) != (counts["chunks"], counts["documents"]):
        problem = f"the manifest counts {counts['chunks']} chunks and {counts['documents']} documents"
    if problem is not None:
        raise IndexCorrupt(f"index in {folder} is inconsistent: {problem}{hint}")
    return index


def inconsistency(index: KnowledgeIndex) -> str | None:
    """What makes ``index`` unusable, in words (vectors, chunk rows and keyword rows that do not match, a chunk
    of no document, two chunks with one id); None when it is whole. Checked before a generation is written, so a
    broken one is never published, and again on load."""
    keyword_rows = int(index.keyword.scores["num_docs"]) if index.keyword is not None else 0
    chunks = index.chunks
    if not index.dense.ntotal == len(chunks) == keyword_rows:
        return f"{index.dense.ntotal} vectors, {len(chunks)} chunk rows, {keyword_rows} keyword rows"
    if index.dense.d != index.settings.dimensions:
        return f"vectors of {index.dense.d} dimensions where the settings say {index.settings.dimensions}"
    names = {name: document.id for name, document in index.documents.items()}
    strays = [c.id for c in chunks if names.get(c.doc_name) != c.doc_id]
    if strays:
        return f"{len(strays)} chunks of no document (e.g. {strays[0]})"
    if len({c.id for c in chunks}) != len(chunks):
        return "two chunks share one id"
    return None


class FaissStore:
    """The FAISS and BM25 index as a store the update path writes (``rag.stores.base.WritableStore``): ``index`` is
    the current ``KnowledgeIndex``. With a ``folder``, updates hold its writer lock, the index is read from it and
    every changed one is written to it as a new generation; without one (tests, benchmarks) it lives in memory."""

    def __init__(self, index: KnowledgeIndex | None = None, folder: Path | None = None, *,
                 exact_search_limit: int = 50_000, lock_wait_s: float = 600.0) -> None:
        self.index = index
        self.folder = Path(folder) if folder is not None else None
        self.exact_search_limit = exact_search_limit
        self.lock_wait_s = lock_wait_s

    def writing(self) -> contextlib.AbstractContextManager[object]:
        return write_lock(self.folder, self.lock_wait_s) if self.folder is not None else contextlib.nullcontext()

    def held(self) -> Held:
        if self.folder is not None:
            try:
                self.index = load_index(self.folder)
            except IndexNotFound:
                self.index = None
        if self.index is None:
            return Held(None, {})
        return Held(self.index.settings, dict(self.index.documents))

    def write(self, update: Update) -> int:
        previous = None if update.start_over else self.index
        if previous is not None and previous.documents == {d.name: d for d in update.documents}:
            # Nothing to do: the loaded index is the answer (rebuilding FAISS and BM25 took seconds at 10^4 chunks).
            return len(previous.chunks)
        # The rows of one document per content: copies of a text (under several names) share its chunks' vectors.
        old_rows_by_content: dict[str, list[int]] = {}
        if previous is not None:
            rows_by_name: dict[str, list[int]] = {}
            for row, chunk in enumerate(previous.chunks):
                rows_by_name.setdefault(chunk.doc_name, []).append(row)
            for rows in rows_by_name.values():
                old_rows_by_content.setdefault(previous.chunks[rows[0]].doc_id, rows)
        old_vectors = previous.vectors() if previous is not None else None
        chunks: list[Chunk] = []
        vector_parts: list[np.ndarray] = []
        indexed: set[str] = set()
        for document in update.documents:
            if document.id in indexed:
                # A copy of a text already indexed (the same file kept twice): a document of its own, whose passages
                # are those of the first name holding that text, as in the Milvus store. Indexing them twice gave
                # chunks one id, and a duplicate passage took a place among the few the model reads.
                continue
            indexed.add(document.id)
            rows = old_rows_by_content.get(document.id)
            if rows and previous is not None and old_vectors is not None:
                # Same text under any name: same chunks and vectors; only the name and title may differ.
                chunks.extend(dataclasses.replace(previous.chunks[r], **document.chunk_fields(
                    previous.chunks[r].start, previous.chunks[r].end)) for r in rows)
                vector_parts.append(old_vectors[rows])
        # The new texts' chunks follow as one block, in the order the update path chunked them.
        if update.chunks:
            chunks.extend(update.chunks)
            vector_parts.append(update.vectors)
        vectors = (np.concatenate(vector_parts) if vector_parts
                   else np.zeros((0, update.settings.dimensions), np.float32))
        self.index = KnowledgeIndex.build(update.settings, update.documents, chunks, vectors,
                                          exact_search_limit=self.exact_search_limit)
        if self.folder is not None:
            save_index(self.index, self.folder)
        return len(chunks)
