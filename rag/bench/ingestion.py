"""Ingestion: how fast a folder becomes an index, the project's embedder (``Settings.embedding_backend``) against
plain ``SentenceTransformer.encode`` in PyTorch on the same chunks, and what each does to retrieval quality."""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer

from rag.assistant import Assistant
from rag.bench.ceilings import float32_gflops, int8_gops, transformer_flops
from rag.bench.corpus import sentence_pool, write_corpus
from rag.bench.report import publish
from rag.config import Settings
from rag.evaluation.scoring import load_gold, run_evaluation
from rag.ingest.chunking import chunk_document
from rag.ingest.loaders import load_folder
from rag.models.embedding import Embedder, default_embedding_model_path, load_embedder
from rag.stores.base import IndexSettings
from rag.stores.faiss_store import KnowledgeIndex


class _PlainEmbedder:
    """``SentenceTransformer.encode`` with its defaults, as most projects call it."""

    def __init__(self, model_path: Path) -> None:
        self.model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
        self.name = "plain SentenceTransformer.encode (PyTorch)"
        self.dimensions = int(self.model.get_embedding_dimension())

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=True)

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def pass_tokens(self, texts: list[str]) -> list[int]:
        """How many tokens the model reads for each text: special tokens included, cut at its limit."""
        encoded = self.model.tokenizer(texts, truncation=True, max_length=self.model.max_seq_length)
        return [len(ids) for ids in encoded["input_ids"]]


def _arithmetic_ceiling(plain: _PlainEmbedder, texts: list[str], seconds: dict[str, float]) -> dict[str, float]:
    """The embedding's arithmetic (``rag.bench.ceilings.transformer_flops`` of each text's pass) against this
    machine's measured float32 and int8 product rates, on the model's larger matrix with the rows a batch of
    each path holds: the rate each path reached, and the most any int8 path could gain over the plain one."""
    encoder = plain.model[0].auto_model
    config = encoder.config
    tokens = plain.pass_tokens(texts)
    # Once per distinct length, not per chunk: each count walks the encoder's modules.
    flops = sum(count * transformer_flops(encoder.encoder, config, n, causal=False)
                for n, count in Counter(tokens).items())
    mean = max(1, round(sum(tokens) / len(tokens)))
    float32 = float32_gflops(32 * mean, config.hidden_size, config.intermediate_size)  # encode's batches of 32
    int8 = int8_gops(2 * mean, config.hidden_size, config.intermediate_size)  # the project's batches of 2
    plain_rate = flops / seconds["plain"] / 1e9
    return {
        "tokens_per_chunk_mean": sum(tokens) / len(tokens),
        "embedding_gflop": flops / 1e9,
        "plain_reached_gflops": plain_rate,
        "project_reached_gops": flops / seconds["project"] / 1e9,
        "float32_matmul_gflops": float32,
        "int8_matmul_gops": int8,
        "int8_speedup_ceiling": int8 / plain_rate,
    }


def _dev_retrieval(embedder: Embedder, settings: Settings, gold_path: Path) -> dict[str, float]:
    """Retrieval metrics of ``embedder`` on the default corpus and its gold questions."""
    with tempfile.TemporaryDirectory() as scratch:
        assistant = Assistant.from_folder(settings.docs_dir, Path(scratch) / "index", settings, embedder=embedder)
        metrics, _ = run_evaluation(assistant, load_gold(gold_path), retrieval_only=True, progress=False)
    return {"recall_at_5": metrics["recall_at_5"], "mrr": metrics["mrr"]}


def run(documents: int = 5000, out: Path | None = None, settings: Settings | None = None,
        gold_path: Path = Path("eval/gold/dev.jsonl")) -> dict:
    settings = settings or Settings()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "docs"
        started = time.perf_counter()
        write_corpus(folder, documents, sentence_pool(settings.docs_dir))
        print(f"ingestion: wrote {documents:,} documents in {time.perf_counter() - started:.1f} s", flush=True)

        started = time.perf_counter()
        project = load_embedder(settings)
        project_load_s = time.perf_counter() - started
        started = time.perf_counter()
        plain = _PlainEmbedder(Path(settings.embedding_model or default_embedding_model_path()))
        plain_load_s = time.perf_counter() - started

        started = time.perf_counter()
        loaded = load_folder(folder, settings.max_file_mb)
        chunks = [
            chunk
            for document in loaded.documents
            for chunk in chunk_document(
                document, settings.chunk_tokens, settings.chunk_overlap_tokens, project.count_tokens
            )
        ]
        load_chunk_s = time.perf_counter() - started
        texts = [c.text for c in chunks]
        print(f"ingestion: {len(chunks):,} chunks in {load_chunk_s:.1f} s; embedding ...", flush=True)

        timings, vectors = {}, {}
        for label, embedder in (("project", project), ("plain", plain)):
            started = time.perf_counter()
            vectors[label] = embedder.embed(texts)
            timings[label] = time.perf_counter() - started
            print(f"ingestion: {label} embedded in {timings[label]:.1f} s", flush=True)

        started = time.perf_counter()
        KnowledgeIndex.build(
            IndexSettings(project.name, project.dimensions, settings.chunk_tokens, settings.chunk_overlap_tokens),
            loaded.documents, chunks, vectors["project"], exact_search_limit=settings.exact_search_limit,
        )
        index_s = time.perf_counter() - started

    cosine = np.sum(vectors["project"] * vectors["plain"], axis=1)
    rows = []
    for label, embedder, load_s in (("project", project, project_load_s), ("plain", plain, plain_load_s)):
        total = load_chunk_s + timings[label] + index_s
        rows.append({
            "path": f"{label}: {embedder.name}",
            "model_load_s": load_s,
            "embed_s": timings[label],
            "chunks_per_s": len(chunks) / timings[label],
            "load_chunk_index_s": load_chunk_s + index_s,
            "docs_per_s_end_to_end": documents / total,
            **_dev_retrieval(embedder, settings, gold_path),
        })
    summary = {
        "documents": documents,
        "chunks": len(chunks),
        "embedding_speedup": timings["plain"] / timings["project"],
        "end_to_end_speedup": (load_chunk_s + timings["plain"] + index_s)
        / (load_chunk_s + timings["project"] + index_s),
        "recall_at_5_change": rows[0]["recall_at_5"] - rows[1]["recall_at_5"],
        "cosine_to_plain_min": float(cosine.min()),
        "cosine_to_plain_mean": float(cosine.mean()),
        **_arithmetic_ceiling(plain, texts, timings),
        "goal": ">= 3x faster than plain encode at equal recall@5",
    }
    columns = ["path", "model_load_s", "embed_s", "chunks_per_s", "load_chunk_index_s", "docs_per_s_end_to_end",
               "recall_at_5", "mrr"]
    publish("ingestion", f"Ingestion of {documents:,} generated documents ({len(chunks):,} chunks)", rows, columns,
            summary, out)
    return {"rows": rows, "summary": summary}
