"""The answering benchmarks' set-up: a cache folder with the converted files and no kept prompt starts, and an
untimed earlier question about another document."""

import pytest

from rag.bench.answering import _cache_without_prompt_starts, questions_about_other_documents
from rag.config import Settings
from rag.evaluation.scoring import Evidence, GoldItem


def item(question: str, *docs: str) -> GoldItem:
    return GoldItem(question, question, ["x"] if docs else [], bool(docs), [Evidence(d, "q") for d in docs])


def test_the_earlier_questions_are_those_about_other_documents_only_in_order():
    gold = [item("a?", "one.txt"), item("b?", "one.txt", "two.txt"), item("c?"), item("d?", "two.txt"),
            item("e?", "three.txt")]
    assert questions_about_other_documents(gold) == ["d?", "e?"]
    assert questions_about_other_documents(gold[:3]) == []


def test_the_benchmark_cache_links_the_converted_files_and_keeps_no_prompt_starts(tmp_path):
    user_cache = tmp_path / "user"
    for folder in ("models", "embeddings", "prompt-caches"):
        (user_cache / folder).mkdir(parents=True)
        (user_cache / folder / "file").write_text(folder)
    cache = _cache_without_prompt_starts(Settings(cache_dir=user_cache), tmp_path)
    assert (cache / "models" / "file").read_text() == "models" and (cache / "models").is_symlink()
    assert (cache / "embeddings" / "file").read_text() == "embeddings"
    assert not (cache / "prompt-caches").exists()


def test_the_plain_way_joins_the_packaged_model_the_settings_answer_with_and_refuses_any_other(tmp_path):
    from rag.bench.answering import join_answering_gguf
    from rag.config import Settings, SettingsError

    with pytest.raises(SettingsError, match="packaged model"):
        join_answering_gguf(Settings(generator_model=str(tmp_path / "mine.gguf")), tmp_path / "model.gguf")
    joined = join_answering_gguf(Settings(generator_model="qwen2.5-coder-0.5b"), tmp_path / "model.gguf")
    assert joined.read_bytes()[:4] == b"GGUF"
