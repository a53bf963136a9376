"""The matrix precision is chosen by timing the model's largest matrix on this processor, once per processor."""

import json

import pytest
import torch

from rag.models.local import precision
from rag.models.local.precision import PrecisionChoice, choose, largest_matrix, measure


def test_the_largest_matrix_is_found_and_the_output_layer_can_be_left_out():
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 64), torch.nn.Linear(64, 1000))
    assert largest_matrix(model) is model[2].weight
    assert largest_matrix(model, skip=model[2]) is model[1].weight


def test_a_model_without_linear_layers_has_nothing_to_time():
    with pytest.raises(ValueError, match="no linear layers"):
        largest_matrix(torch.nn.Sequential(torch.nn.ReLU()))


def test_measuring_times_both_ways_for_a_prompt_and_a_decoding_step_and_records_the_processor():
    choice = measure(torch.randn(96, 64), repeats=1)
    assert choice.precision in ("float32", "bfloat16")  # int8 is timed for the int8 engine, not chosen here
    assert set(choice.prompt_ms) == set(choice.decode_ms) == {"float32", "bfloat16", "int8"}
    assert all(ms > 0 for ms in (*choice.prompt_ms.values(), *choice.decode_ms.values()))
    assert choice.matrix == (96, 64) and choice.threads == torch.get_num_threads()
    assert set(choice.cpu_flags) <= set(precision.RELEVANT_FLAGS)


def fixed_timings(monkeypatch, prompt: dict, decode: dict) -> None:
    """Make ``measure`` see these timings (ms) instead of timing anything, in the order it asks for them."""
    answers = iter([prompt["float32"], prompt["bfloat16"], decode["float32"], decode["bfloat16"]])
    monkeypatch.setattr(precision, "_median_ms", lambda run, repeats: next(answers))


def test_bfloat16_is_taken_where_a_whole_answer_is_clearly_faster_in_it(monkeypatch):
    # A prompt 3x faster outweighs decoding steps a little slower.
    fixed_timings(monkeypatch, {"float32": 90.0, "bfloat16": 30.0}, {"float32": 1.0, "bfloat16": 1.2})
    assert measure(torch.randn(8, 8)).precision == "bfloat16"


def test_float32_stays_where_bfloat16_is_emulated_or_only_marginally_faster(monkeypatch):
    fixed_timings(monkeypatch, {"float32": 30.0, "bfloat16": 300.0}, {"float32": 1.0, "bfloat16": 4.0})
    assert measure(torch.randn(8, 8)).precision == "float32"
    fixed_timings(monkeypatch, {"float32": 30.0, "bfloat16": 28.0}, {"float32": 1.0, "bfloat16": 1.0})
    assert measure(torch.randn(8, 8)).precision == "float32"


def test_the_choice_is_remembered_per_processor_and_matrix_shape(tmp_path, monkeypatch):
    cache = tmp_path / "precision.json"
    first = choose(torch.randn(32, 16), cache)
    monkeypatch.setattr(precision, "measure", lambda weight: pytest.fail("measured again"))
    again = choose(torch.randn(32, 16), cache)
    assert again == first and isinstance(again, PrecisionChoice)
    monkeypatch.undo()
    choose(torch.randn(16, 32), cache)  # another shape is timed on its own
    assert len(json.loads(cache.read_text())) == 2


def test_a_damaged_cache_is_measured_again_and_rewritten(tmp_path):
    cache = tmp_path / "precision.json"
    cache.write_text("{not json")
    choice = choose(torch.randn(32, 16), cache)
    assert list(json.loads(cache.read_text()).values())[0]["precision"] == choice.precision
