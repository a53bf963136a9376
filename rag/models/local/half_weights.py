"""Layers that keep a model's matrices in 16 bits (float16 or bfloat16) while the rest of it runs in float32; how
they multiply is chosen by timing (``rag.models.local.precision``)."""

from __future__ import annotations

import torch
from torch import nn

HALF_DTYPES = (torch.float16, torch.bfloat16)
# Matrices stored in float16 (`rag.models.local.precision`'s "float32" way): up to this many rows (tokens) a product runs in
# float16, since decoding multiplies one token's vector by each matrix, which is bound by reading the matrix.
# Longer inputs (a prompt) are compute-bound, and float32 is what a CPU without 16-bit arithmetic units multiplies
# fastest, so the weights are widened per call. Measured on the 896x4864 matrices of the default model, two
# Zen 3 cores: one row 0.36 ms in float16 against 2.1 ms widened; float16 is overtaken near 12 rows; 550 rows take
# 190 ms in float16 against 31 ms widened. Matrices stored in bfloat16 (the "bfloat16" way, chosen where that is
# measured faster) multiply in bfloat16 at any length.
_HALF_PRECISION_ROWS = 4


def mixed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight.T + bias`` in ``x``'s dtype, whatever precision ``weight`` is stored in."""
    if weight.dtype == x.dtype:
        return nn.functional.linear(x, weight, bias)
    if weight.dtype == torch.bfloat16 or x.shape[:-1].numel() <= _HALF_PRECISION_ROWS:
        y = nn.functional.linear(x.to(weight.dtype), weight).to(x.dtype)
    else:
        y = nn.functional.linear(x, weight.to(x.dtype))
    return y if bias is None else y + bias


class HalfWeightLinear(nn.Linear):
    """A linear layer whose weight stays in half precision while its input and output are float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mixed_linear(x, self.weight, self.bias)


class HalfWeightEmbedding(nn.Embedding):
    """An embedding table kept in half precision whose looked-up rows come out as float32."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(ids).float()


def keep_matrices_in_half(model: nn.Module, dtype: torch.dtype) -> None:
    """Hold a half-precision model's matrices in ``dtype`` (float16 or bfloat16) and run everything else in
    float32: the matrices' layers become ``HalfWeightLinear`` / ``HalfWeightEmbedding``, and the small rest
    (norms, biases, buffers) is widened."""
    with torch.no_grad():
        for module in model.modules():
            if type(module) is nn.Linear:
                module.__class__ = HalfWeightLinear
            elif type(module) is nn.Embedding:
                module.__class__ = HalfWeightEmbedding
            for name, param in module.named_parameters(recurse=False):
                if name == "weight" and isinstance(module, (nn.Linear, nn.Embedding)):
                    if param.dtype != dtype:
                        param.data = param.data.to(dtype)  # a tied matrix is one Parameter: cast once
                else:
                    param.data = param.data.float()
            for name, buffer in module.named_buffers(recurse=False):
                if buffer.dtype in HALF_DTYPES:
                    setattr(module, name, buffer.float())


def run_gated_mlps_in_bfloat16(model: nn.Module) -> int:
    """Run each gated MLP block (``down_proj(act_fn(gate_proj(x)) * up_proj(x))``, as Qwen2 and Llama have) whose
    matrices are held in bfloat16 end to end in bfloat16: its input is cast once, and the activation and the product
    of its two branches stay in bfloat16 instead of going to float32 and back around every matrix. Measured on the
    1.5B model, two Xeon cores with AMX: a 500-token prompt in 1.22 s instead of 1.61 s, the same next token
    (eval/log.md, row 61). Returns how many blocks were changed."""
    changed = 0
    for module in model.modules():
        projections = [getattr(module, name, None) for name in ("gate_proj", "up_proj", "down_proj")]
        if callable(getattr(module, "act_fn", None)) and all(
            isinstance(p, nn.Linear) and p.bias is None and p.weight.dtype == torch.bfloat16 for p in projections
        ):
            module.forward = _gated_mlp_in_bfloat16.__get__(module)
            changed += 1
    return changed


def _gated_mlp_in_bfloat16(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    inner = x.to(torch.bfloat16)
    gated = self.act_fn(nn.functional.linear(inner, self.gate_proj.weight)) * nn.functional.linear(
        inner, self.up_proj.weight
    )
    return nn.functional.linear(gated, self.down_proj.weight).to(x.dtype)
