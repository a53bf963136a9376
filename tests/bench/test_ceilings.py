"""The machine's ceilings: the arithmetic a transformer pass needs is counted from its linear layers and its
attention, and the product rates it is divided by are measured, not assumed."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from rag.bench.ceilings import (
    attention_flops_per_token,
    bfloat16_gflops,
    float32_gflops,
    int8_gops,
    linear_weights,
    memory_bandwidth_gb_s,
    transformer_flops,
)
from rag.models.local.half_weights import HalfWeightLinear

CONFIG = SimpleNamespace(num_hidden_layers=2, num_attention_heads=2, hidden_size=8)


def layers() -> nn.Module:
    return nn.ModuleList([nn.Embedding(100, 8), nn.Linear(8, 16), nn.Linear(16, 8, bias=False)])


def test_every_linear_weight_counts_once_and_embeddings_not_at_all():
    assert linear_weights(layers()) == 8 * 16 + 16 * 8
    assert linear_weights(nn.Sequential(HalfWeightLinear(3, 5))) == 15  # the generator's half-precision layers


def test_int8_quantised_linear_layers_count_too():
    quantised = torch.ao.quantization.quantize_dynamic(layers(), {nn.Linear}, dtype=torch.qint8)  # --quantization int8
    assert not any(type(layer) is nn.Linear for layer in quantised.modules())
    assert linear_weights(quantised) == 8 * 16 + 16 * 8


def test_attention_costs_scores_and_weighted_sums_for_every_head_and_layer():
    # head size 4: a score and a weighted-sum term of 4 multiply-adds each, per earlier token, head and layer
    assert attention_flops_per_token(CONFIG, context=10) == 2 * 2 * 2 * 2 * 4 * 10
    assert attention_flops_per_token(SimpleNamespace(**vars(CONFIG), head_dim=6), context=1) == 2 * 2 * 2 * 2 * 6


def test_a_causal_pass_attends_on_average_to_half_its_new_tokens_after_the_cached_ones():
    linear = 2 * (8 * 16 + 16 * 8)
    assert transformer_flops(layers(), CONFIG, tokens=3) == 3 * (linear + attention_flops_per_token(CONFIG, 2))
    cached = transformer_flops(layers(), CONFIG, tokens=3, earlier=10)
    assert cached == 3 * (linear + attention_flops_per_token(CONFIG, 12))


def test_an_encoder_pass_attends_to_every_token():
    linear = 2 * (8 * 16 + 16 * 8)
    encoder = transformer_flops(layers(), CONFIG, tokens=3, causal=False)
    assert encoder == 3 * (linear + attention_flops_per_token(CONFIG, 3))
    assert encoder > transformer_flops(layers(), CONFIG, tokens=3)


@pytest.mark.parametrize("rate", [float32_gflops, bfloat16_gflops, int8_gops])
def test_product_rates_run_their_kernel_and_come_out_as_a_finite_rate(rate):
    # Only that the measurement runs (the int8 one builds an onnxruntime graph): rates are figures, never asserted.
    measured = rate(16, 32, 64, repeats=2)
    assert math.isfinite(measured) and measured > 0


def test_memory_bandwidth_runs_a_copy_and_comes_out_as_a_finite_rate():
    measured = memory_bandwidth_gb_s(megabytes=8, repeats=2)
    assert math.isfinite(measured) and measured > 0
