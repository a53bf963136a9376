"""The on-disk store of prompt starts' attention caches: what it saves loads back as the same cache, and anything
that does not fit the model or the tokens is ignored, never trusted."""

import logging
import os

import torch
from transformers import DynamicCache, Qwen2Config, Qwen2ForCausalLM

from rag.models.local.prefix_cache import PrefixCacheStore, model_key

PREFIX = [1, 5, 9, 3]


def tiny_model(layers: int = 2) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=1)
    return Qwen2ForCausalLM(config).eval()


def computed_cache(model, ids: list[int]) -> DynamicCache:
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(torch.tensor([ids]), past_key_values=cache, use_cache=True)
    return cache


def next_logits(model, prompt: list[int], cache: DynamicCache) -> torch.Tensor:
    with torch.inference_mode():
        rest = torch.tensor([prompt[cache.get_seq_length():]])
        return model(rest, past_key_values=cache, use_cache=True).logits[0, -1]


def test_a_saved_prefix_loads_back_as_a_cache_that_scores_the_rest_of_the_prompt_alike(tmp_path):
    model = tiny_model()
    store = PrefixCacheStore(tmp_path, "tiny")
    store.save(PREFIX, computed_cache(model, PREFIX + [7, 2, 11]))  # a whole prompt's cache: only the prefix is kept
    loaded = PrefixCacheStore(tmp_path, "tiny").load(PREFIX, model.config)  # as a new process would
    assert loaded is not None and loaded.get_seq_length() == len(PREFIX)
    prompt = PREFIX + [8, 4]
    assert torch.allclose(next_logits(model, prompt, loaded), next_logits(model, prompt, DynamicCache()), atol=1e-5)


def test_nothing_saved_for_these_tokens_or_this_model_loads_nothing(tmp_path):
    model = tiny_model()
    PrefixCacheStore(tmp_path, "tiny").save(PREFIX, computed_cache(model, PREFIX))
    assert PrefixCacheStore(tmp_path, "tiny").load([1, 5, 9], model.config) is None
    assert PrefixCacheStore(tmp_path, "other-model").load(PREFIX, model.config) is None


def test_a_file_that_does_not_fit_is_ignored(tmp_path):
    store = PrefixCacheStore(tmp_path, "tiny")
    store.save(PREFIX, computed_cache(tiny_model(layers=2), PREFIX))
    assert store.load(PREFIX, tiny_model(layers=3).config) is None  # another shape of model under the same name
    other_heads = tiny_model(layers=2).config
    other_heads.num_key_value_heads = 2
    assert store.load(PREFIX, other_heads) is None


def test_a_damaged_file_is_ignored_with_a_warning(tmp_path, caplog):
    model = tiny_model()
    store = PrefixCacheStore(tmp_path, "tiny")
    store.save(PREFIX, computed_cache(model, PREFIX))
    [path] = tmp_path.iterdir()
    path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level(logging.WARNING):
        assert PrefixCacheStore(tmp_path, "tiny").load(PREFIX, model.config) is None
    assert "unreadable prompt cache" in caplog.text


def test_a_prefix_is_written_once_and_never_left_half_written(tmp_path):
    model = tiny_model()
    store = PrefixCacheStore(tmp_path, "tiny")
    store.save(PREFIX, computed_cache(model, PREFIX))
    [path] = list(tmp_path.iterdir())
    before = path.stat().st_mtime_ns
    PrefixCacheStore(tmp_path, "tiny").save(PREFIX, computed_cache(model, PREFIX + [2]))
    assert path.stat().st_mtime_ns == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no scratch files left beside it


def test_a_cache_shorter_than_the_prefix_is_not_saved(tmp_path):
    PrefixCacheStore(tmp_path, "tiny").save(PREFIX, computed_cache(tiny_model(), PREFIX[:2]))
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_written_costs_the_saving_not_the_answer(tmp_path, caplog):
    occupied = tmp_path / "not-a-folder"
    occupied.write_text("a file where the folder should be")
    with caplog.at_level(logging.WARNING):
        PrefixCacheStore(occupied, "tiny").save(PREFIX, computed_cache(tiny_model(), PREFIX))
    assert "could not keep the prompt cache" in caplog.text


def test_the_model_key_changes_with_the_weights_and_the_precision(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 10)
    key = model_key(tmp_path, None, "none")
    assert model_key(tmp_path, None, "none") == key
    assert model_key(tmp_path, None, "int8") != key
    weights.write_bytes(b"b" * 11)
    assert model_key(tmp_path, None, "none") != key


def test_the_budget_drops_the_least_recently_used_prefixes_first(tmp_path):
    model = tiny_model()
    store = PrefixCacheStore(tmp_path, "tiny")
    first, second, third = [1, 5, 9, 3], [2, 5, 9, 3], [3, 5, 9, 3]
    store.save(first, computed_cache(model, first))
    store.budget_bytes = int(2.5 * store._path(first).stat().st_size)  # room for two files of this size
    store.save(second, computed_cache(model, second))
    os.utime(store._path(first), ns=(1, 1))  # long unused ...
    os.utime(store._path(second), ns=(2, 2))
    assert store.load(first, model.config) is not None  # ... until now
    store.save(third, computed_cache(model, third))
    assert [store.load(ids, model.config) is not None for ids in (first, second, third)] == [True, False, True]


def test_a_prefix_larger_than_the_whole_budget_is_not_kept(tmp_path):
    store = PrefixCacheStore(tmp_path, "tiny", budget_bytes=100)
    store.save(PREFIX, computed_cache(tiny_model(), PREFIX))
    assert list(tmp_path.iterdir()) == []
