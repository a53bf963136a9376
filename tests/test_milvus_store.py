"""The Milvus store, run as Milvus Lite in the test's folder: the same documents, searches and updates as the
FAISS store, kept in a database instead of files; each document is wholly old or wholly new whatever happens."""

import pytest

from rag.answering.retrieval import HybridRetriever
from rag.config import Settings
from rag.ingest.indexing import open_and_update
from rag.stores.faiss_store import IndexStoreError

pytest.importorskip("milvus_lite")


def settings_for(docs_dir, tmp_path, **changes) -> Settings:
    return Settings(docs_dir=docs_dir, index_dir=tmp_path / "index", store="milvus", chunk_tokens=8,
                    chunk_overlap_tokens=0, ocr=False, **changes)


@pytest.fixture
def milvus(docs_dir, tmp_path, fake_embedder):
    settings = settings_for(docs_dir, tmp_path)
    index, report = open_and_update(settings, fake_embedder)
    yield settings, index, report
    index.client.close()


def test_a_folder_is_indexed_and_searched_like_the_faiss_store(milvus, docs_dir, tmp_path, fake_embedder):
    settings, index, report = milvus
    assert sorted(report.added) == ["cities.md", "rivers.txt"] and report.chunks_embedded == index.chunk_total()
    assert (tmp_path / "index" / "milvus.db").exists()
    assert index.documents["cities.md"].title == "Cities"
    faiss_index, _ = open_and_update(Settings(docs_dir=docs_dir, index_dir=tmp_path / "faiss", chunk_tokens=8,
                                              chunk_overlap_tokens=0, ocr=False), fake_embedder)
    assert index.chunk_total() == len(faiss_index.chunks)
    for question in ["Where does the Rhine rise?", "How long is the Danube?"]:  # questions without tied cosines
        milvus_hits = HybridRetriever(index, fake_embedder).search(question, 3)
        faiss_hits = HybridRetriever(faiss_index, fake_embedder).search(question, 3)
        assert [h.chunk for h in milvus_hits] == [h.chunk for h in faiss_hits]
        assert [round(h.dense_score, 4) for h in milvus_hits] == [round(h.dense_score, 4) for h in faiss_hits]


def test_only_changed_content_is_embedded_and_removed_documents_leave(milvus, docs_dir, fake_embedder):
    settings, index, _ = milvus
    (docs_dir / "rivers.txt").write_text("The Elbe flows into the North Sea.", encoding="utf-8")
    (docs_dir / "cities.md").rename(docs_dir / "towns.md")
    (docs_dir / "lakes.txt").write_text("Lake Constance lies on the Rhine.", encoding="utf-8")
    fake_embedder.calls.clear()
    _, report = open_and_update(settings, fake_embedder, index=index)
    assert report.updated == ["rivers.txt"] and sorted(report.added) == ["lakes.txt", "towns.md"]
    assert report.removed == ["cities.md"]
    assert sum(fake_embedder.calls) == report.chunks_embedded == 2  # the renamed file's chunks were kept
    assert sorted(index.documents) == ["lakes.txt", "rivers.txt", "towns.md"]
    hits = HybridRetriever(index, fake_embedder).search("Which sea does the Elbe flow into?", 5)
    assert {h.chunk.doc_name for h in hits} <= {"lakes.txt", "rivers.txt", "towns.md"}
    assert "Elbe" in hits[0].chunk.text and not any("Danube flows" in h.chunk.text for h in hits)
    again = open_and_update(settings, fake_embedder, index=index)[1]
    assert not again.changed and again.chunks_embedded == 0


def test_a_writer_that_dies_before_pointing_documents_at_new_content_changes_nothing_readers_see(
    milvus, docs_dir, fake_embedder, monkeypatch
):
    settings, index, _ = milvus
    before = {name: doc.text for name, doc in index.documents.items()}
    (docs_dir / "rivers.txt").write_text("The Oder flows north. " * 20, encoding="utf-8")

    def dies(*args, **kwargs):
        raise SystemExit("killed")

    monkeypatch.setattr(index.client, "upsert", _after_chunks(index.client.upsert, dies))
    with pytest.raises(SystemExit):
        open_and_update(settings, fake_embedder, index=index)
    monkeypatch.undo()
    index.reload()
    assert {name: doc.text for name, doc in index.documents.items()} == before
    hits = HybridRetriever(index, fake_embedder).search("Which way does the Oder flow?", 5)
    assert hits and not any("Oder" in h.chunk.text for h in hits)  # its chunks exist, but nothing shows them
    open_and_update(settings, fake_embedder, index=index)
    assert "Oder" in index.documents["rivers.txt"].text


def _after_chunks(upsert, dies):
    """``upsert`` that writes chunks, then dies on the next write (the document's text)."""
    def wrapped(collection, rows, **kwargs):
        if not collection.endswith("_chunks"):
            dies()
        return upsert(collection, rows, **kwargs)
    return wrapped


def test_an_index_built_with_another_embedder_is_rebuilt(milvus, tmp_path, docs_dir, fake_embedder):
    settings, index, _ = milvus
    _, report = open_and_update(settings.with_changes(chunk_tokens=16), fake_embedder, index=index)
    assert sorted(report.added) == ["cities.md", "rivers.txt"] and index.settings.chunk_tokens == 16


def test_an_unreachable_server_is_named(docs_dir, tmp_path, fake_embedder):
    settings = settings_for(docs_dir, tmp_path, milvus_uri="http://127.0.0.1:9")
    with pytest.raises(IndexStoreError, match="cannot reach Milvus at http://127.0.0.1:9"):
        open_and_update(settings, fake_embedder)


def test_an_update_with_nothing_to_do_writes_nothing_unless_a_writer_left_work_unfinished(
    milvus, docs_dir, fake_embedder, monkeypatch
):
    settings, index, _ = milvus
    calls = []
    monkeypatch.setattr(index.client, "upsert", lambda *args, **kwargs: calls.append(("upsert", args[0])))
    monkeypatch.setattr(index.client, "query_iterator", lambda *args, **kwargs: calls.append(("scan", args[0])))
    open_and_update(settings, fake_embedder, index=index)
    assert calls == []  # no manifest write, and no scan of every chunk for leftovers
    monkeypatch.undo()
    (docs_dir / "rivers.txt").write_text("The Oder flows north. " * 20, encoding="utf-8")
    monkeypatch.setattr(index.client, "upsert", _after_chunks(index.client.upsert, _dies))
    with pytest.raises(SystemExit):
        open_and_update(settings, fake_embedder, index=index)
    monkeypatch.undo()
    (docs_dir / "rivers.txt").unlink()  # the writer's content is no longer wanted at all
    (docs_dir / "cities.md").unlink()
    open_and_update(settings, fake_embedder, index=index)
    from rag.stores.milvus_store import _query_all

    assert _query_all(index.client, "rag_chunks", ["doc_id"]) == []  # the killed writer's chunks were removed


def _dies(*args, **kwargs):
    raise SystemExit("killed")
