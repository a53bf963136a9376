"""The on-disk index: atomic generations, checksums, consistency checks, one writer at a time, no pickle."""

import json
import multiprocessing
import os

import pytest

from rag.config import Settings
from rag.ingest.indexing import update_index
from rag.ingest.loaders import load_folder
from rag.stores.faiss_store import (
    CURRENT_FILE,
    IndexCorrupt,
    IndexLocked,
    IndexNotFound,
    current_generation,
    load_index,
    save_index,
    write_lock,
)


@pytest.fixture
def built(docs_dir, fake_embedder, tmp_path):
    index, _ = update_index(load_folder(docs_dir).documents, fake_embedder, Settings(chunk_tokens=8,
                            chunk_overlap_tokens=2), None)
    index_dir = tmp_path / "index"
    save_index(index, index_dir)
    return index, index_dir


def test_saved_index_loads_identically(built):
    index, index_dir = built
    loaded = load_index(index_dir)
    assert loaded.chunks == index.chunks
    assert loaded.documents == index.documents
    assert loaded.settings == index.settings
    assert (loaded.vectors() == index.vectors()).all()
    manifest = json.loads((current_generation(index_dir) / "manifest.json").read_text())
    assert manifest["embedding_model"] == "fake-embedder" and manifest["chunk_tokens"] == 8
    assert {d["name"] for d in manifest["documents"]} == {"rivers.txt", "cities.md"}


def test_the_row_covering_a_span_is_the_first_chunk_of_that_document_holding_all_of_it(built):
    index, _ = built
    document = index.documents["rivers.txt"]
    start = document.text.index("Swiss Alps")
    row = index.row_covering("rivers.txt", start, start + len("Swiss Alps"))
    chunk = index.chunks[row]
    assert chunk.doc_name == "rivers.txt" and chunk.text[start - chunk.start :].startswith("Swiss Alps")
    earlier = index.chunks[:row]
    assert not any(c.doc_name == "rivers.txt" and c.start <= start and start + 10 <= c.end for c in earlier)
    assert index.row_covering("rivers.txt", 0, len(document.text) + 1) is None  # past the end: no chunk holds it
    assert index.row_covering("missing.txt", 0, 1) is None


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexNotFound, match="rag index"):
        load_index(tmp_path / "nothing")


def test_every_damaged_file_is_caught_by_checksum(built):
    _, index_dir = built
    generation = current_generation(index_dir)
    for path in sorted(p for p in generation.rglob("*") if p.is_file() and p.name != "manifest.json"):
        original = path.read_bytes()
        for damaged in (original[: len(original) // 2], bytes([original[0] ^ 0xFF]) + original[1:]):
            path.write_bytes(damaged)
            with pytest.raises(IndexCorrupt, match="rebuild"):
                load_index(index_dir)
        path.write_bytes(original)
    load_index(index_dir)


def test_inconsistent_counts_are_caught_even_with_matching_checksums(built):
    _, index_dir = built
    manifest_path = current_generation(index_dir) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["counts"]["chunks"] += 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt, match="inconsistent"):
        load_index(index_dir)


def test_a_crash_before_the_pointer_moves_leaves_the_old_index_live(built, monkeypatch):
    index, index_dir = built
    before = current_generation(index_dir)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_index(index, index_dir)
    monkeypatch.undo()
    assert current_generation(index_dir) == before
    assert load_index(index_dir).chunks == index.chunks


def test_a_new_generation_replaces_the_pointer_and_only_the_previous_one_is_kept(built):
    index, index_dir = built
    first = current_generation(index_dir)
    second = save_index(index, index_dir)
    assert current_generation(index_dir) == second != first
    assert first.exists()  # a reader that read CURRENT just before the swap can still load it
    third = save_index(index, index_dir)
    assert not first.exists() and second.exists()
    assert (index_dir / CURRENT_FILE).read_text().strip() == third.name


def _hold_lock(index_dir, ready, release):
    with write_lock(index_dir):
        ready.set()
        release.wait(10)


def test_a_second_writer_is_refused_with_a_clear_message(tmp_path):
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(tmp_path, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(IndexLocked, match="another process"):
            with write_lock(tmp_path, timeout_s=0.3):
                pass
    finally:
        release.set()
        holder.join()
    with write_lock(tmp_path, timeout_s=1):
        pass


def test_taking_the_lock_clears_what_a_dead_writer_left_unfinished(built):
    _, index_dir = built
    unfinished = index_dir / ".tmp-gen-20260101T000000-abcdef"
    (unfinished / "keyword").mkdir(parents=True)
    (unfinished / "chunks.jsonl").write_text("{partial")
    with write_lock(index_dir):
        assert not unfinished.exists()
    assert load_index(index_dir).chunks


def test_taking_the_lock_clears_generations_a_killed_writer_finished_or_left_behind(built, monkeypatch):
    index, index_dir = built
    previous = save_index(index, index_dir)
    live = save_index(index, index_dir)
    older = index_dir / "gen-20200101T000000-abcdef"  # one a writer killed before its clean-up should have removed
    older.mkdir()
    os.utime(older, ns=(0, 0))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(os, "replace", crash)  # killed after writing a whole generation, before moving CURRENT
    with pytest.raises(KeyboardInterrupt):
        save_index(index, index_dir)
    monkeypatch.undo()
    never_live = set(index_dir.glob("gen-*")) - {previous, live, older}
    assert len(never_live) == 1
    with write_lock(index_dir):
        # The live generation and the one before it (a reader may still be loading it) stay; the rest goes.
        assert set(index_dir.glob("gen-*")) == {previous, live}
    assert current_generation(index_dir) == live and load_index(index_dir).chunks == index.chunks


def test_no_index_file_is_a_pickle(built):
    _, index_dir = built
    for path in current_generation(index_dir).rglob("*"):
        if path.is_file():
            assert not path.read_bytes().startswith(b"\x80"), f"{path} looks like a pickle"
            if path.suffix == ".npy":
                assert b"'descr': '|O'" not in path.read_bytes()[:200]  # object arrays need pickle


# ------------------------------------------------------------------------------------- index type by size


def unit_vectors(count: int, dimensions: int = 32, seed: int = 0):
    import numpy as np

    vectors = np.random.default_rng(seed).standard_normal((count, dimensions)).astype("float32")
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_up_to_the_limit_search_is_exact():
    import faiss

    from rag.stores.faiss_store import dense_index

    index = dense_index(unit_vectors(500), exact_search_limit=500)
    assert isinstance(index, faiss.IndexFlatIP)


def test_above_the_limit_an_inverted_file_finds_each_vector_itself():
    import faiss

    from rag.stores.faiss_store import IVF_NPROBE, dense_index

    vectors = unit_vectors(4000)
    index = dense_index(vectors, exact_search_limit=1000)
    ivf = faiss.extract_index_ivf(index)
    assert ivf.nlist > 1 and ivf.nprobe == min(IVF_NPROBE, ivf.nlist)
    found = index.search(vectors[:50], 1)[1][:, 0]
    assert (found == range(50)).all()
    assert abs(float(index.reconstruct(7) @ vectors[7]) - 1.0) < 1e-2  # stored vectors can be read back by id


def test_a_large_index_round_trips_through_disk_with_search_depth_restored(docs_dir, fake_embedder, tmp_path):
    import faiss

    from rag.stores.faiss_store import IVF_NPROBE

    settings = Settings(chunk_tokens=4, chunk_overlap_tokens=0, exact_search_limit=1)
    index, _ = update_index(load_folder(docs_dir).documents, fake_embedder, settings, None)
    assert not isinstance(index.dense, faiss.IndexFlat)
    save_index(index, tmp_path / "index")
    loaded = load_index(tmp_path / "index")
    assert faiss.extract_index_ivf(loaded.dense).nprobe == min(IVF_NPROBE, faiss.extract_index_ivf(loaded.dense).nlist)
    assert loaded.vectors().shape == index.vectors().shape


def test_each_document_reports_how_many_chunks_it_was_split_into(built):
    index, _ = built
    counts = {name: index.chunk_count(name) for name in index.documents}
    assert all(n >= 1 for n in counts.values()) and sum(counts.values()) == len(index.chunks)
    assert counts["rivers.txt"] > counts["cities.md"]  # the longer text, in chunks of 8 tokens
    assert index.chunk_count("missing.txt") == 0
