"""Which packaged model answers by default on this machine: the larger one where this processor runs it fast
enough, else the smaller one.

On the external set the 1.5B model answers far better than the 0.5B one (Rhine confirmation half: F1 0.47 ->
0.69, eval/log.md rows 60 and 61), but it is about three times the compute. Through transformers it answers in
about 2.5 s on a processor with AMX, in about 8 s on one without; through the int8 engine in about 3.3 s there.
Processors
differ from one host to the next, so the choice is made by timing the larger model's largest matrix product here
(``rag.models.local.precision``, cached per processor) and predicting its answer time from it, not by reading flags.

The prediction is made for each engine the larger model's answers were measured with (``PackagedModel.engines``):
transformers in the faster of float32 and bfloat16, and the int8 engine (CTranslate2) from the same product in
8-bit integers. With ``engine="auto"`` (the default) it answers on the reference engine where that is fast (AMX),
else on the faster one.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from rag.config import DEFAULT_CHECKS, MODEL_CHECKS, Engine, Settings
from rag.models.registry import PACKAGED_MODELS, packaged_score

SMALL = "qwen2.5-coder-0.5b"
LARGE = "qwen2.5-coder-1.5b"
# Qwen2.5-1.5B's largest matrix (its MLP's), and how many such products one token costs: 28 layers, each with
# three MLP matrices and four attention ones (1.5B / 13.8M parameters a matrix ~ 95).
LARGE_MATRIX = (8960, 1536)
LARGE_MATRIX_UNITS = 95
# The larger model is chosen when its predicted answer (a 500-token prompt, then 8 decoding steps:
# rag.models.local.precision) takes at most this long with some engine. On a 2-core Xeon without AMX the int8
# engine is predicted at 3.5 s and answered the dev questions in 3.27 s at the median and 4.39 s at p95, the 0.5B in
# 2.18 s and 3.50 s, the 1.5B through transformers (predicted 7.7 s) in 7.53 s and 10.28 s; the 1.5B answers far
# better (Rhine confirmation half F1 0.69 against 0.47, eval/log.md rows 60, 61 and 68), worth the second.
LARGE_MODEL_BUDGET_S = 4.5
# The reference engine is kept wherever its answer is predicted within this (a processor with AMX: about 2 s,
# eval/log.md row 61): the int8 prediction is read from onnxruntime's product, which says less about CTranslate2
# where a processor has int8 or bfloat16 tiles; where the reference is slower, the faster engine answers.
REFERENCE_FAST_S = 3.0
# CTranslate2 runs whole layers, not one product: on that Xeon its prompt pass took 2.0x what the int8 product alone
# predicts (first token 2.86 s for prompts of 528 new tokens) and a decoding step 3.2x (0.09 s a token). An EPYC
# without AMX (issue 41: 2.74 s for 502 tokens, 11 tokens/s, int8 products at 882 GOP/s) fits the same factors.
INT8_PROMPT_FACTOR = 2.0
INT8_DECODE_FACTOR = 3.2
# It holds 3.6 GB once loaded, and at most 3.5 GB of its own while loading; the resident peak then reads 6.7 GB
# because the stored float16 file is mapped while its bfloat16 copy is made, but those pages are the file's, which
# the system can drop. Below this much free memory the smaller one is used.
LARGE_MODEL_MIN_MEMORY_GB = 6.0


@dataclass(frozen=True)
class ModelChoice:
    """The packaged model chosen and the engine that runs it, and why, in words a person can check."""

    model: str
    reason: str
    predicted_s: float | None = None
    engine: Engine = "transformers"
    precision: str | None = None  # as predicted for the larger model; the smaller one's is timed when it loads


@dataclass(frozen=True)
class Prediction:
    """The larger model's predicted answer time with one engine, in the precision that engine would use."""

    engine: Engine
    precision: str
    seconds: float

    def says(self) -> str:
        return f"predicted at {self.seconds:.1f} s on this processor with the {self.engine} engine ({self.precision})"


def choose_packaged_model(cache_dir: Path, engine: Engine = "auto") -> ModelChoice:
    """The packaged model the defaults answer with here, and its engine: ``LARGE`` when its packages are
    installed, there is memory for it and its answer is predicted within ``LARGE_MODEL_BUDGET_S`` with ``engine``
    (``auto``: the faster of the engines it was measured with); else ``SMALL``. The timing is cached in
    ``cache_dir`` (``precision.json``) and made once per processor."""
    fallback: Engine = "transformers" if engine == "auto" else engine
    missing = [p for p in PACKAGED_MODELS[LARGE].packages if importlib.util.find_spec(p) is None]
    if missing:
        return ModelChoice(SMALL, f"the {LARGE} model is not installed (no {missing[0]})", engine=fallback)
    free_gb = available_memory_gb()
    if free_gb is not None and free_gb < LARGE_MODEL_MIN_MEMORY_GB:
        return ModelChoice(SMALL, f"{free_gb:.1f} GB of memory free, under the {LARGE} model's "
                                  f"{LARGE_MODEL_MIN_MEMORY_GB:.0f} GB", engine=fallback)
    best = fastest(predicted_large_answers(cache_dir), engine)
    if best is None or best.seconds > LARGE_MODEL_BUDGET_S:
        why = "could not be timed" if best is None else f"{best.says()}, over {LARGE_MODEL_BUDGET_S} s"
        return ModelChoice(SMALL, f"the {LARGE} model's answer is {why}", None if best is None else best.seconds,
                           engine=fallback)
    return ModelChoice(LARGE, f"the {LARGE} model's answer is {best.says()}", best.seconds, engine=best.engine,
                       precision=best.precision)


def fastest(predictions: list[Prediction], engine: Engine = "auto") -> Prediction | None:
    """The engine to run the larger model on, of ``predictions``: ``engine`` where it is named; for ``auto`` the
    reference engine (transformers) where its answer is predicted within ``REFERENCE_FAST_S``, else the fastest.
    None when there is none."""
    usable = [p for p in predictions if engine in ("auto", p.engine)]
    reference = [p for p in usable if p.engine == "transformers" and p.seconds <= REFERENCE_FAST_S]
    return reference[0] if reference else min(usable, key=lambda p: p.seconds, default=None)


def predicted_large_answers(cache_dir: Path) -> list[Prediction]:
    """Seconds of matrix products for the larger model's answer (``rag.models.local.precision``'s prompt and
    decoding steps) with each engine it was measured with that is installed here, from one timed product of its
    largest matrix's shape: transformers in the faster of its precisions, the int8 engine in int8."""
    from rag.models.local.precision import (  # torch loads here: choosing a model is the first that needs it
        DECODE_STEPS,
        FLOAT_PRECISIONS,
        choose,
    )

    timing = choose(LARGE_MATRIX, cache_dir / "precision.json")  # the shape: no matrix made once it is cached

    def seconds(precision: str, prompt_factor: float = 1.0, decode_factor: float = 1.0) -> float:
        prompt, step = timing.prompt_ms[precision] * prompt_factor, timing.decode_ms[precision] * decode_factor
        return LARGE_MATRIX_UNITS * (prompt + DECODE_STEPS * step) / 1000

    predictions = []
    engines = PACKAGED_MODELS[LARGE].engines
    if "transformers" in engines:
        precision = min(FLOAT_PRECISIONS, key=seconds)
        predictions.append(Prediction("transformers", precision, seconds(precision)))
    if "ctranslate2" in engines and "int8" in timing.prompt_ms and importlib.util.find_spec("ctranslate2"):
        predictions.append(Prediction("ctranslate2", "int8", seconds("int8", INT8_PROMPT_FACTOR, INT8_DECODE_FACTOR)))
    return predictions


def engine_for(model: str | None, cache_dir: Path, engine: Engine) -> Engine:
    """The engine a model named in the settings runs on: ``engine`` unless it is ``auto``; for ``auto``, the
    packaged larger model's engine as ``fastest`` picks it, and transformers (the reference) for any other model."""
    if engine != "auto":
        return engine
    if model == LARGE:
        best = fastest(predicted_large_answers(cache_dir))
        if best is not None:
            return best.engine
    return "transformers"


def available_memory_gb() -> float | None:
    """``MemAvailable`` from ``/proc/meminfo``, in GB (None where it cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1e6
    except (OSError, ValueError, IndexError):
        pass
    return None


def with_packaged_model(settings: Settings) -> tuple[Settings, ModelChoice | None]:
    """``settings`` with the generator and its engine named: the model unchanged where they name one or a model
    server writes the answers, else the one ``choose_packaged_model`` picks; an ``auto`` engine resolved
    (``engine_for``; quote mode needs transformers). The answerability score defaults to the one fitted on that
    model's drafts on that engine (``rag.models.registry.packaged_score``), and checks left
    at ``DEFAULT_CHECKS`` to that model's own on that engine (``rag.config.MODEL_CHECKS``)."""
    choice = None
    engine = "transformers" if settings.engine == "auto" and settings.answer_mode == "quote" else settings.engine
    if settings.generator_model is None and settings.generator_url is None:
        choice = choose_packaged_model(settings.cache_dir, engine)
        settings = dataclasses.replace(settings, generator_model=choice.model, engine=choice.engine)
    elif settings.generator_url is None:
        settings = dataclasses.replace(settings, engine=engine_for(settings.generator_model, settings.cache_dir,
                                                                   engine))
    key = (settings.generator_model, settings.engine)
    score = packaged_score(*key)
    if settings.answerability_model is None and score is not None:
        settings = dataclasses.replace(settings, answerability_model=score)
    if settings.checks == DEFAULT_CHECKS and key in MODEL_CHECKS:
        settings = dataclasses.replace(settings, checks=MODEL_CHECKS[key])
    return settings, choice
