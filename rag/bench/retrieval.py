"""Retrieval at scale: the index the project builds for a size (exact, or inverted file above
``Settings.exact_search_limit``) against exact search, on synthetic vectors and generated text.

Vectors mimic sentence embeddings: each is a random mix of three of 2,000 "topic" directions plus noise, so
neighbours spread over topics instead of sitting in tight clusters (which would flatter an inverted file).
"""

from __future__ import annotations

import gc
import time
from pathlib import Path

import faiss
import numpy as np

from rag.answering.retrieval import HybridRetriever
from rag.bench.corpus import generate_texts, sentence_pool
from rag.bench.report import publish
from rag.config import Settings
from rag.evaluation.scoring import percentile
from rag.stores.base import IndexSettings
from rag.stores.faiss_store import KnowledgeIndex, dense_index, keyword_index
from rag.types import Chunk

DIMENSIONS = 384
TOPICS = 2_000


def synthetic_vectors(count: int, rng: np.random.Generator, topics: np.ndarray) -> np.ndarray:
    """``count`` unit vectors, each a random mix of three ``topics`` rows plus Gaussian noise."""
    out = np.empty((count, topics.shape[1]), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        picks = rng.integers(0, len(topics), size=(n, 3))
        weights = rng.dirichlet([1.0, 1.0, 1.0], size=n).astype(np.float32)
        block = np.einsum("nk,nkd->nd", weights, topics[picks])
        block += 0.6 * rng.standard_normal(block.shape, dtype=np.float32) / np.sqrt(topics.shape[1])
        out[start:start + n] = block
    faiss.normalize_L2(out)
    return out


class _LookupEmbedder:
    """Returns prepared query vectors in turn, so the retriever is timed without a model."""

    name = "synthetic"
    dimensions = DIMENSIONS

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.next = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        vector = self.vectors[self.next % len(self.vectors)][None, :]
        self.next += 1
        return vector

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def _latencies(search, queries: np.ndarray) -> tuple[list[float], list[np.ndarray]]:
    times, results = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(search(query))
        times.append((time.perf_counter() - started) * 1000)
    return times, results


def _index_bytes(index: faiss.Index) -> int:
    return int(faiss.serialize_index(index).nbytes)


def run_size(size: int, settings: Settings, queries: int, pool: list[str], rng: np.random.Generator,
             topics: np.ndarray) -> dict:
    """One row of the table: build both indexes over ``size`` chunks and time ``queries`` searches."""
    vectors = synthetic_vectors(size, rng, topics)
    query_vectors = synthetic_vectors(queries, rng, topics)
    k = 10

    exact = faiss.IndexFlatIP(DIMENSIONS)
    exact.add(vectors)
    truth = exact.search(query_vectors, k)[1]  # one batched call: the reference answers
    exact_sample = query_vectors[: min(queries, 50)]  # single-question latency; 50 are plenty at 200 ms each
    search_exact = exact.search
    exact_ms, _ = _latencies(lambda q: search_exact(q[None, :], k)[1][0], exact_sample)

    started = time.perf_counter()
    chosen = dense_index(vectors, settings.exact_search_limit)
    build_s = time.perf_counter() - started
    chosen_ms, found = _latencies(lambda q: chosen.search(q[None, :], k)[1][0], query_vectors)
    recall = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / k for f, t in zip(found, truth)]))
    if isinstance(chosen, faiss.IndexFlat):
        kind = "exact (flat)"
    else:
        ivf = faiss.extract_index_ivf(chosen)
        kind = f"inverted file: {ivf.nlist} cells, nprobe {ivf.nprobe}"
    exact_bytes = _index_bytes(exact)
    chosen_bytes = _index_bytes(chosen)
    del exact
    gc.collect()

    # Keyword and hybrid search over generated chunk texts, as HybridRetriever runs them (embedding the question
    # excluded: it does not depend on the index size).
    started = time.perf_counter()
    texts = list(generate_texts(size, pool, (2, 5), seed=size))
    chunks = [Chunk(f"c{i}", "d", "generated", "generated", i, 0, len(t), t) for i, t in enumerate(texts)]
    index = KnowledgeIndex(IndexSettings("synthetic", DIMENSIONS, 128, 32), {}, chunks, chosen, keyword_index(texts))
    bm25_build_s = time.perf_counter() - started
    question_texts = [t.split(".")[0] for t in generate_texts(queries, pool, (1, 1), seed=size + 1)]
    retriever = HybridRetriever.from_settings(index, _LookupEmbedder(query_vectors), settings)
    keyword_ms, _ = _latencies(lambda q: retriever.keyword_scores(q, settings.candidates), question_texts)
    hybrid_ms, _ = _latencies(lambda q: retriever.search(q, settings.top_k), question_texts)

    return {
        "chunks": size,
        "index": kind,
        "build_s": build_s,
        "exact_p50_ms": percentile(exact_ms, 50),
        "p50_ms": percentile(chosen_ms, 50),
        "p95_ms": percentile(chosen_ms, 95),
        "recall_at_10": recall,
        "bytes_per_chunk": chosen_bytes / size,
        "exact_bytes_per_chunk": exact_bytes / size,
        "bm25_build_s": bm25_build_s,
        "bm25_p50_ms": percentile(keyword_ms, 50),
        "hybrid_p50_ms": percentile(hybrid_ms, 50),
        "hybrid_p95_ms": percentile(hybrid_ms, 95),
    }


def run(sizes: list[int], queries: int = 200, out: Path | None = None, settings: Settings | None = None) -> dict:
    """Run every size, print the table and write JSON; returns the payload's rows and summary."""
    settings = settings or Settings()
    rng = np.random.default_rng(0)
    topics = rng.standard_normal((TOPICS, DIMENSIONS), dtype=np.float32)
    pool = sentence_pool(settings.docs_dir)
    rows = []
    for size in sizes:
        print(f"retrieval: {size:,} chunks ...", flush=True)
        rows.append(run_size(size, settings, queries, pool, rng, topics))
        gc.collect()
    largest = rows[-1]
    summary = {
        "largest_chunks": largest["chunks"],
        "largest_p50_ms": largest["p50_ms"],
        "largest_recall_at_10": largest["recall_at_10"],
        "speedup_over_exact_at_largest": largest["exact_p50_ms"] / largest["p50_ms"],
        "goal": "p50 <= 20 ms at 10^6 chunks with recall@10 >= 0.95 of exact",
    }
    columns = ["chunks", "index", "build_s", "exact_p50_ms", "p50_ms", "p95_ms", "recall_at_10", "bytes_per_chunk",
               "bm25_p50_ms", "hybrid_p50_ms", "hybrid_p95_ms"]
    publish("retrieval", "Retrieval at scale (dense: synthetic 384-d vectors; keyword: generated text)", rows,
            columns, summary, out)
    return {"rows": rows, "summary": summary}


def run_milvus_size(size: int, settings: Settings, queries: int, pool: list[str], rng: np.random.Generator,
                    topics: np.ndarray, folder: Path) -> dict:
    """One row for the Milvus store (Milvus Lite in a file under ``folder``): the same vectors and texts as
    ``run_size``, inserted through pymilvus, searched densely and hybrid through ``HybridRetriever``."""
    import json
    import shutil

    from rag.stores.milvus_store import CHUNKS, DOCUMENTS, META, TEXTS, _create_collections, open_milvus_index

    vectors = synthetic_vectors(size, rng, topics)
    query_vectors = synthetic_vectors(queries, rng, topics)
    k = 10
    exact = faiss.IndexFlatIP(DIMENSIONS)
    exact.add(vectors)
    truth = exact.search(query_vectors, k)[1]
    del exact
    texts = list(generate_texts(size, pool, (2, 5), seed=size))
    text = "\n".join(texts)

    path = folder / f"milvus-{size}.db"
    shutil.rmtree(path, ignore_errors=True)
    index = open_milvus_index(str(path), "bench")
    client = index.client
    started = time.perf_counter()
    _create_collections(client, "bench", DIMENSIONS)
    offset, batch = 0, []
    for i, (chunk_text, vector) in enumerate(zip(texts, vectors)):
        batch.append({"id": f"c{i}", "doc_id": "d", "position": i, "start": offset, "end": offset + len(chunk_text),
                      "text": chunk_text, "vector": vector.tolist()})
        offset += len(chunk_text) + 1
        if len(batch) == 2000 or i == size - 1:
            client.insert(f"bench_{CHUNKS}", batch)
            batch = []
    parts = [text[i:i + 16_000] for i in range(0, len(text), 16_000)]
    for start in range(0, len(parts), 100):
        client.insert(f"bench_{TEXTS}", [{"id": f"d:{n}", "doc_id": "d", "text": p, "dummy": [0.0, 0.0]}
                                         for n, p in enumerate(parts[start:start + 100], start=start)])
    client.insert(f"bench_{DOCUMENTS}", [{"id": "generated", "doc_id": "d", "title": "generated", "dummy": [0.0, 0.0],
                                           "layout": json.dumps({"page_starts": [], "chunks": size,
                                                                 "text_parts": len(parts)})}])
    client.insert(f"bench_{META}", [{"id": "manifest", "dummy": [0.0, 0.0], "value": json.dumps(
        {"settings": {"embedding_model": "synthetic", "dimensions": DIMENSIONS, "chunk_tokens": 128,
                      "chunk_overlap_tokens": 32}, "version": 1})}])
    for collection in (CHUNKS, TEXTS, DOCUMENTS, META):
        client.flush(f"bench_{collection}")  # as an update does
    build_s = time.perf_counter() - started
    index.reload()
    dense_ms, found = _latencies(lambda q: [key for key, _ in index.dense_search(q, k)], query_vectors)
    recall = float(np.mean([len({int(f[1:]) for f in got} & set(t.tolist())) / k for got, t in zip(found, truth)]))
    question_texts = [t.split(".")[0] for t in generate_texts(queries, pool, (1, 1), seed=size + 1)]
    retriever = HybridRetriever.from_settings(index, _LookupEmbedder(query_vectors), settings)
    keyword_ms, _ = _latencies(lambda q: retriever.keyword_scores(q, settings.candidates), question_texts)
    hybrid_ms, _ = _latencies(lambda q: retriever.search(q, settings.top_k), question_texts)
    client.close()
    disk = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return {
        "chunks": size,
        "index": "Milvus Lite, FLAT (exact) + BM25",
        "build_s": build_s,
        "p50_ms": percentile(dense_ms, 50),
        "p95_ms": percentile(dense_ms, 95),
        "recall_at_10": recall,
        "bytes_per_chunk": disk / size,
        "bm25_p50_ms": percentile(keyword_ms, 50),
        "hybrid_p50_ms": percentile(hybrid_ms, 50),
        "hybrid_p95_ms": percentile(hybrid_ms, 95),
    }


def run_milvus(sizes: list[int], queries: int = 200, out: Path | None = None, settings: Settings | None = None,
               folder: Path | None = None) -> dict:
    """The Milvus store at each size (Milvus Lite: what a Milvus cluster measures differs; see the summary)."""
    import tempfile

    settings = settings or Settings()
    rng = np.random.default_rng(0)
    topics = rng.standard_normal((TOPICS, DIMENSIONS), dtype=np.float32)
    pool = sentence_pool(settings.docs_dir)
    rows = []
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        for size in sizes:
            print(f"retrieval, Milvus: {size:,} chunks ...", flush=True)
            rows.append(run_milvus_size(size, settings, queries, pool, rng, topics, Path(scratch)))
            gc.collect()
    summary = {
        "largest_chunks": rows[-1]["chunks"],
        "largest_hybrid_p50_ms": rows[-1]["hybrid_p50_ms"],
        "note": "Milvus Lite is a pure-Python engine inside this process; a Milvus server searches with compiled "
                "indexes elsewhere. The part that carries over is the client's round trips and our fusion, about "
                "three calls a question (dense, BM25, vectors of BM25-only hits).",
    }
    columns = ["chunks", "index", "build_s", "p50_ms", "p95_ms", "recall_at_10", "bytes_per_chunk", "bm25_p50_ms",
               "hybrid_p50_ms", "hybrid_p95_ms"]
    publish("retrieval-milvus", "Retrieval at scale in the Milvus store (Milvus Lite; same synthetic data)", rows,
            columns, summary, out, command="rag bench retrieval --store milvus")
    return {"rows": rows, "summary": summary}
