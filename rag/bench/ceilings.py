"""What this machine allows: measured rates of its matrix products and memory copies, and the arithmetic a
model's pass needs, so that a benchmark can print beside each figure the fastest it could be here.

A prompt's pass (prefill) and an embedder's pass are matrix products of hundreds of rows, bound by arithmetic; a
decoding step multiplies one row by every matrix, bound by reading the weights. The rates are measured on the
shapes the models use, with the threads the process has, best of several runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from rag.models.local.precision import int8_product_ms


def _best_seconds(work: Callable[[], object], repeats: int) -> float:
    work()  # first call: allocation and kernel selection
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def float32_gflops(rows: int, inner: int, columns: int, repeats: int = 10,
                   dtype: torch.dtype = torch.float32) -> float:
    """Billions of float32 operations per second multiplying a ``rows`` x ``inner`` matrix by ``inner`` x
    ``columns`` with PyTorch (a multiply and an add count as two); with ``dtype`` bfloat16, the same in bfloat16,
    which runs on the processor's bfloat16 units where it has them (AVX-512 BF16, AMX) and is emulated where not."""
    left, right = torch.randn(rows, inner, dtype=dtype), torch.randn(inner, columns, dtype=dtype)
    return 2 * rows * inner * columns / _best_seconds(lambda: left @ right, repeats) / 1e9


def bfloat16_gflops(rows: int, inner: int, columns: int, repeats: int = 10) -> float:
    """``float32_gflops`` of the same product in bfloat16."""
    return float32_gflops(rows, inner, columns, repeats, torch.bfloat16)


def int8_gops(rows: int, inner: int, columns: int, repeats: int = 10) -> float:
    """The same product's rate in 8-bit integers (unsigned activations by signed weights, 32-bit sums), with
    onnxruntime's ``MatMulInteger`` (``rag.models.local.precision.int8_product_ms``, which the model choice reads
    too); 0.0 where it cannot be timed."""
    timed = int8_product_ms(rows, inner, columns, repeats)
    return 0.0 if timed is None else 2 * rows * inner * columns / timed[0] / 1e6


def memory_bandwidth_gb_s(megabytes: int = 512, repeats: int = 5) -> float:
    """Best of ``repeats`` large array copies, in GB/s of bytes read plus written."""
    source = np.ones(megabytes * (1 << 20) // 8)
    target = np.empty_like(source)
    return 2 * source.nbytes / _best_seconds(lambda: np.copyto(target, source), repeats) / 1e9


def linear_weights(module: nn.Module) -> int:
    """How many weights the linear layers of ``module`` hold: each is one multiply-add per token passed. Layers
    are known by their shape attributes, so torch's int8-quantised ones (not ``nn.Linear``) count too."""
    return sum(
        layer.in_features * layer.out_features
        for layer in module.modules()
        if isinstance(getattr(layer, "in_features", None), int)
        and isinstance(getattr(layer, "out_features", None), int)
    )


def attention_flops_per_token(config, context: float) -> float:
    """Operations one token spends in attention over ``context`` earlier tokens: scores and the weighted sum,
    for every head of every layer."""
    heads = config.num_attention_heads
    head_size = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 2 * 2 * config.num_hidden_layers * heads * head_size * context


def transformer_flops(layers: nn.Module, config, tokens: int, earlier: int = 0, causal: bool = True) -> float:
    """Operations of one pass of ``tokens`` new tokens (after ``earlier`` already cached) through ``layers``: the
    linear layers' products and attention, nothing else (norms and activations are a few percent). A floor:
    what the pass costs at the least. A causal model's n-th new token attends to ``earlier`` + n tokens; an
    encoder's tokens (``causal=False``) attend to all of them."""
    context = earlier + (tokens + 1) / 2 if causal else earlier + tokens
    return tokens * (2 * linear_weights(layers) + attention_flops_per_token(config, context))
