"""Which packaged model answers by default: the larger one where this processor runs it fast enough."""

from pathlib import Path

import pytest

from rag.models import model_choice
from rag.config import Settings
from rag.models.model_choice import LARGE, LARGE_MODEL_BUDGET_S, SMALL, choose_packaged_model, with_packaged_model
from rag.models.registry import PACKAGED_SCORES


@pytest.fixture
def machine(monkeypatch):
    """A machine whose predicted answer time and free memory a test sets."""
    state = {"predicted_s": 2.0, "free_gb": 16.0}
    monkeypatch.setattr(model_choice, "predicted_large_answer_s", lambda cache_dir: state["predicted_s"])
    monkeypatch.setattr(model_choice, "available_memory_gb", lambda: state["free_gb"])
    return state


def test_a_processor_fast_enough_answers_with_the_larger_model(machine, tmp_path):
    choice = choose_packaged_model(tmp_path)
    assert choice.model == LARGE and "2.0 s" in choice.reason


def test_a_processor_predicted_over_budget_answers_with_the_smaller_model_and_says_why(machine, tmp_path):
    machine["predicted_s"] = LARGE_MODEL_BUDGET_S + 2.5
    choice = choose_packaged_model(tmp_path)
    assert choice.model == SMALL and f"over {LARGE_MODEL_BUDGET_S} s" in choice.reason


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


def test_every_packaged_score_is_shipped():
    for path in PACKAGED_SCORES.values():
        assert Path(path).is_file(), path


def test_the_prediction_is_timed_once_per_processor_and_remembered(tmp_path):
    first = model_choice.predicted_large_answer_s(tmp_path)
    assert first > 0 and (tmp_path / "precision.json").is_file()
    assert model_choice.predicted_large_answer_s(tmp_path) == first  # read back, not timed again
