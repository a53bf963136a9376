"""Asking within chosen documents: a scope of names, folders, globs and modification dates, applied before ranking
in both stores, so the passages are the best of the scope rather than what of the overall best survives a filter."""

import datetime as dt
import os

import pytest

from rag import Assistant, Scope
from rag.answering.retrieval import HybridRetriever
from rag.config import Settings
from rag.ingest.indexing import open_and_update, update_index
from rag.ingest.loaders import load_folder
from rag.types import QuestionError
from tests.conftest import FakeGenerator

SMALL_CHUNKS = {"chunk_tokens": 8, "chunk_overlap_tokens": 0, "ocr": False}


@pytest.fixture
def folder(tmp_path):
    """Ten notes that all mention the harbour ferry, and one, in a folder of its own, that barely does."""
    docs = tmp_path / "docs"
    (docs / "archive").mkdir(parents=True)
    for n in range(10):
        (docs / f"note-{n}.txt").write_text(f"The harbour ferry sails at {n} o'clock from the harbour ferry pier.")
    (docs / "archive" / "old.md").write_text("In 1990 a ferry crossed to Lenn once a week.")
    return docs


def test_a_scope_admits_names_folders_globs_and_dates():
    scope = Scope(("archive", "*.xlsx", "notes/a.txt"), "2024-01-01", "2024-06-30")
    spring = dt.datetime(2024, 3, 1)
    assert scope.admits("archive/2023/minutes.md", spring) and scope.admits("sales.xlsx", spring)
    assert scope.admits("notes/a.txt", spring) and not scope.admits("notes/b.txt", spring)
    assert not scope.admits("archived.md", spring)  # a folder's name is not a prefix of other names
    assert not scope.admits("sales.xlsx", dt.datetime(2024, 7, 1)) and not scope.admits("sales.xlsx", None)
    assert scope.admits("sales.xlsx", dt.datetime(2024, 6, 30, 23, 59))  # "until" a date includes that day
    assert Scope().everything and not Scope(modified_after="2024-01-01").everything


@pytest.mark.parametrize(("after", "before", "message"), [
    ("2024-05-01", "2024-01-01", "wrong way round"),
    ("last spring", None, "is not a date"),
])
def test_a_scope_with_impossible_dates_is_refused_saying_why(after, before, message):
    with pytest.raises(QuestionError, match=message):
        Scope(modified_after=after, modified_before=before)


def test_the_passages_are_the_best_of_the_scope_not_the_survivors_of_a_filtered_top(folder, fake_embedder):
    index, _ = update_index(load_folder(folder).documents, fake_embedder, Settings(**SMALL_CHUNKS), None)
    retriever = HybridRetriever(index, fake_embedder, candidates=3)
    unscoped = retriever.search("When does the harbour ferry sail?", 3)
    assert all(h.chunk.doc_name.startswith("note-") for h in unscoped)  # the old note is not among the best
    within = frozenset({index.documents["archive/old.md"].id})
    scoped = retriever.search("When does the harbour ferry sail?", 3, within)
    assert scoped and {h.chunk.doc_name for h in scoped} == {"archive/old.md"}
    assert retriever.keyword_scores("ferry", 10, within)  # BM25 ranks within the scope too
    assert all(index.chunk(row).doc_name == "archive/old.md" for row in retriever.keyword_scores("ferry", 10, within))


def test_an_inverted_file_index_searches_a_scope_exactly(folder, fake_embedder):
    settings = Settings(**SMALL_CHUNKS, exact_search_limit=4)  # more chunks than this: an inverted file
    index, _ = update_index(load_folder(folder).documents, fake_embedder, settings, None)
    assert not type(index.dense).__name__.startswith("IndexFlat")
    within = frozenset({index.documents["note-7.txt"].id})
    hits = HybridRetriever(index, fake_embedder, candidates=5).search("ferry pier", 5, within)
    assert hits and {h.chunk.doc_name for h in hits} == {"note-7.txt"}


def test_asking_within_a_scope_answers_from_it_and_a_scope_matching_nothing_is_refused(folder, tmp_path,
                                                                                      fake_embedder):
    generator = FakeGenerator(["once a week [1]"])
    assistant = Assistant.from_folder(folder, tmp_path / "index", Settings(**SMALL_CHUNKS), generator=generator,
                                      embedder=fake_embedder)
    answer = assistant.ask("How often did a ferry cross?", scope=Scope("archive/"))
    assert {h.chunk.doc_name for h in answer.hits} == {"archive/old.md"}
    with pytest.raises(QuestionError, match=r"no document is in the scope asked for \(documents matching 'reports/\*'\)"):
        assistant.ask("How often did a ferry cross?", scope=Scope("reports/*"))


def test_a_date_range_reads_each_files_modification_time(folder, tmp_path, fake_embedder):
    old = dt.datetime(2020, 5, 1).timestamp()
    os.utime(folder / "archive" / "old.md", (old, old))
    assistant = Assistant.from_folder(folder, tmp_path / "index", Settings(**SMALL_CHUNKS),
                                      generator=FakeGenerator(["x"]), embedder=fake_embedder)
    hits = assistant.retrieve("ferry", 5, scope=Scope(modified_before="2020-12-31"))
    assert {h.chunk.doc_name for h in hits} == {"archive/old.md"}
    recent = assistant.retrieve("ferry", 5, scope=Scope(modified_after="2021-01-01"))
    assert recent and "archive/old.md" not in {h.chunk.doc_name for h in recent}


def test_milvus_filters_a_scope_before_ranking_as_faiss_does(folder, tmp_path, fake_embedder):
    pytest.importorskip("milvus_lite")
    settings = Settings(docs_dir=folder, index_dir=tmp_path / "milvus", store="milvus", **SMALL_CHUNKS)
    index, _ = open_and_update(settings, fake_embedder)
    try:
        faiss_index, _ = update_index(load_folder(folder).documents, fake_embedder, Settings(**SMALL_CHUNKS), None)
        within = frozenset({index.documents["archive/old.md"].id})
        for store in (index, faiss_index):
            hits = HybridRetriever(store, fake_embedder, candidates=3).search("When does the harbour ferry sail?", 3,
                                                                               within)
            assert hits and {h.chunk.doc_name for h in hits} == {"archive/old.md"}, type(store).__name__
        assert index.chunk_total(within) == faiss_index.chunk_total(within)
    finally:
        index.client.close()
