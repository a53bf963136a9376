"""The local generator: a model folder missing weights is refused, and the attention-cache reuse: a prompt starts
from the longest start it shares with the last prompt or with a saved one, and computes only the rest."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from rag.models.base import GeneratorError
from rag.models.local.prefix_cache import PrefixCacheStore
from rag.models.local.transformers_generator import TransformersGenerator, _load_complete
from tests.conftest import tiny_causal_lm


def generator_around(model) -> TransformersGenerator:
    """A TransformersGenerator holding ``model`` and nothing else: enough for its attention-cache bookkeeping."""
    generator = object.__new__(TransformersGenerator)
    generator.model = model
    generator._prompt_cache = None
    generator._prefixes = None
    generator.reused_prompt_tokens = 0
    return generator


def last_logits(model, ids: list[int], cache) -> torch.Tensor:
    """The next-token scores after ``ids``, computing only the ids ``cache`` does not hold yet (and extending it)."""
    with torch.inference_mode():
        rest = torch.tensor([ids[cache.get_seq_length():]])
        return model(rest, past_key_values=cache, use_cache=True).logits[0, -1]


def test_a_prompt_reuses_the_attention_cache_of_the_start_it_shares_with_the_last_one():
    model = tiny_causal_lm().eval()
    generator = generator_around(model)
    earlier, prompt = [1, 5, 9, 3, 7, 2, 11], [1, 5, 9, 3, 8, 4]
    cache = generator._reusable_cache(earlier)
    assert generator.reused_prompt_tokens == 0 and cache.get_seq_length() == 0  # nothing to reuse yet
    last_logits(model, earlier + [6, 6], cache)  # the prompt, then its reply, as generation leaves the cache
    generator._prompt_cache = (earlier, cache)

    reused = generator._reusable_cache(prompt)
    assert generator.reused_prompt_tokens == 4 and reused.get_seq_length() == 4
    fresh = generator._reusable_cache(prompt)  # the cache was taken by the first call: nothing is left to reuse
    assert generator.reused_prompt_tokens == 0 and fresh.get_seq_length() == 0
    assert torch.allclose(last_logits(model, prompt, reused), last_logits(model, prompt, fresh), atol=1e-5)


def test_the_same_prompt_again_recomputes_only_its_last_token():
    model = tiny_causal_lm().eval()
    generator = generator_around(model)
    prompt = [1, 5, 9, 3]
    cache = generator._reusable_cache(prompt)
    last_logits(model, prompt, cache)
    generator._prompt_cache = (prompt, cache)
    assert generator._reusable_cache(prompt).get_seq_length() == 3  # the last one is scored for the first reply token
    assert generator.reused_prompt_tokens == 3


def test_a_prompt_with_a_different_first_token_starts_from_an_empty_cache():
    model = tiny_causal_lm().eval()
    generator = generator_around(model)
    cache = generator._reusable_cache([1, 2, 3])
    last_logits(model, [1, 2, 3], cache)
    generator._prompt_cache = ([1, 2, 3], cache)
    assert generator._reusable_cache([4, 2, 3]).get_seq_length() == 0
    assert generator.reused_prompt_tokens == 0


def test_a_fresh_generators_first_prompt_starts_from_its_system_messages_saved_cache(tmp_path):
    model = tiny_causal_lm().eval()
    system, prompt = [1, 5, 9], [1, 5, 9, 3, 8, 4]
    earlier = generator_around(model)
    earlier._prefixes = PrefixCacheStore(tmp_path, "tiny")
    cache = earlier._reusable_cache(system + [7, 7], [system])
    last_logits(model, system + [7, 7, 2], cache)  # the earlier process's prompt and reply
    earlier._prefixes.save(system, cache)

    fresh = generator_around(model)  # a new process: nothing in memory
    fresh._prefixes = PrefixCacheStore(tmp_path, "tiny")
    reused = fresh._reusable_cache(prompt, [system])
    assert fresh.reused_prompt_tokens == len(system) and reused.get_seq_length() == len(system)
    computed = generator_around(model)._reusable_cache(prompt)  # nothing kept: computes everything
    assert torch.allclose(last_logits(model, prompt, reused), last_logits(model, prompt, computed), atol=1e-5)


def test_the_longest_start_wins_whether_saved_or_in_memory(tmp_path):
    model = tiny_causal_lm().eval()
    system, passage_start = [1, 5], [1, 5, 9, 3]
    store = PrefixCacheStore(tmp_path, "tiny")
    store.save(passage_start, last_logits_cache(model, passage_start + [6]))
    generator = generator_around(model)
    generator._prefixes = store
    generator._prompt_cache = ([1, 5, 2, 2], last_logits_cache(model, [1, 5, 2, 2]))  # shares only the system part
    assert generator._reusable_cache(passage_start + [8], [passage_start, system]).get_seq_length() == 4
    generator._prompt_cache = ([1, 5, 9, 3, 8, 8], last_logits_cache(model, [1, 5, 9, 3, 8, 8]))  # shares more
    assert generator._reusable_cache([1, 5, 9, 3, 8, 4], [passage_start, system]).get_seq_length() == 5


def last_logits_cache(model, ids: list[int]):
    """The attention cache of ``ids`` computed from scratch."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    last_logits(model, ids, cache)
    return cache


def test_a_model_folder_missing_a_weight_is_refused_by_name_rather_than_run_with_random_values(tmp_path):
    tiny_causal_lm().save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["lm_head.weight"]  # the output layer: transformers would start it from random values
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(GeneratorError, match=r"lacks weights .*lm_head\.weight.*Delete that folder"):
        TransformersGenerator(tmp_path)


def test_a_complete_folder_loads_with_every_weight_from_its_files(tmp_path):
    model = tiny_causal_lm()
    model.save_pretrained(tmp_path)
    loaded = _load_complete(tmp_path, torch.float32, {})
    assert not loaded.training
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_generation_stops_at_the_next_token_once_its_reader_has_gone():
    import threading

    from rag.models.local.decoding import StopWhenSet

    model = tiny_causal_lm().eval()
    left = threading.Event()
    prompt = torch.tensor([[1, 5, 9, 3]])
    with torch.inference_mode():
        whole = model.generate(prompt, max_new_tokens=20, do_sample=False, stopping_criteria=[StopWhenSet(left)],
                               pad_token_id=0)
        left.set()
        cut = model.generate(prompt, max_new_tokens=20, do_sample=False, stopping_criteria=[StopWhenSet(left)],
                             pad_token_id=0)
    assert whole.shape[1] == 4 + 20 and cut.shape[1] == 4 + 1
