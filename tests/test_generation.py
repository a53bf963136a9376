"""Generator resolution: folders used as they are, GGUF files converted once and cached, clear errors otherwise."""

import dataclasses

import pytest
import torch

from rag import generation
from rag.generation import GeneratorError, resolve_model_dir
from rag.prefix_cache import PrefixCacheStore


def test_a_model_folder_is_used_as_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model_dir(str(tmp_path), tmp_path / "cache") == tmp_path


@pytest.mark.parametrize("name, message", [("missing", "not found"), ("weights.bin", "neither")])
def test_missing_or_unknown_paths_are_rejected(tmp_path, name, message):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(GeneratorError, match=message):
        resolve_model_dir(str(tmp_path / name), tmp_path / "cache")


def test_a_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(GeneratorError, match="config.json"):
        resolve_model_dir(str(tmp_path), tmp_path / "cache")


def test_a_gguf_file_is_converted_once_then_reused(tmp_path, monkeypatch):
    conversions = []

    def fake_convert(gguf, target):
        conversions.append(gguf)
        target.mkdir()
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(generation, "_convert_gguf", fake_convert)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    first = resolve_model_dir(str(gguf), tmp_path / "cache")
    second = resolve_model_dir(str(gguf), tmp_path / "cache")
    assert first == second and first.parent == tmp_path / "cache" / "models"
    assert conversions == [gguf]


def test_a_new_conversion_removes_the_earlier_versions_of_the_same_file_only(tmp_path):
    models = tmp_path / "models"
    version = generation.CONVERSION_VERSION
    older = [models / "Model-abc", models / f"Model-abc-c{version - 1}"]
    kept = [models / "Model-abd-c1", models / "Other-abc", models / "Model-abc-copy"]
    for folder in older + kept:
        folder.mkdir(parents=True)
    target = models / f"Model-abc-c{version}"
    target.mkdir()
    generation._remove_older_conversions(target)
    assert sorted(models.iterdir()) == sorted([*kept, target])


def test_the_default_model_bytes_are_verified(tmp_path, monkeypatch):
    monkeypatch.setattr(generation, "DEFAULT_MODEL", dataclasses.replace(generation.DEFAULT_MODEL, sha256="0" * 64))
    with pytest.raises(GeneratorError, match="SHA-256"):
        generation.join_default_gguf(tmp_path / "joined.gguf")


class CharTokenizer:
    """One token per character (id = code point): enough to exercise text-level span matching."""

    def decode(self, ids, skip_special_tokens=True):
        return "".join(chr(int(i)) for i in ids if int(i) != END)

    def batch_decode(self, batches):
        return [self.decode(ids) for ids in batches]


END = 0


def allowed_after(constraint, reply: str) -> set[str]:
    prompt = [ord(c) for c in "PROMPT"]
    ids = torch.tensor(prompt + [ord(c) for c in reply])
    return {"<end>" if i == END else chr(i) for i in constraint(0, ids)}


def test_the_span_constraint_allows_only_continuations_of_a_source_or_the_refusal():
    vocabulary = [END] + [ord(c) for c in set("Rhine rises in the Alps. I don't know")]
    constraint = generation._SpanConstraint(
        CharTokenizer(), vocabulary, ("The Rhine rises in the Alps.",), "I don't know", [END], len("PROMPT")
    )
    assert allowed_after(constraint, "Rhi") == {"n", "<end>"}
    assert allowed_after(constraint, "in the A") == {"l", "<end>"}
    assert "R" not in allowed_after(constraint, "the ")  # case matters: "the Alps" is there, "the Rhine" is not
    assert "I" in allowed_after(constraint, "") and "<end>" not in allowed_after(constraint, "")
    assert allowed_after(constraint, "I don") == {"'", "<end>"}
    assert allowed_after(constraint, "Rhine sets") == {"<end>"}  # left the source: it can only stop


def test_the_constrainable_head_scores_only_allowed_tokens_and_exactly():
    linear = torch.nn.Linear(4, 10, bias=False)
    head = generation._ConstrainableHead(linear)
    hidden = torch.randn(1, 1, 4)
    assert torch.allclose(head(hidden), linear(hidden))
    head.allowed = torch.tensor([2, 7])
    logits = head(hidden)
    assert torch.allclose(logits[..., [2, 7]], linear(hidden)[..., [2, 7]])
    assert torch.isinf(logits[..., [0, 1, 3, 4, 5, 6, 8, 9]]).all()


class OneHeadModel(torch.nn.Module):
    def __init__(self, head: torch.nn.Module) -> None:
        super().__init__()
        self.head = head

    def get_output_embeddings(self):
        return self.head

    def set_output_embeddings(self, head):
        self.head = head


def test_only_a_plain_linear_output_layer_is_made_constrainable():
    plain = OneHeadModel(torch.nn.Linear(4, 10))
    assert generation._constrainable_head(plain) is plain.head
    quantized = OneHeadModel(torch.ao.nn.quantized.dynamic.Linear(4, 10))
    before = quantized.head
    assert generation._constrainable_head(quantized) is None and quantized.head is before


# ------------------------------------------------------------------------------- shared embeddings on conversion


def tiny_causal_lm():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    return Qwen2ForCausalLM(config)


def test_embeddings_stored_twice_at_two_precisions_are_shared():
    model = tiny_causal_lm()
    with torch.no_grad():
        output = model.get_output_embeddings().weight
        model.get_input_embeddings().weight.copy_(output + 0.01 * output.std() * torch.randn_like(output))
    assert generation._share_embeddings_if_copies(model)
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    assert model.config.tie_word_embeddings


def test_a_models_own_two_embedding_matrices_stay_apart():
    model = tiny_causal_lm()  # randomly initialised: two unrelated matrices
    before = model.get_input_embeddings().weight.clone()
    assert not generation._share_embeddings_if_copies(model)
    assert torch.equal(model.get_input_embeddings().weight, before)


# ----------------------------------------------------------------------------------- half-precision weights


@pytest.mark.parametrize("rows", [1, 2, 64])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
def test_a_half_precision_weight_multiplies_float32_inputs_into_float32_outputs(rows, dtype, tolerance):
    linear = torch.nn.Linear(32, 48)
    half = torch.nn.Linear(32, 48)
    with torch.no_grad():
        half.weight.copy_(linear.weight)
        half.bias.copy_(linear.bias)
    half.weight.data = half.weight.data.to(dtype)
    half.__class__ = generation._HalfWeightLinear
    x = torch.randn(1, rows, 32)
    result = half(x)
    assert result.dtype == torch.float32 and result.shape == (1, rows, 48)
    assert torch.allclose(result, linear(x), atol=tolerance)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_converted_model_is_stored_in_float16_and_loaded_with_its_matrices_in_half(tmp_path, dtype):
    model = tiny_causal_lm()
    model.eval()
    ids = torch.tensor([[1, 5, 9, 3, 7, 2]])
    with torch.inference_mode():
        expected = model(ids).logits
    generation._store_matrices_in_half(model)
    model.save_pretrained(tmp_path)
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype="auto")
    assert loaded.model.layers[0].mlp.up_proj.weight.dtype == torch.float16  # half the bytes on disk and in memory
    generation._keep_matrices_in_half(loaded, dtype)
    assert isinstance(loaded.model.layers[0].mlp.up_proj, generation._HalfWeightLinear)
    assert loaded.model.layers[0].mlp.up_proj.weight.dtype == dtype
    assert loaded.get_input_embeddings().weight.dtype == dtype
    assert loaded.model.norm.weight.dtype == torch.float32
    assert loaded.model.layers[0].self_attn.q_proj.bias.dtype == torch.float32
    with torch.inference_mode():
        prompt = loaded(ids).logits  # six rows: float32 products of widened float16 weights, or bfloat16 ones
        step = loaded(ids[:, :1]).logits  # one row: a product in the weights' precision
    assert prompt.dtype == step.dtype == torch.float32
    assert torch.allclose(prompt, expected, atol=1e-2)
    assert torch.allclose(step[0, 0], expected[0, 0], atol=1e-2)
    assert generation._constrainable_head(loaded) is not None  # quote mode still narrows the output layer


# ----------------------------------------------------------------------------------------------- prompt cache


def generator_around(model) -> generation.TransformersGenerator:
    """A TransformersGenerator holding ``model`` and nothing else: enough for its attention-cache bookkeeping."""
    generator = object.__new__(generation.TransformersGenerator)
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


def test_a_packaged_model_is_joined_from_its_parts_in_order_and_checked(tmp_path, monkeypatch):
    import hashlib
    import sys
    import types

    parts = []
    for i, data in enumerate([b"GGUF", b"-part-two"]):
        (tmp_path / f"p{i}.bin").write_bytes(data)
        module = types.ModuleType(f"fake_part{i}")
        module.get_part_path = lambda i=i: str(tmp_path / f"p{i}.bin")
        monkeypatch.setitem(sys.modules, f"fake_part{i}", module)
        parts.append(f"fake_part{i}")
    model = generation.PackagedModel("Fake", tuple(parts), hashlib.sha256(b"GGUF-part-two").hexdigest(), "fake")
    generation.join_packaged_gguf(model, tmp_path / "joined.gguf")
    assert (tmp_path / "joined.gguf").read_bytes() == b"GGUF-part-two"
    with pytest.raises(generation.GeneratorError, match="SHA-256"):
        generation.join_packaged_gguf(dataclasses.replace(model, sha256="0" * 64), tmp_path / "again.gguf")
    missing = dataclasses.replace(model, packages=("fake_part0", "no_such_part_package"))
    with pytest.raises(generation.GeneratorError, match=r"rag-assistant\[fake\]"):
        generation.join_packaged_gguf(missing, tmp_path / "missing.gguf")


def test_the_accurate_preset_names_the_packaged_larger_model_and_leaves_out_the_score_fitted_on_the_small_one():
    from rag.config import Settings

    accurate = Settings().with_preset("accurate")
    assert generation.PACKAGED_MODELS[accurate.generator_model] is generation.ACCURATE_MODEL
    assert "answerability" not in accurate.checks and "supported" in accurate.checks
    assert "answerability" in Settings().with_preset("cautious").checks
    assert Settings().with_preset("default") == Settings()
