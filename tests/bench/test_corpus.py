"""The generated benchmark corpus: varied, reproducible documents built from text already on the machine."""

from rag.bench.corpus import generate_texts, sentence_pool, write_corpus
from rag.ingest.loaders import load_folder
from tests.conftest import DOCUMENTS


def test_the_pool_draws_on_the_seed_articles_and_python_docstrings():
    pool = sentence_pool(DOCUMENTS)
    assert len(pool) > 1000 and len(set(pool)) == len(pool)
    assert any("NATO" in s for s in pool) and any("Return" in s for s in pool)
    assert all(6 <= len(s.split()) <= 60 for s in pool)


def test_documents_are_reproducible_and_differ_from_each_other():
    pool = sentence_pool(DOCUMENTS)
    first = list(generate_texts(200, pool, (3, 12), seed=7))
    assert first == list(generate_texts(200, pool, (3, 12), seed=7))
    assert first != list(generate_texts(200, pool, (3, 12), seed=8))
    assert len(set(first)) == 200


def test_the_written_corpus_loads_like_any_folder(tmp_path):
    paths = write_corpus(tmp_path / "docs", 30, sentence_pool(DOCUMENTS))
    loaded = load_folder(tmp_path / "docs")
    assert len(paths) == len(loaded.documents) == 30 and not loaded.skipped
