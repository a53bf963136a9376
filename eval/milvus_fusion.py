"""Which fusion over the Milvus store ranks the dev questions' passages as the FAISS store does: ours (reciprocal
rank fusion over Milvus's dense and BM25 lists, as `--store milvus` runs it) or Milvus's own `hybrid_search` with
its `RRFRanker`. Run: `HF_HUB_OFFLINE=1 .venv/bin/python eval/milvus_fusion.py` (eval log row 58)."""

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pymilvus import AnnSearchRequest, RRFRanker  # noqa: E402

from rag.answering.retrieval import HybridRetriever  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.ingest.indexing import open_and_update  # noqa: E402
from rag.models.embedding import load_embedder  # noqa: E402


def main() -> None:
    gold = [json.loads(line) for line in (REPO / "eval" / "gold" / "dev.jsonl").read_text().splitlines() if line]
    settings = Settings(docs_dir=REPO / "documents")
    embedder = load_embedder(settings)
    with tempfile.TemporaryDirectory() as scratch:
        faiss_index, _ = open_and_update(settings.with_changes(index_dir=Path(scratch) / "faiss"), embedder)
        milvus, _ = open_and_update(settings.with_changes(index_dir=Path(scratch) / "milvus", store="milvus"),
                                    embedder)
        k, depth = settings.top_k, settings.candidates
        ours_same = theirs_same = 0
        for item in gold:
            question = item["question"]
            reference = [h.chunk.id for h in HybridRetriever.from_settings(faiss_index, embedder, settings)
                         .search(question, k)]
            ours = [h.chunk.id for h in HybridRetriever.from_settings(milvus, embedder, settings).search(question, k)]
            vector = embedder.embed([question])[0].tolist()
            requests = [
                AnnSearchRequest(data=[vector], anns_field="vector", param={"metric_type": "IP"}, limit=depth),
                AnnSearchRequest(data=[question], anns_field="sparse", param={"metric_type": "BM25"}, limit=depth),
            ]
            found = milvus.client.hybrid_search(f"{milvus.prefix}_chunks", requests, RRFRanker(settings.rrf_k),
                                                limit=k, output_fields=["doc_id"])
            theirs = [hit["id"] for hit in found[0]]
            ours_same += ours == reference
            theirs_same += theirs == reference
        milvus.client.close()
    print(f"the FAISS store's top-{k} passages, in order, on {len(gold)} dev questions: our fusion over Milvus "
          f"{ours_same}, Milvus hybrid_search with RRFRanker {theirs_same}")


if __name__ == "__main__":
    main()
