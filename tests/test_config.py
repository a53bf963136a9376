"""Settings: sensible defaults, every bad value rejected at construction with a message naming the setting."""

from pathlib import Path

import pytest

from rag.config import Settings, SettingsError


def test_defaults_are_valid_and_fit_the_embedder():
    settings = Settings()
    assert settings.chunk_tokens <= 256
    assert 0 <= settings.chunk_overlap_tokens < settings.chunk_tokens
    assert settings.quantization in ("none", "int8")


@pytest.mark.parametrize(
    "changes, name",
    [
        ({"top_k": 0}, "top_k"),
        ({"top_k": True}, "top_k"),
        ({"chunk_tokens": 300}, "chunk_tokens"),
        ({"chunk_overlap_tokens": 128, "chunk_tokens": 128}, "chunk_overlap_tokens"),
        ({"chunk_overlap_tokens": -1}, "chunk_overlap_tokens"),
        ({"candidates": 2, "top_k": 5}, "candidates"),
        ({"min_relevance": 2.0}, "min_relevance"),
        ({"min_citation_relevance": -1.5}, "min_citation_relevance"),
        ({"quantization": "int4"}, "quantization"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"embedding_backend": "openvino"}, "embedding_backend"),
        ({"exact_search_limit": 0}, "exact_search_limit"),
        ({"prompt_cache_mb": -1}, "prompt_cache_mb"),
        ({"prompt_cache_mb": 1.5}, "prompt_cache_mb"),
        ({"fusion": "max"}, "fusion"),
        ({"keyword_weight": 1.5}, "keyword_weight"),
    ],
)
def test_bad_values_are_rejected_with_the_setting_named(changes, name):
    with pytest.raises(SettingsError, match=name):
        Settings(**changes)


def test_paths_are_coerced_and_expanded():
    settings = Settings(docs_dir="~/docs", index_dir="idx")
    assert settings.docs_dir == Path.home() / "docs"
    assert settings.index_dir == Path("idx")


def test_with_changes_ignores_none_and_rejects_unknown_names():
    settings = Settings().with_changes(top_k=2, docs_dir=None)
    assert settings.top_k == 2 and settings.docs_dir == Path("documents")
    with pytest.raises(SettingsError, match="unknown setting"):
        Settings().with_changes(topk=2)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path))
    assert Settings().cache_dir == tmp_path


def test_checks_are_named_from_the_known_list_and_can_be_switched_off_one_by_one():
    from rag.config import KNOWN_CHECKS

    assert Settings().without_checks("count").checks == tuple(c for c in Settings().checks if c != "count")
    with pytest.raises(SettingsError, match="unknown check"):
        Settings().without_checks("spelling")
    with pytest.raises(SettingsError, match="distinct names"):
        Settings(checks=("supported", "supported"))
    with pytest.raises(SettingsError, match="distinct names"):
        Settings(checks=("supported", "grammar"))
    with pytest.raises(SettingsError, match="sequence of check names"):
        Settings(checks="supported")
    assert set(Settings().checks) <= set(KNOWN_CHECKS)


def test_checks_can_be_switched_on_after_the_enforced_ones_once_each():
    settings = Settings(checks=("supported",)).with_checks("confirmed", "supported", "confirmed")
    assert settings.checks == ("supported", "confirmed")
    with pytest.raises(SettingsError, match="unknown check"):
        Settings().with_checks("spelling")
    with pytest.raises(SettingsError, match="min_confirmation"):
        Settings(min_confirmation=1.5)


def test_every_known_check_is_one_the_verification_stage_runs():
    from rag.config import KNOWN_CHECKS
    from rag.verification.verifier import CHECKS

    assert set(CHECKS) | {"relevance"} == set(KNOWN_CHECKS)


def test_every_setting_belongs_to_a_stage_and_every_number_follows_a_rule():
    import dataclasses

    from rag.config import STAGES

    stages = Settings.by_stage()
    assert list(stages) == list(STAGES)
    assert sorted(n for names in stages.values() for n in names) == sorted(f.name for f in dataclasses.fields(Settings))
    for field in dataclasses.fields(Settings):
        if field.type in ("int", "float", "float | None"):
            assert field.metadata["rule"] is not None, f"{field.name} accepts any number"


@pytest.mark.parametrize("name, value", [("top_k", 0), ("ocr_dpi", 50), ("keyword_weight", 1.5),
                                         ("min_relevance", -2.0), ("generator_timeout_s", 0), ("fusion", "sum"),
                                         ("prompt_examples", -1), ("max_new_tokens", True)])
def test_a_value_that_breaks_its_settings_rule_is_refused_by_name(name, value):
    with pytest.raises(SettingsError, match=f"^{name} must"):
        Settings(**{name: value})


def test_each_check_reads_only_the_settings_it_declares():
    from rag.types import Chunk, Citation, Draft, GenerationSignals, Hit
    from rag.verification.answerability import AnswerabilityModel
    from rag.verification.verifier import CHECKS, CheckContext
    from tests.conftest import FakeEmbedder

    class Recording:  # the settings, noting each one read
        def __init__(self) -> None:
            self.read: set[str] = set()

        def __getattr__(self, name: str) -> object:
            self.read.add(name)
            return getattr(Settings(), name)

    text = "The ferry to the island started in 1998 and runs twice a day."
    chunk = Chunk("c1", "d1", "ferry.txt", "Ferry", 0, 0, len(text), text)
    draft = Draft("How many times a day does the ferry run?", "twice a day [1]",
                  [Citation(1, "ferry.txt", "Ferry", "c1", text, 0, len(text))], [Hit(chunk, 1.0, 0.6)],
                  GenerationSignals(refusal_prob=0.1, mean_logprob=-0.2, min_logprob=-0.9, tokens=3))
    model = AnswerabilityModel(("citation_cosine",), (0.0,), (1.0,), (1.0,), 0.0, 0.5)
    features = {"citation_cosine": 0.4, "confirmation_prob": 0.7}

    class Judged:  # a verifier is set, so the confirmed check reads its threshold
        def option_probabilities(self, messages, options):
            return [0.7, 0.3]

    for name, check in CHECKS.items():
        settings = Recording()
        check(draft, CheckContext(settings, features, FakeEmbedder().embed, model, Judged()))  # type: ignore[arg-type]
        assert settings.read <= set(check.reads), f"{name} reads {settings.read - set(check.reads)} undeclared"
