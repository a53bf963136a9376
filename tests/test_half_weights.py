"""Matrices kept in 16 bits multiply float32 inputs into float32 outputs, close to the float32 model's."""

import pytest
import torch

from rag.models.local import gguf
from rag.models.local.decoding import constrainable_head
from rag.models.local.half_weights import HalfWeightLinear, keep_matrices_in_half
from tests.conftest import tiny_causal_lm


@pytest.mark.parametrize("rows", [1, 2, 64])
@pytest.mark.parametrize("dtype, tolerance", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
def test_a_half_precision_weight_multiplies_float32_inputs_into_float32_outputs(rows, dtype, tolerance):
    linear = torch.nn.Linear(32, 48)
    half = torch.nn.Linear(32, 48)
    with torch.no_grad():
        half.weight.copy_(linear.weight)
        half.bias.copy_(linear.bias)
    half.weight.data = half.weight.data.to(dtype)
    half.__class__ = HalfWeightLinear
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
    gguf._store_matrices_in_half(model)
    model.save_pretrained(tmp_path)
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype="auto")
    assert loaded.model.layers[0].mlp.up_proj.weight.dtype == torch.float16  # half the bytes on disk and in memory
    keep_matrices_in_half(loaded, dtype)
    assert isinstance(loaded.model.layers[0].mlp.up_proj, HalfWeightLinear)
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
    assert constrainable_head(loaded) is not None  # quote mode still narrows the output layer


def test_gated_mlps_held_in_bfloat16_run_in_bfloat16_end_to_end_and_give_the_same_logits():
    from rag.models.local.half_weights import run_gated_mlps_in_bfloat16

    model = tiny_causal_lm()
    model.eval()
    ids = torch.tensor([[1, 5, 9, 3, 7, 2]])
    with torch.inference_mode():
        expected = model(ids).logits
    keep_matrices_in_half(model, torch.bfloat16)
    with torch.inference_mode():
        widened = model(ids).logits
    assert run_gated_mlps_in_bfloat16(model) == len(model.model.layers)  # each layer's MLP, nothing else
    seen = []
    model.model.layers[0].mlp.act_fn.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    with torch.inference_mode():
        inner = model(ids).logits
    assert seen == [torch.bfloat16]  # the activation ran in bfloat16, not float32
    assert inner.dtype == torch.float32 and torch.allclose(inner, expected, atol=2e-2)
    assert torch.allclose(inner, widened, atol=2e-2)


def test_gated_mlps_held_in_float16_are_left_as_they_are():
    from rag.models.local.half_weights import run_gated_mlps_in_bfloat16

    model = tiny_causal_lm()
    keep_matrices_in_half(model, torch.float16)
    assert run_gated_mlps_in_bfloat16(model) == 0
