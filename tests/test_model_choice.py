"""Which packaged model answers by default: the larger one where this processor runs it fast enough."""

from pathlib import Path

import pytest

from rag.models import model_choice
from rag.config import DEFAULT_CHECKS, MODEL_CHECKS, Settings
from rag.models.model_choice import (
    LARGE,
    LARGE_MODEL_BUDGET_S,
    REFERENCE_FAST_S,
    SMALL,
    Prediction,
    choose_packaged_model,
    with_packaged_model,
)
from rag.models.registry import ENGINE_SCORES, PACKAGED_SCORES


@pytest.fixture
def machine(monkeypatch):
    """A machine whose predicted answer times (the reference engine's and the int8 engine's) and free memory a
    test sets."""
    state = {"predicted_s": 2.0, "int8_s": None, "free_gb": 16.0}

    def predictions(cache_dir):
        made = [Prediction("transformers", "bfloat16", state["predicted_s"])]
        return made + ([Prediction("ctranslate2", "int8", state["int8_s"])] if state["int8_s"] else [])

    monkeypatch.setattr(model_choice, "predicted_large_answers", predictions)
    monkeypatch.setattr(model_choice, "available_memory_gb", lambda: state["free_gb"])
    return state


def test_a_processor_fast_enough_answers_with_the_larger_model(machine, tmp_path):
    choice = choose_packaged_model(tmp_path)
    assert choice.model == LARGE and "2.0 s" in choice.reason


def test_a_processor_predicted_over_budget_answers_with_the_smaller_model_and_says_why(machine, tmp_path):
    machine["predicted_s"] = LARGE_MODEL_BUDGET_S + 2.5
    choice = choose_packaged_model(tmp_path)
    assert choice.model == SMALL and f"over {LARGE_MODEL_BUDGET_S} s" in choice.reason


def test_the_larger_model_answers_on_the_int8_engine_where_that_alone_fits_the_budget(machine, tmp_path):
    machine["predicted_s"], machine["int8_s"] = LARGE_MODEL_BUDGET_S + 2.0, LARGE_MODEL_BUDGET_S - 0.5
    choice = choose_packaged_model(tmp_path)
    assert (choice.model, choice.engine, choice.precision) == (LARGE, "ctranslate2", "int8")
    assert "with the ctranslate2 engine (int8)" in choice.reason
    settings, _ = with_packaged_model(Settings(cache_dir=tmp_path))
    assert (settings.generator_model, settings.engine) == (LARGE, "ctranslate2")


def test_auto_keeps_the_reference_engine_where_it_is_fast_even_if_int8_is_predicted_faster(machine, tmp_path):
    machine["predicted_s"], machine["int8_s"] = REFERENCE_FAST_S - 0.5, REFERENCE_FAST_S - 2.0
    choice = choose_packaged_model(tmp_path)
    assert (choice.model, choice.engine) == (LARGE, "transformers")
    machine["predicted_s"], machine["int8_s"] = REFERENCE_FAST_S + 0.5, REFERENCE_FAST_S - 0.5
    assert choose_packaged_model(tmp_path).engine == "ctranslate2"  # within the budget, but slower than int8


def test_an_engine_the_user_names_is_the_one_predicted_and_used(machine, tmp_path):
    machine["predicted_s"], machine["int8_s"] = LARGE_MODEL_BUDGET_S + 2.0, LARGE_MODEL_BUDGET_S - 0.5
    reference = choose_packaged_model(tmp_path, "transformers")
    assert (reference.model, reference.engine) == (SMALL, "transformers")
    assert "with the transformers engine" in reference.reason
    settings, _ = with_packaged_model(Settings(cache_dir=tmp_path, engine="transformers"))
    assert settings.engine == "transformers"


def test_auto_runs_a_named_larger_model_on_its_fastest_engine_and_any_other_model_on_the_reference(machine, tmp_path):
    machine["predicted_s"], machine["int8_s"] = 6.0, 3.0
    larger, _ = with_packaged_model(Settings(cache_dir=tmp_path, generator_model=LARGE))
    assert larger.engine == "ctranslate2"
    smaller, _ = with_packaged_model(Settings(cache_dir=tmp_path, generator_model=SMALL))
    assert smaller.engine == "transformers"
    quoting, _ = with_packaged_model(Settings(cache_dir=tmp_path, generator_model=LARGE, answer_mode="quote"))
    assert quoting.engine == "transformers"  # quote mode's constrained decoding is the reference engine's alone


def test_too_little_free_memory_answers_with_the_smaller_model(machine, tmp_path):
    machine["free_gb"] = 3.0
    choice = choose_packaged_model(tmp_path)
    assert choice.model == SMALL and "3.0 GB" in choice.reason


def test_a_missing_package_of_the_larger_model_falls_back_to_the_smaller(machine, tmp_path, monkeypatch):
    real_find_spec = model_choice.importlib.util.find_spec
    monkeypatch.setattr(model_choice.importlib.util, "find_spec",
                        lambda name: None if name.endswith("part7") else real_find_spec(name))
    choice = choose_packaged_model(tmp_path)
    assert choice.model == SMALL and "not installed" in choice.reason


def test_settings_that_name_a_model_or_a_server_are_not_second_guessed(machine, tmp_path):
    named, choice = with_packaged_model(Settings(cache_dir=tmp_path, generator_model="qwen2.5-coder-0.5b"))
    assert choice is None and named.generator_model == "qwen2.5-coder-0.5b"
    served, choice = with_packaged_model(Settings(cache_dir=tmp_path, generator_url="http://127.0.0.1:8080/v1"))
    assert choice is None and served.generator_model is None


def test_the_answerability_score_follows_the_answering_model_unless_one_is_named(machine, tmp_path):
    chosen, _ = with_packaged_model(Settings(cache_dir=tmp_path))
    assert chosen.answerability_model == PACKAGED_SCORES[LARGE]
    own = tmp_path / "mine.json"
    kept, _ = with_packaged_model(Settings(cache_dir=tmp_path, answerability_model=own))
    assert kept.answerability_model == own
    fast, _ = with_packaged_model(Settings(cache_dir=tmp_path).with_preset("fast"))
    assert fast.answerability_model == PACKAGED_SCORES[SMALL]


def test_the_default_checks_and_score_follow_the_answering_model_and_engine_unless_named(machine, tmp_path):
    machine["predicted_s"], machine["int8_s"] = 8.0, 3.0  # no AMX: the larger model answers on the int8 engine
    chosen, _ = with_packaged_model(Settings(cache_dir=tmp_path))
    assert chosen.engine == "ctranslate2" and chosen.checks == MODEL_CHECKS[(LARGE, "ctranslate2")]
    assert "answerability" in chosen.checks and "pinned" not in chosen.checks
    assert chosen.answerability_model == ENGINE_SCORES[(LARGE, "ctranslate2")]
    reference, _ = with_packaged_model(Settings(cache_dir=tmp_path, generator_model=LARGE, engine="transformers"))
    assert reference.checks == DEFAULT_CHECKS and reference.answerability_model == PACKAGED_SCORES[LARGE]
    fast, _ = with_packaged_model(Settings(cache_dir=tmp_path).with_preset("fast"))
    assert fast.checks == DEFAULT_CHECKS
    cautious, _ = with_packaged_model(Settings(cache_dir=tmp_path).with_preset("cautious"))
    assert cautious.checks == (*DEFAULT_CHECKS, "answerability")  # named by the preset: kept
    named = ("relevance", "supported")
    kept, _ = with_packaged_model(Settings(cache_dir=tmp_path, checks=named))
    assert kept.checks == named


def test_every_packaged_score_is_shipped():
    for path in [*PACKAGED_SCORES.values(), *ENGINE_SCORES.values()]:
        assert Path(path).is_file(), path


def test_the_prediction_is_timed_once_per_processor_for_each_engine_and_remembered(tmp_path):
    first = model_choice.predicted_large_answers(tmp_path)
    assert {p.engine for p in first} == {"transformers", "ctranslate2"} and all(p.seconds > 0 for p in first)
    assert (tmp_path / "precision.json").is_file()
    assert model_choice.predicted_large_answers(tmp_path) == first  # read back, not timed again
