"""The one place a generator is chosen: a model server's client where the settings name a URL, else the local
generator, made from a model name: resolved (joined and converted once if packaged), then loaded with its attention
caches and precision choice kept in the cache folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rag.config import Engine, Quantization, Settings
from rag.models.base import LOADING, Generator
from rag.models.local.gguf import resolve_model_dir
from rag.models.local.precision import Precision
from rag.models.model_choice import engine_for
from rag.models.openai_generator import OpenAICompatibleGenerator

if TYPE_CHECKING:  # each engine's module is imported only when it is chosen: ctranslate2's native code, torch's
    # second and 190 MB
    from rag.models.local.ctranslate2_generator import CTranslate2Generator
    from rag.models.local.transformers_generator import TransformersGenerator


def load_generator(
    model: str | None,
    cache_dir: Path,
    quantization: Quantization = "none",
    prefix_budget_mb: int = 256,
    precision: Precision | Literal["auto"] = "auto",
    on_stage: Callable[[str], None] | None = None,
    engine: Engine = "auto",
) -> TransformersGenerator | CTranslate2Generator:
    """Resolve (converting once if needed) and load the generator model with ``engine`` (``auto``:
    ``rag.models.model_choice.engine_for``); the attention caches of
    prompt starts and the timed precision choice are kept in ``cache_dir`` too (at most ``prefix_budget_mb`` of
    caches; 0 keeps none), and so is the int8 copy the ``ctranslate2`` engine runs. ``on_stage`` hears what it is
    doing, for a person waiting: ``rag.models.local.gguf``'s stages, the int8 conversion, then ``LOADING``."""
    engine = engine_for(model, cache_dir, engine)  # "auto": the fastest measured engine here
    model_dir = resolve_model_dir(model, cache_dir, on_stage)
    if engine == "ctranslate2":
        from rag.models.local.ctranslate2_generator import CTranslate2Generator, converted_dir

        converted = converted_dir(model_dir, cache_dir, on_stage)
        if on_stage is not None:
            on_stage(LOADING)
        return CTranslate2Generator(converted, model_dir)
    from rag.models.local.transformers_generator import TransformersGenerator

    if on_stage is not None:
        on_stage(LOADING)
    return TransformersGenerator(
        model_dir, quantization, prefix_dir=cache_dir / "prompt-caches", prefix_budget_mb=prefix_budget_mb,
        precision=precision, precision_cache=cache_dir / "precision.json",
    )


def generator_for(settings: Settings, on_stage: Callable[[str], None] | None = None) -> Generator:
    """The generator ``settings`` ask for: a client of the model server at ``generator_url`` (its key from
    ``$RAG_GENERATOR_API_KEY``), else the local model ``generator_model`` (``load_generator``)."""
    if settings.generator_url:
        if on_stage is not None:
            on_stage(f"connecting to the model server at {settings.generator_url}")
        return OpenAICompatibleGenerator(settings.generator_url, settings.generator_api_model,
                                         os.environ.get("RAG_GENERATOR_API_KEY", ""), settings.generator_timeout_s)
    return load_generator(settings.generator_model, settings.cache_dir, settings.quantization,
                          settings.prompt_cache_mb, settings.matmul_precision, on_stage=on_stage,
                          engine=settings.engine)
