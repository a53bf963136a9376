"""The local generator, made from a model name: resolved (joined and converted once if packaged), then loaded
with its attention caches and precision choice kept in the cache folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from rag.config import Quantization
from rag.models.base import LOADING
from rag.models.local.gguf import resolve_model_dir
from rag.models.local.precision import Precision
from rag.models.local.transformers_generator import TransformersGenerator


def load_generator(
    model: str | None,
    cache_dir: Path,
    quantization: Quantization = "none",
    prefix_budget_mb: int = 256,
    precision: Precision | Literal["auto"] = "auto",
    on_stage: Callable[[str], None] | None = None,
) -> TransformersGenerator:
    """Resolve (converting once if needed) and load the generator model; the attention caches of prompt starts and
    the timed precision choice are kept in ``cache_dir`` too (at most ``prefix_budget_mb`` of caches; 0 keeps
    none). ``on_stage`` hears what it is doing, for a person waiting: ``rag.models.local.gguf``'s stages, then ``LOADING``."""
    model_dir = resolve_model_dir(model, cache_dir, on_stage)
    if on_stage is not None:
        on_stage(LOADING)
    return TransformersGenerator(
        model_dir, quantization, prefix_dir=cache_dir / "prompt-caches", prefix_budget_mb=prefix_budget_mb,
        precision=precision, precision_cache=cache_dir / "precision.json",
    )
