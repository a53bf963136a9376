"""What the assistant asks of a text generator: the ``Generator`` and ``Judge`` interfaces, ``AnswerConstraint``,
``GeneratorError``, and the phrase a reply that refuses begins with (``IDK``).

``rag.models.factory`` gives the local one (``rag.models.local``); ``rag.models.openai_generator`` a model server's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from rag.types import GenerationSignals

LOADING = "loading the model into memory"
# The int8 engine's one-time conversion (rag.models.local.ctranslate2_generator): a first-use wait, as GGUF's are.
CONVERTING_INT8 = "converting the model to int8 once for this machine (about a minute, only the first time)"
# How a reply that refuses begins: the prompt asks for it, and a generator's signals measure its first token.
IDK = "I don't know"
# How a line break appears inside vocabulary entries: byte-level BPE ("Ċ"), SentencePiece byte fallback, plain. Both
# local engines stop a reply at the first one after some text.
LINE_BREAK = re.compile("Ċ|<0x0A>|\n")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, a container's limit): how many threads the local
    models multiply with."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


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


def option_mass(probs: Sequence[float], options: Sequence[str], token_ids: Callable[[str], list[int]]) -> list[float]:
    """``Judge.option_probabilities`` from the first reply token's distribution ``probs``: each option counts its
    first token spelled as given, lower-case or capitalised, with or without a space (``token_ids`` tokenizes),
    normalised over the options."""
    mass = []
    for option in options:
        variants = {option, option.lower(), option[:1].upper() + option[1:]}
        firsts = {ids[0] for text in variants for ids in (token_ids(text), token_ids(" " + text)) if ids}
        mass.append(sum(float(probs[i]) for i in firsts))
    total = sum(mass)
    return [m / total for m in mass] if total > 0 else [1.0 / len(options)] * len(options)
