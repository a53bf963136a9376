"""The index kept in Milvus instead of a local folder: chunk vectors, Milvus's own BM25 full-text search over the
chunk text, the documents and the manifest, all in one Milvus database, through ``pymilvus``.

A URI that is a file path (``index.db``) runs Milvus Lite inside the process (the ``milvus-lite`` package, one
process at a time); ``http://host:19530`` reaches a Milvus server (standalone, distributed, or ``milvus-lite
server``) with the same code, so that several chat servers share one index.

Collections, named ``<prefix>_<name>``:

    chunks     id (the chunk id), doc_id, position, start, end, text (BM25-analysed), vector, sparse (BM25 output)
    texts      id "<doc_id>:<part>", doc_id, part, text: a document's text in parts under Milvus's VARCHAR limit
    documents  name, doc_id, title, layout (JSON: page starts, chunk and text-part counts): which content each
               file name shows now
    meta       key "manifest": the embedding and chunking settings, a version bumped by every update, and
               "pending" while an update is under way (the next one then removes what a killed writer left)

An update writes the chunks and text of new content first (under its own content hash, unseen by readers, who
only follow ``documents``), then points each document's row at it, then deletes what no row points at. A writer
killed at any moment leaves each document either wholly old or wholly new; what it left unreferenced is deleted by
the next update.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import asdict

import numpy as np

from rag.stores.base import Held, IndexSettings, IndexStoreError, Update
from rag.types import Chunk, Document

log = logging.getLogger(__name__)

CHUNKS, TEXTS, DOCUMENTS, META = "chunks", "texts", "documents", "meta"
MANIFEST_KEY = "manifest"
MAX_VARCHAR = 65_535  # Milvus's VARCHAR limit, in bytes
TEXT_PART_CHARS = 16_000  # at most 4 bytes a character in UTF-8: a part always fits
NAME_BYTES = 4_096
INSERT_BATCH = 256
# BM25 as bm25s scores it in the FAISS store (and its stop words: _stop_words), so both stores rank alike.
BM25_PARAMS = {"bm25_k1": 1.5, "bm25_b": 0.75}


class MilvusUnavailable(IndexStoreError):
    """The Milvus URI cannot be reached or opened; the message names it."""


def connect(uri: str, token: str = ""):
    """A ``pymilvus.MilvusClient`` for ``uri``; raises MilvusUnavailable naming the URI when it does not answer."""
    if "://" not in uri:
        # Milvus Lite's in-process server turns away the client's keep-alive pings, which gRPC's core then logs
        # as errors on every idle minute; the connection itself is re-made as needed.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise MilvusUnavailable("the Milvus store needs the [milvus] extra: pip install 'rag-assistant[milvus]'") from exc
    if "://" not in uri:
        # Milvus Lite's in-process server lacks the timestamp call pymilvus's query iterator tries first; both log
        # that as an error, then the iterator reads as of the client's clock, which in one process is the same.
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        logging.getLogger("pymilvus").setLevel(logging.ERROR)
    try:
        return MilvusClient(uri=uri, token=token, timeout=30)
    except Exception as exc:  # pymilvus raises MilvusException, grpc errors, OSError (a locked Lite file) and more
        raise MilvusUnavailable(f"cannot reach Milvus at {uri} ({exc.__class__.__name__}: {exc})") from exc


def _stop_words() -> list[str]:
    """bm25s's English stop words, and the one-character words its tokenizer skips (it keeps words of 2+)."""
    import string

    from bm25s.stopwords import STOPWORDS_EN

    return sorted(set(STOPWORDS_EN) | set(string.ascii_lowercase) | set(string.digits))


def _create_collections(client, prefix: str, dimensions: int) -> None:
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    def schema():
        return MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)

    if not client.has_collection(f"{prefix}_{CHUNKS}"):
        chunks = schema()
        chunks.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        chunks.add_field("doc_id", DataType.VARCHAR, max_length=64)
        chunks.add_field("position", DataType.INT64)
        chunks.add_field("start", DataType.INT64)
        chunks.add_field("end", DataType.INT64)
        chunks.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True, analyzer_params={
            "tokenizer": "standard", "filter": ["lowercase", {"type": "stop", "stop_words": _stop_words()}],
        })
        chunks.add_field("vector", DataType.FLOAT_VECTOR, dim=dimensions)
        chunks.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        chunks.add_function(Function(name="text_bm25", function_type=FunctionType.BM25,
                                     input_field_names=["text"], output_field_names=["sparse"]))
        indexes = client.prepare_index_params()
        indexes.add_index("vector", index_type="FLAT", metric_type="IP")  # normalised embeddings: IP is cosine
        indexes.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params=BM25_PARAMS)
        client.create_collection(f"{prefix}_{CHUNKS}", schema=chunks, index_params=indexes)
    for name, fields in (
        (TEXTS, [("doc_id", 64), ("text", MAX_VARCHAR)]),
        (DOCUMENTS, [("doc_id", 64), ("title", NAME_BYTES), ("layout", MAX_VARCHAR)]),
        (META, [("value", MAX_VARCHAR)]),
    ):
        if client.has_collection(f"{prefix}_{name}"):
            continue
        table = schema()
        table.add_field("id", DataType.VARCHAR, is_primary=True, max_length=NAME_BYTES)
        for field, length in fields:
            table.add_field(field, DataType.VARCHAR, max_length=length)
        table.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
        indexes = client.prepare_index_params()
        indexes.add_index("dummy", index_type="FLAT", metric_type="L2")
        client.create_collection(f"{prefix}_{name}", schema=table, index_params=indexes)


def _query_all(client, collection: str, fields: list[str], filter: str = 'id != ""') -> list[dict]:
    """Every row of ``collection`` matching ``filter`` (paged: a query returns at most 16,384 rows at once)."""
    rows: list[dict] = []
    iterator = client.query_iterator(collection, batch_size=1000, filter=filter, output_fields=fields)
    try:
        while batch := iterator.next():
            rows.extend(batch)
    finally:
        iterator.close()
    return rows


def _quoted(values: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


class MilvusIndex:
    """An index in a Milvus database: what retrieval searches (``rag.answering.retrieval.SearchableIndex``, keyed by chunk
    id) and the documents it holds, as the FAISS store's ``KnowledgeIndex`` offers them."""

    def __init__(self, client, prefix: str, uri: str) -> None:
        self.client = client
        self.prefix = prefix
        self.uri = uri
        self._lock = threading.Lock()
        self._chunks: dict[str, Chunk] = {}  # chunks seen in search results, by id, as their documents show them
        self._version = -1
        self.settings: IndexSettings | None = None
        self.documents: dict[str, Document] = {}
        self._by_id: dict[str, Document] = {}
        self._counts: dict[str, int] = {}
        self.load_collections()
        self.reload()

    # ------------------------------------------------------------------ the update path's store (WritableStore)

    def writing(self) -> contextlib.AbstractContextManager[object]:
        # Milvus serialises the writes; a killed writer's leftovers are removed by the next (``_write``).
        return contextlib.nullcontext()

    def held(self) -> Held:
        self.reload()
        return Held(self.settings, dict(self.documents))

    def write(self, update: Update) -> int:
        return _write(self, update)

    def load_collections(self) -> None:
        """Load this store's collections into the Milvus server's memory. A collection is searchable only once
        loaded, and a database opened by a new process (or a restarted server) starts with them released."""
        for collection in (CHUNKS, TEXTS, DOCUMENTS, META):
            name = self._name(collection)
            if self.client.has_collection(name):
                self.client.load_collection(name)

    # ------------------------------------------------------------------ documents and manifest

    def _name(self, collection: str) -> str:
        return f"{self.prefix}_{collection}"

    def manifest(self) -> dict | None:
        """The stored manifest (settings and version), or None for a database this store has not written."""
        if not self.client.has_collection(self._name(META)):
            return None
        rows = self.client.get(self._name(META), ids=[MANIFEST_KEY], output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else None

    def reload(self) -> None:
        """Read the documents again if another writer changed them since they were read."""
        manifest = self.manifest()
        version = manifest["version"] if manifest else 0
        if version == self._version:
            return
        with self._lock:
            self.settings = IndexSettings(**manifest["settings"]) if manifest else None
            documents: dict[str, Document] = {}
            counts: dict[str, int] = {}
            if manifest:
                rows = _query_all(self.client, self._name(DOCUMENTS), ["doc_id", "title", "layout"])
                layouts = {row["id"]: json.loads(row["layout"]) for row in rows}
                texts = self._texts({row["doc_id"]: layouts[row["id"]]["text_parts"] for row in rows})
                for row in rows:
                    layout = layouts[row["id"]]
                    documents[row["id"]] = Document(row["doc_id"], row["id"], row["title"], texts[row["doc_id"]],
                                                    tuple(layout["page_starts"]))
                    counts[row["id"]] = int(layout["chunks"])
            self.documents, self._counts = documents, counts
            self._by_id = {}
            for document in sorted(documents.values(), key=lambda d: d.name):
                self._by_id.setdefault(document.id, document)  # the same text under two names is indexed once
            self._version = version

    def _texts(self, parts_by_id: dict[str, int]) -> dict[str, str]:
        """The texts of the documents ``parts_by_id`` names, each joined from its number of parts."""
        if not parts_by_id:
            return {}
        parts: dict[str, dict[int, str]] = {}
        for row in _query_all(self.client, self._name(TEXTS), ["doc_id", "text"],
                              filter=f"doc_id in {_quoted(sorted(parts_by_id))}"):
            parts.setdefault(row["doc_id"], {})[int(row["id"].rsplit(":", 1)[1])] = row["text"]
        texts = {}
        for doc_id, count in parts_by_id.items():
            pieces = parts.get(doc_id, {})
            if sorted(pieces) != list(range(count)):
                raise IndexStoreError(f"the index in Milvus lacks part of the text of document {doc_id[:12]}; "
                                      "rebuild it with `rag index --rebuild`")
            texts[doc_id] = "".join(pieces[n] for n in range(count))
        return texts

    def chunk_count(self, doc_name: str) -> int:
        return self._counts.get(doc_name, 0)

    # ------------------------------------------------------------------ what retrieval asks

    def chunk_total(self, within: frozenset[str] | None = None) -> int:
        self.reload()
        if within is None:
            return sum(self._counts.values())
        # The same text under two names is stored once: each content counted once.
        counted = {self.documents[name].id: count for name, count in self._counts.items()
                   if name in self.documents and self.documents[name].id in within}
        return sum(counted.values())

    def chunk(self, key: str) -> Chunk:
        return self._chunks[key]

    def _remember(self, entity: dict, chunk_id: str) -> bool:
        document = self._by_id.get(entity["doc_id"])
        if document is None:
            return False  # a chunk of content no document shows (mid-update, or left by a killed writer)
        start, end = int(entity["start"]), int(entity["end"])
        self._chunks[chunk_id] = Chunk(id=chunk_id, doc_id=document.id, index=int(entity["position"]), start=start,
                                       end=end, text=entity["text"], **document.chunk_fields(start, end))
        return True

    _FIELDS = ["doc_id", "position", "start", "end", "text"]

    def dense_search(self, vector: np.ndarray, depth: int,
                     within: frozenset[str] | None = None) -> list[tuple[str, float]]:
        results = self.client.search(self._name(CHUNKS), data=[vector.astype(np.float32).tolist()],
                                     anns_field="vector", limit=depth, output_fields=self._FIELDS,
                                     search_params={"metric_type": "IP"}, **_filter(within))
        return [(hit["id"], float(hit["distance"])) for hit in results[0] if self._remember(hit["entity"], hit["id"])]

    def keyword_search(self, query: str, depth: int,
                       within: frozenset[str] | None = None) -> list[tuple[str, float]]:
        if not query.strip():
            return []
        results = self.client.search(self._name(CHUNKS), data=[query], anns_field="sparse", limit=depth,
                                     output_fields=self._FIELDS, search_params={"metric_type": "BM25"},
                                     **_filter(within))
        # Milvus Lite reports a BM25 score negated (a distance); a Milvus server, as it is.
        return [(hit["id"], abs(float(hit["distance"]))) for hit in results[0]
                if hit["distance"] != 0 and self._remember(hit["entity"], hit["id"])]

    def cosines(self, keys: list[str], vector: np.ndarray) -> list[float]:
        if not keys:
            return []
        rows = {row["id"]: row["vector"] for row in self.client.get(self._name(CHUNKS), ids=keys,
                                                                     output_fields=["vector"])}
        return [float(np.asarray(rows[key], dtype=np.float32) @ vector) for key in keys]


def _filter(within: frozenset[str] | None) -> dict:
    """The search argument that keeps only chunks of the documents whose ids are ``within`` (Milvus filters before
    it ranks); none for None."""
    return {} if within is None else {"filter": f"doc_id in {_quoted(sorted(within))}"}


def _text_parts(text: str) -> int:
    return max(1, -(-len(text) // TEXT_PART_CHARS))


def open_milvus_index(uri: str, prefix: str = "rag", token: str = "") -> MilvusIndex:
    """The index in the Milvus database at ``uri`` (collections named ``prefix_*``), empty if none was written."""
    return MilvusIndex(connect(uri, token), prefix, uri)


def _write(index: MilvusIndex, update: Update) -> int:
    """``MilvusIndex.write``: the chunks and text of new content first, then each name pointed at its content,
    then what nothing points at deleted."""
    client, prefix, wanted = index.client, index.prefix, update.settings
    index.reload()
    if update.start_over:
        if index.settings is not None and index.settings != wanted:
            log.warning("the index in %s was built with %s; rebuilding it with %s", index.uri, index.settings, wanted)
        for collection in (CHUNKS, TEXTS, DOCUMENTS, META):
            if client.has_collection(f"{prefix}_{collection}"):
                client.drop_collection(f"{prefix}_{collection}")
        index._version = -1
        index.reload()
    _create_collections(client, prefix, wanted.dimensions)
    index.load_collections()
    manifest = index.manifest() or {"version": 0}

    documents = update.documents
    old = dict(index.documents)
    removed = sorted(set(old) - {d.name for d in documents})
    # 1. Content no row points at yet: its chunks and text, written before anything shows it.
    have = {d.id for d in old.values()}
    fresh: dict[str, Document] = {}
    for document in documents:
        if document.id not in have and document.id not in fresh:
            fresh[document.id] = document
    changed = [d for d in documents if old.get(d.name) != d]
    if not (fresh or changed or removed or manifest.get("pending")) and index.settings is not None:
        return index.chunk_total()  # nothing to write, and the last writer finished: no need to scan for leftovers

    def write_manifest(version: int, unfinished: bool) -> None:
        client.upsert(f"{prefix}_{META}", [{"id": MANIFEST_KEY, "dummy": [0.0, 0.0], "value": json.dumps(
            {"settings": asdict(wanted), "version": version, "pending": unfinished}
        )}])

    # Marked unfinished until step 3 is done, so that the next writer looks for what a killed one left; readers
    # only react to a new version.
    write_manifest(int(manifest["version"]), True)
    pending = [c for c in update.chunks if c.doc_id in fresh]
    vectors = update.vectors[[n for n, c in enumerate(update.chunks) if c.doc_id in fresh]]
    for start in range(0, len(pending), INSERT_BATCH):
        batch = pending[start:start + INSERT_BATCH]
        client.upsert(f"{prefix}_{CHUNKS}", [
            {"id": c.id, "doc_id": c.doc_id, "position": c.index, "start": c.start, "end": c.end, "text": c.text,
             "vector": vector.tolist()} for c, vector in zip(batch, vectors[start:start + INSERT_BATCH])
        ])
    for document in fresh.values():
        pieces = [document.text[i:i + TEXT_PART_CHARS] for i in range(0, len(document.text), TEXT_PART_CHARS)]
        client.upsert(f"{prefix}_{TEXTS}", [
            {"id": f"{document.id}:{n}", "doc_id": document.id, "text": piece, "dummy": [0.0, 0.0]}
            for n, piece in enumerate(pieces)
        ])

    # 2. Each name now shows its content (one row per document: a document is either wholly old or wholly new).
    chunk_counts = {d.id: index.chunk_count(d.name) for d in old.values()}
    for chunk in pending:
        chunk_counts[chunk.doc_id] = chunk_counts.get(chunk.doc_id, 0) + 1
    if changed:
        client.upsert(f"{prefix}_{DOCUMENTS}", [
            {"id": d.name, "doc_id": d.id, "title": d.title, "dummy": [0.0, 0.0], "layout": json.dumps({
                "page_starts": list(d.page_starts), "chunks": chunk_counts.get(d.id, 0),
                "text_parts": _text_parts(d.text),
            })} for d in changed
        ])
    if removed:
        client.delete(f"{prefix}_{DOCUMENTS}", ids=removed)

    # 3. What no document shows any more, including what a killed writer left.
    live = {d.id for d in documents}
    stale = {row["doc_id"] for row in _query_all(client, f"{prefix}_{TEXTS}", ["doc_id"])} - live
    stale |= {row["doc_id"] for row in _query_all(client, f"{prefix}_{CHUNKS}", ["doc_id"])} - live
    if stale:
        client.delete(f"{prefix}_{CHUNKS}", filter=f"doc_id in {_quoted(sorted(stale))}")
        client.delete(f"{prefix}_{TEXTS}", filter=f"doc_id in {_quoted(sorted(stale))}")

    write_manifest(int(manifest["version"]) + 1, False)
    # Sealed segments are searched through their indexes; rows still in memory, one by one (in Milvus Lite,
    # 10^4 chunks: 13 ms a dense search after the flush, 315 ms before).
    for collection in (CHUNKS, TEXTS, DOCUMENTS, META):
        client.flush(f"{prefix}_{collection}")
    index.reload()
    return index.chunk_total()
