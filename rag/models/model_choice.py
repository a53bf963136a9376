"""Which packaged model answers by default on this machine: the larger one where this processor runs it fast
enough, else the smaller one.

On the external set the 1.5B model answers far better than the 0.5B one (Rhine confirmation half: F1 0.47 ->
0.69, eval/log.md rows 60 and 61), but it is about three times the compute. On a processor with bfloat16 units
(AVX-512 BF16, AMX) it answers in about 2.5 s; on one without them in about 8 s, too slow for a default. Processors
differ from one host to the next, so the choice is made by timing the larger model's largest matrix product here
(``rag.models.local.precision``, cached per processor) and predicting its answer time from it, not by reading flags.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from rag.config import Settings
from rag.models.registry import PACKAGED_MODELS, PACKAGED_SCORES

SMALL = "qwen2.5-coder-0.5b"
LARGE = "qwen2.5-coder-1.5b"
# Qwen2.5-1.5B's largest matrix (its MLP's), and how many such products one token costs: 28 layers, each with
# three MLP matrices and four attention ones (1.5B / 13.8M parameters a matrix ~ 95).
LARGE_MATRIX = (8960, 1536)
LARGE_MATRIX_UNITS = 95
# The larger model is chosen when its predicted answer (a 500-token prompt, then 24 decoding steps) takes at most
# this long. On a 2-core Xeon with AMX the prediction was 2.8 s and the model's answers took 2.2 s at the median
# and 3.8 s at p95 on the external tuning half (eval/log.md, row 61); that host multiplying in float32 predicts 5.9 s.
LARGE_MODEL_BUDGET_S = 3.5
# It holds 3.6 GB once loaded, and at most 3.5 GB of its own while loading; the resident peak then reads 6.7 GB
# because the stored float16 file is mapped while its bfloat16 copy is made, but those pages are the file's, which
# the system can drop. Below this much free memory the smaller one is used.
LARGE_MODEL_MIN_MEMORY_GB = 6.0


@dataclass(frozen=True)
class ModelChoice:
    """The packaged model chosen, and why, in words a person can check."""

    model: str
    reason: str
    predicted_s: float | None = None


def choose_packaged_model(cache_dir: Path) -> ModelChoice:
    """The packaged model the defaults answer with here: ``LARGE`` when its packages are installed, there is
    memory for it and its answer is predicted within ``LARGE_MODEL_BUDGET_S``; else ``SMALL``. The timing is
    cached in ``cache_dir`` (``precision.json``) and made once per processor."""
    missing = [p for p in PACKAGED_MODELS[LARGE].packages if importlib.util.find_spec(p) is None]
    if missing:
        return ModelChoice(SMALL, f"the {LARGE} model is not installed (no {missing[0]})")
    free_gb = available_memory_gb()
    if free_gb is not None and free_gb < LARGE_MODEL_MIN_MEMORY_GB:
        return ModelChoice(SMALL, f"{free_gb:.1f} GB of memory free, under the {LARGE} model's "
                                  f"{LARGE_MODEL_MIN_MEMORY_GB:.0f} GB")
    predicted = predicted_large_answer_s(cache_dir)
    if predicted > LARGE_MODEL_BUDGET_S:
        return ModelChoice(SMALL, f"the {LARGE} model's answer is predicted at {predicted:.1f} s on this processor, "
                                  f"over {LARGE_MODEL_BUDGET_S} s", predicted)
    return ModelChoice(LARGE, f"the {LARGE} model's answer is predicted at {predicted:.1f} s on this processor",
                       predicted)


def predicted_large_answer_s(cache_dir: Path) -> float:
    """Seconds of matrix products for the larger model's answer (``rag.models.local.precision``'s prompt and decoding steps), in
    the faster precision, from one timed product of its largest matrix's shape."""
    from rag.models.local.precision import (  # torch loads here: choosing a model is the first that needs it
        DECODE_STEPS,
        choose,
    )

    timing = choose(LARGE_MATRIX, cache_dir / "precision.json")  # the shape: no matrix made once it is cached
    answer_ms = min(timing.prompt_ms[p] + DECODE_STEPS * timing.decode_ms[p] for p in timing.prompt_ms)
    return LARGE_MATRIX_UNITS * answer_ms / 1000


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
    """``settings`` with the generator named: unchanged where they name one or a model server writes the answers;
    else the model ``choose_packaged_model`` picks. Either way the answerability score defaults to the one fitted on
    that model's drafts (``rag.models.registry.PACKAGED_SCORES``)."""
    choice = None
    if settings.generator_model is None and settings.generator_url is None:
        choice = choose_packaged_model(settings.cache_dir)
        settings = dataclasses.replace(settings, generator_model=choice.model)
    if settings.answerability_model is None and settings.generator_model in PACKAGED_SCORES:
        settings = dataclasses.replace(settings, answerability_model=PACKAGED_SCORES[settings.generator_model])
    return settings, choice
