"""The models one assistant answers and checks with, each loaded once: the answering model (chosen for the
processor where the settings leave it open, loaded in the background on first need, its progress reported for a
person waiting) and the verifier models the settings name."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from rag.config import Settings
from rag.models.base import CONVERTING_INT8, Generator, Judge
from rag.models.factory import generator_for, load_generator
from rag.models.local.gguf import CONVERTING, DEFAULT_MODEL, JOINING, PACKAGED_MODELS
from rag.models.model_choice import ModelChoice, with_packaged_model


@dataclass
class Preparation:
    """How far loading the generator has got, for a person waiting on the first answer (``Models.prepare``)."""

    stage: str = "starting"  # rag.models.local.gguf.JOINING, rag.models.local.gguf.CONVERTING, rag.models.base.LOADING, ...
    started: float = field(default_factory=time.monotonic)
    done: bool = False
    first_use: bool = False  # the model is being converted for this machine: a wait that happens once

    def on_stage(self, stage: str) -> None:
        self.stage = stage
        self.first_use = self.first_use or stage in (JOINING, CONVERTING, CONVERTING_INT8)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


class Models:
    """The answering model and the verifier models of one assistant.

    ``settings`` are returned with the packaged answering model chosen for this processor where they leave it open
    (``choice`` says which and why); a ``generator`` given is used as is.
    """

    def __init__(self, settings: Settings, generator: Generator | None = None) -> None:
        self.choice: ModelChoice | None = None
        if generator is None:
            settings, self.choice = with_packaged_model(settings)
        self.settings = settings
        self._generator = generator
        self._loading: Future[Generator] | None = None
        self._preparation = Preparation(stage="loaded", done=True) if generator is not None else None
        self._lock = threading.Lock()
        self.judges: dict[str, Judge] = {}

    @property
    def generator(self) -> Generator:
        """The answering model, loaded (and on first use converted) here if ``prepare`` has not done it already."""
        self.prepare()
        with self._lock:  # two first questions at once load it once
            if self._generator is None:
                assert self._loading is not None  # started by prepare()
                self._generator = self._loading.result()
                self._loading = None
            return self._generator

    def prepare(self) -> Preparation:
        """Start loading the generator in the background unless it is loaded or loading, and say how far it has
        got: a caller can show that to a person while waiting (the first use converts the model, about a minute).
        A load error surfaces when ``generator`` is read."""
        with self._lock:
            if self._preparation is None:
                self._loading, self._preparation = _start_loading(self.settings)
            return self._preparation

    def answering_judge(self) -> Judge | None:
        """The answering model, where it gives option probabilities (a model server may not)."""
        generator = self.generator
        return generator if hasattr(generator, "option_probabilities") else None  # type: ignore[return-value]

    def judge(self, settings: Settings) -> Judge | None:
        """The verifier model ``settings`` name, loaded on first use and kept; the answering model itself when
        they name the same one."""
        name = settings.verifier_model
        if name is None:
            return None
        answering = self.settings.generator_model  # the model this assistant answers with (None: the default)
        if name == answering or (answering is None and PACKAGED_MODELS.get(name) is DEFAULT_MODEL):
            generator = self.generator
            if hasattr(generator, "option_probabilities"):
                return generator  # type: ignore[return-value]
        with self._lock:
            if name not in self.judges:
                # No store of prompt starts: the verifier's prompts share only their short system message.
                self.judges[name] = load_generator(name, settings.cache_dir, settings.quantization, 0,
                                                   settings.matmul_precision, engine=settings.engine)
            return self.judges[name]


def _start_loading(settings: Settings) -> tuple[Future[Generator], Preparation]:
    """Load ``settings``' generator in a background thread, its progress reported in the returned record."""
    preparation = Preparation()

    def load() -> Generator:
        try:
            return generator_for(settings, on_stage=preparation.on_stage)
        finally:
            preparation.done = True

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-generator")
    loading = pool.submit(load)
    pool.shutdown(wait=False)  # returns at once; the load goes on in its thread
    return loading, preparation
