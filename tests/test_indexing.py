"""Incremental indexing: only new or changed documents are embedded; deleted ones disappear; skips are reported."""

import pytest

from rag.config import Settings
from rag.ingest.indexing import build_or_update, update_index
from rag.ingest.loaders import load_folder
from rag.stores.faiss_store import IndexCorrupt, current_generation, load_index

SETTINGS = Settings(chunk_tokens=8, chunk_overlap_tokens=2)


def build(docs_dir, index_dir, embedder, **kwargs):
    return build_or_update(docs_dir, index_dir, embedder, SETTINGS, **kwargs)


def test_first_build_adds_everything(docs_dir, tmp_path, fake_embedder):
    index, report = build(docs_dir, tmp_path / "index", fake_embedder)
    assert sorted(report.added) == ["cities.md", "rivers.txt"]
    assert report.chunks_embedded == report.total_chunks == len(index.chunks) > 2


def test_rebuild_without_changes_embeds_nothing_and_writes_nothing(docs_dir, tmp_path, fake_embedder):
    build(docs_dir, tmp_path / "index", fake_embedder)
    generation = current_generation(tmp_path / "index")
    fake_embedder.calls.clear()
    _, report = build(docs_dir, tmp_path / "index", fake_embedder)
    assert fake_embedder.calls == [] and not report.changed
    assert sorted(report.unchanged) == ["cities.md", "rivers.txt"]
    assert current_generation(tmp_path / "index") == generation


def test_add_change_and_delete_embed_only_what_changed(docs_dir, tmp_path, fake_embedder):
    first, _ = build(docs_dir, tmp_path / "index", fake_embedder)
    rivers_chunks = [c for c in first.chunks if c.doc_name == "rivers.txt"]

    (docs_dir / "cities.md").write_text("# Cities\n\nBudapest lies on the Danube.", encoding="utf-8")
    (docs_dir / "lakes.txt").write_text("Lake Constance borders three countries.", encoding="utf-8")
    (docs_dir / "gone.txt").write_text("temporary", encoding="utf-8")
    build(docs_dir, tmp_path / "index", fake_embedder)
    (docs_dir / "gone.txt").unlink()
    fake_embedder.calls.clear()

    index, report = build(docs_dir, tmp_path / "index", fake_embedder)
    assert report.removed == ["gone.txt"] and report.added == [] and report.updated == []
    assert fake_embedder.calls == []

    loaded = load_index(tmp_path / "index")
    assert set(loaded.documents) == {"rivers.txt", "cities.md", "lakes.txt"}
    assert "Budapest" in " ".join(c.text for c in loaded.chunks if c.doc_name == "cities.md")
    assert [c for c in loaded.chunks if c.doc_name == "rivers.txt"] == rivers_chunks
    assert loaded.dense.ntotal == len(loaded.chunks)


def test_an_unchanged_folder_returns_the_loaded_index_without_rebuilding(docs_dir, tmp_path, fake_embedder):
    build(docs_dir, tmp_path / "index", fake_embedder)
    loaded = load_index(tmp_path / "index")
    index, report = update_index(load_folder(docs_dir).documents, fake_embedder, SETTINGS, loaded)
    assert index is loaded and report.total_chunks == len(loaded.chunks) and not report.changed


def test_a_new_html_title_alone_is_saved(docs_dir, tmp_path, fake_embedder):
    page = docs_dir / "page.html"
    page.write_text("<html><head><title>Old</title></head><body><p>Same body.</p></body></html>")
    build(docs_dir, tmp_path / "index", fake_embedder)
    page.write_text("<html><head><title>New</title></head><body><p>Same body.</p></body></html>")
    build(docs_dir, tmp_path / "index", fake_embedder)
    assert load_index(tmp_path / "index").documents["page.html"].title == "New"


def test_changed_file_is_reported_as_updated_and_reembedded(docs_dir, tmp_path, fake_embedder):
    build(docs_dir, tmp_path / "index", fake_embedder)
    (docs_dir / "rivers.txt").write_text("The Danube is long.", encoding="utf-8")
    fake_embedder.calls.clear()
    _, report = build(docs_dir, tmp_path / "index", fake_embedder)
    assert report.updated == ["rivers.txt"]
    assert fake_embedder.calls == [report.chunks_embedded] == [1]


def test_changed_chunking_settings_reembed_everything(docs_dir, tmp_path, fake_embedder):
    build(docs_dir, tmp_path / "index", fake_embedder)
    fake_embedder.calls.clear()
    index, _ = build_or_update(docs_dir, tmp_path / "index", fake_embedder, Settings(chunk_tokens=16,
                               chunk_overlap_tokens=0))
    assert sum(fake_embedder.calls) == len(index.chunks)
    assert load_index(tmp_path / "index").settings.chunk_tokens == 16


def test_skipped_files_are_reported_and_do_not_stop_the_build(docs_dir, tmp_path, fake_embedder):
    (docs_dir / "junk.txt").write_bytes(b"\x00\x01\x02" * 100)
    index, report = build(docs_dir, tmp_path / "index", fake_embedder)
    assert [(s.name, "binary" in s.reason) for s in report.skipped] == [("junk.txt", True)]
    assert "skipped: junk.txt" in report.summary()
    assert set(index.documents) == {"rivers.txt", "cities.md"}


def test_damaged_index_needs_rebuild_and_rebuild_recovers(docs_dir, tmp_path, fake_embedder):
    build(docs_dir, tmp_path / "index", fake_embedder)
    (current_generation(tmp_path / "index") / "chunks.jsonl").write_text("garbage")
    with pytest.raises(IndexCorrupt):
        build(docs_dir, tmp_path / "index", fake_embedder)
    index, report = build(docs_dir, tmp_path / "index", fake_embedder, rebuild=True)
    assert sorted(report.added) == ["cities.md", "rivers.txt"]
    assert load_index(tmp_path / "index").chunks == index.chunks


def test_two_files_with_the_same_text_index_once_and_the_index_stays_usable(docs_dir, tmp_path, fake_embedder):
    (docs_dir / "copy").mkdir()
    (docs_dir / "copy" / "rivers.txt").write_text((docs_dir / "rivers.txt").read_text())
    index, report = build(docs_dir, tmp_path / "index", fake_embedder)
    assert "copy/rivers.txt" in report.added and "copy/rivers.txt" in index.documents
    assert len({c.id for c in index.chunks}) == len(index.chunks)  # no two passages share an id
    assert sum("Swiss Alps" in c.text for c in index.chunks) == 1  # the text is one passage, not two
    reloaded = load_index(tmp_path / "index")  # what every later command does first
    assert reloaded.chunks == index.chunks
    (docs_dir / "lakes.txt").write_text("Lake Constance borders three countries.", encoding="utf-8")
    build(docs_dir, tmp_path / "index", fake_embedder)  # a later update
    build(docs_dir, tmp_path / "index", fake_embedder, rebuild=True)
    assert load_index(tmp_path / "index").documents.keys() == {"cities.md", "rivers.txt", "copy/rivers.txt",
                                                                "lakes.txt"}


def test_removing_the_first_of_two_copies_keeps_the_text_findable_under_the_other(docs_dir, tmp_path, fake_embedder):
    (docs_dir / "z.txt").write_text((docs_dir / "rivers.txt").read_text())
    build(docs_dir, tmp_path / "index", fake_embedder)
    (docs_dir / "rivers.txt").unlink()
    fake_embedder.calls.clear()
    index, _ = build(docs_dir, tmp_path / "index", fake_embedder)
    assert fake_embedder.calls == []  # its vectors are reused
    assert {c.doc_name for c in index.chunks if "Swiss Alps" in c.text} == {"z.txt"}


def test_an_inconsistent_index_is_never_published(docs_dir, tmp_path, fake_embedder):
    from rag.stores.faiss_store import KnowledgeIndex, save_index

    index, _ = build(docs_dir, tmp_path / "index", fake_embedder)
    live = current_generation(tmp_path / "index")
    doubled = KnowledgeIndex.build(index.settings, list(index.documents.values()), index.chunks + index.chunks[:1],
                                   fake_embedder.embed([c.text for c in index.chunks + index.chunks[:1]]),
                                   exact_search_limit=100)
    with pytest.raises(IndexCorrupt, match="share one id"):
        save_index(doubled, tmp_path / "index")
    assert current_generation(tmp_path / "index") == live and load_index(tmp_path / "index").chunks == index.chunks


def test_a_file_name_cannot_forge_a_line_of_the_index_report():
    from rag.ingest.indexing import BuildReport

    report = BuildReport(added=["notes.txt\n  removed: everything.txt", "cod\u202etxt.exe"])
    lines = report.summary().splitlines()
    assert len(lines) == 3 and not any(line.startswith("  removed") for line in lines)
    assert "\u202e" not in report.summary() and "\\u202e" in report.summary()
