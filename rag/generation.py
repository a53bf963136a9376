"""What the assistant asks of a text generator (the ``Generator`` and ``Judge`` interfaces, ``AnswerConstraint``),
and ``load_generator``, which gives the local one.

The local backend lives in ``rag.transformers_generator``; ``rag.gguf`` turns the packaged GGUF models into folders
it can load; ``rag.decoding`` and ``rag.half_weights`` hold what it changes in a transformers model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from rag.config import Quantization
from rag.types import GenerationSignals

if TYPE_CHECKING:  # torch and transformers load only with the model
    from rag.precision import Precision
    from rag.transformers_generator import TransformersGenerator


LOADING = "loading the model into memory"


class GeneratorError(Exception):
    """The generator model cannot be found, verified or loaded; the message says which and why."""


@dataclass(frozen=True)
class AnswerConstraint:
    """What a reply may be, stated as text (each generator enforces it with its own tokens): one span copied
    verbatim from one of ``sources``, or ``refusal``."""

    sources: tuple[str, ...]
    refusal: str = "I don't know"


class Generator(Protocol):
    """What the assistant needs from a text generator. Implementations must be safe to call from any thread."""

    name: str

    def stream(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int,
        constraint: AnswerConstraint | None = None,
        max_seconds: float | None = None,
        starts: Sequence[list[dict[str, str]]] = (),
        on_signals: Callable[[GenerationSignals], None] | None = None,
    ) -> Iterator[str]:
        """Yield the reply to a chat, piece by piece, greedily decoded, within ``constraint`` when given; stop
        after ``max_new_tokens`` tokens or ``max_seconds`` of generating, whichever comes first. ``starts`` are
        beginnings of ``messages`` that later chats will share (a hint: an implementation may keep their state).
        ``on_signals``, when given, receives the reply's token probabilities once it is complete (an
        implementation that has none never calls it)."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` is for this model."""
        ...


class Judge(Protocol):
    """A model that can be asked to choose between a few replies (a verifier). ``TransformersGenerator`` is one."""

    name: str

    def option_probabilities(self, messages: list[dict[str, str]], options: Sequence[str]) -> list[float]:
        """The probability of each of ``options`` as the reply to ``messages``, read at the reply's first token
        and normalised over the options (they must begin with different tokens)."""
        ...


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
    none). ``on_stage`` hears what it is doing, for a person waiting: ``rag.gguf``'s stages, then ``LOADING``."""
    from rag.gguf import resolve_model_dir
    from rag.transformers_generator import TransformersGenerator

    model_dir = resolve_model_dir(model, cache_dir, on_stage)
    if on_stage is not None:
        on_stage(LOADING)
    return TransformersGenerator(
        model_dir, quantization, prefix_dir=cache_dir / "prompt-caches", prefix_budget_mb=prefix_budget_mb,
        precision=precision, precision_cache=cache_dir / "precision.json",
    )
