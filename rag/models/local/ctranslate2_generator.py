"""The int8 engine: the same model converted once to CTranslate2 with int8 weights and run on the CPU.

Why: a model kept in 16 bits reads all its weights for every token and multiplies the prompt in bfloat16 or float32;
on a processor without AMX that makes the 1.5B slow. Int8 weights halve the bytes read per token, and VNNI's int8
dot products speed the prompt pass (``rag bench latency``; eval/log.jsonl records what it changed in the answers).
It gives what the rest of the pipeline reads: the reply streamed, the refusal's probability at the first step and
each chosen token's (``GenerationSignals``), and option probabilities for the yes/no prompts (``Judge``). Quote
mode's constrained decoding is the transformers engine's alone: asked for it, this engine says so.
"""

from __future__ import annotations

import hashlib
import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from jinja2 import TemplateError

from rag.models.base import (
    CONVERTING_INT8,
    IDK,
    LINE_BREAK,
    AnswerConstraint,
    GeneratorError,
    option_mass,
    usable_cores,
)
from rag.models.local.model_lock import MODEL_LOADING
from rag.types import GenerationSignals

# The folder name of a converted model beside its source in the cache (its name carries the GGUF's hash).
SUFFIX = "-ct2-int8"


def _ctranslate2():
    """CTranslate2, imported here (only this engine needs it) with its int8 products on oneDNN unless
    ``CT2_USE_MKL`` says otherwise. On an Intel processor it would pick Intel MKL, which keeps a second, packed copy
    of the weights: measured on a Xeon without AMX (29 dev answers, quiet), oneDNN's peak memory was 2.70 GB
    against 3.43, its first token 2.23 s against 2.62, the whole answer 2.98 s against 3.03. An AMD processor
    gets oneDNN either way."""
    os.environ.setdefault("CT2_USE_MKL", "0")  # read once, at CTranslate2's first product
    import ctranslate2

    return ctranslate2


def converted_dir(source: Path, cache_dir: Path, on_stage: Callable[[str], None] | None = None) -> Path:
    """The CTranslate2 int8 copy of the transformers model folder ``source``, converted the first time into
    ``cache_dir``/models (written under a temporary name and renamed, so a killed conversion leaves nothing
    half-made). A packaged model's folder is named by its GGUF's SHA-256 already; another folder is keyed by its
    path."""
    models = cache_dir / "models"
    key = source.name if source.parent.resolve() == models.resolve() else (
        f"{source.name}-{hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]}")
    target = models / (key + SUFFIX)
    if (target / "model.bin").is_file():
        return target
    ctranslate2 = _ctranslate2()

    if on_stage is not None:
        on_stage(CONVERTING_INT8)
    models.mkdir(parents=True, exist_ok=True)
    with MODEL_LOADING, tempfile.TemporaryDirectory(prefix=".tmp-ct2-", dir=models) as scratch:
        out = Path(scratch) / "model"
        ctranslate2.converters.TransformersConverter(str(source), low_cpu_mem_usage=True).convert(
            str(out), quantization="int8", force=True)
        if target.exists():  # another process finished first
            return target
        os.replace(out, target)
    return target


def _tokenizer(folder: Path):
    """The tokenizer and chat template of the model folder ``folder``: read from its ``tokenizer.json`` by the
    tokenizers library where it has one (transformers' ``AutoTokenizer`` imports torch, a second and 190 MB this
    engine never uses otherwise; the token ids are the same), else by ``AutoTokenizer``."""
    if (folder / "tokenizer.json").is_file():
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(folder, local_files_only=True)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


class CTranslate2Generator:
    """A causal language model converted to CTranslate2 int8, run on the CPU; one generation at a time.

    ``Generator`` and ``Judge``: ``stream`` yields the reply as it is decoded (greedy, stopped at the first line
    break after some text, at ``max_new_tokens``, after ``max_seconds``, or when the reader closes the stream), and
    reports its ``GenerationSignals``; ``option_probabilities`` reads the first reply token's distribution.
    """

    def __init__(self, model_dir: Path, tokenizer_dir: Path, threads: int | None = None) -> None:
        """Load the converted model in ``model_dir``; the tokenizer and chat template come from the transformers
        folder it was converted from, ``tokenizer_dir``."""
        ctranslate2 = _ctranslate2()

        self.name = model_dir.name
        self.model_dir, self.source_dir = model_dir, tokenizer_dir
        self.engine = "ctranslate2"
        self.precision = "int8"
        threads = threads or usable_cores()
        try:
            with MODEL_LOADING:
                self.model = ctranslate2.Generator(str(model_dir), device="cpu", compute_type="int8",
                                                   intra_threads=threads or 1)
        except (RuntimeError, ValueError) as exc:
            raise GeneratorError(f"cannot load the CTranslate2 model in {model_dir}: {exc}") from exc
        self.tokenizer = _tokenizer(tokenizer_dir)
        self._lock = threading.Lock()
        vocabulary = self.tokenizer.get_vocab()
        ends = {self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("<|im_end|>")}
        self._end_ids = sorted(i for i in ends if isinstance(i, int) and i >= 0)
        self._end_tokens = self.tokenizer.convert_ids_to_tokens(self._end_ids)
        self._line_break_ids = {i for token, i in vocabulary.items() if LINE_BREAK.search(token)}
        self._refusal_id = self._token_ids(IDK)[0]
        self.last_prompt_tokens = 0
        self.reused_prompt_tokens = 0  # CTranslate2 keeps no cache between calls beyond the static prompt

    def count_tokens(self, text: str) -> int:
        return len(self._token_ids(text))

    def _token_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> list[str]:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
        return self.tokenizer.convert_ids_to_tokens(ids)

    def stream(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int,
        constraint: AnswerConstraint | None = None,
        max_seconds: float | None = None,
        starts: Sequence[list[dict[str, str]]] = (),
        on_signals: Callable[[GenerationSignals], None] | None = None,
    ) -> Iterator[str]:
        if constraint is not None:
            raise GeneratorError("quote mode (a reply copied from a passage) needs the transformers engine: "
                                 "--engine transformers")
        with self._lock:
            tokens = self._prompt_tokens(messages)
            self.last_prompt_tokens = len(tokens)
            # The start every prompt shares (the system message): CTranslate2 keeps the model's state after it and
            # computes only the rest of each prompt.
            shared = self._shared_start(starts[0], tokens) if starts else 0
            self.reused_prompt_tokens = shared
            steps: queue.Queue[object] = queue.Queue()
            abandoned = threading.Event()  # set when the reader closes the stream before the end
            deadline = time.monotonic() + max_seconds if max_seconds else None
            written: list[int] = []

            def step(result) -> bool:  # called by CTranslate2 after each token; True stops decoding
                written.append(result.token_id)
                steps.put(result.token_id)
                after_text = result.token_id in self._line_break_ids and any(
                    i not in self._line_break_ids for i in written)
                return abandoned.is_set() or after_text or (deadline is not None and time.monotonic() > deadline)

            outcome: list[object] = []

            def run() -> None:
                try:
                    outcome.append(self.model.generate_batch(
                        [tokens[shared:]], static_prompt=tokens[:shared] or None,
                        max_length=max_new_tokens, sampling_topk=1, end_token=self._end_tokens,
                        include_prompt_in_result=False, return_logits_vocab=on_signals is not None,
                        callback=step)[0])
                except BaseException as exc:  # noqa: BLE001 - surfaced in the reading thread below
                    outcome.append(exc)
                finally:
                    steps.put(None)

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            shown = ""
            ids: list[int] = []
            try:
                while (token := steps.get()) is not None:
                    if token in self._end_ids:
                        continue
                    ids.append(token)
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                    if text.endswith("\ufffd"):  # a character split across tokens: wait for the rest
                        continue
                    if len(text) > len(shown):
                        yield text[len(shown):]
                        shown = text
            except GeneratorExit:  # the reader left: stop at the next token rather than finish the reply
                abandoned.set()
                raise
            finally:
                worker.join()
            result = outcome[0] if outcome else None
            if isinstance(result, BaseException):
                raise GeneratorError(f"generation failed: {result}") from result
            if on_signals is not None and result is not None:
                # One hypothesis: its logits are a matrix, a row per decoding step.
                on_signals(self._signals(np.asarray(result.logits[0], dtype=np.float32), written))

    def _shared_start(self, start: list[dict[str, str]], tokens: list[str]) -> int:
        """How many of the prompt's ``tokens`` spell ``start`` (rendered open-ended, as the transformers engine
        does); at least one token is left to compute."""
        try:
            rendered = self.tokenizer.apply_chat_template(start, tokenize=False, continue_final_message=True)
        except (TemplateError, ValueError):  # a template that cannot render this start: nothing kept
            return 0
        shared = 0
        for a, b in zip(self.tokenizer.convert_ids_to_tokens(self._token_ids(rendered)), tokens):
            if a != b:
                break
            shared += 1
        return min(shared, len(tokens) - 1)

    def _signals(self, logits: np.ndarray, generated: list[int]) -> GenerationSignals:
        """As the transformers engine measures them: the refusal's first token at the first step, and the
        log-probability of each token chosen up to the end (end-of-reply and line-break tokens not counted);
        ``logits`` has a row per step."""
        if logits.size == 0 or not generated:
            return GenerationSignals(0.0, 0.0, 0.0, 0)
        rows = [_log_softmax(row) for row in logits.reshape(-1, logits.shape[-1])[:len(generated)]]
        refusal_prob = float(math.exp(rows[0][self._refusal_id]))
        ends = set(self._end_ids) | self._line_break_ids
        kept = [float(row[token]) for row, token in zip(rows, generated) if token not in ends]
        kept = [value for value in kept if value > float("-inf")] or [0.0]
        return GenerationSignals(refusal_prob, sum(kept) / len(kept), min(kept), len(kept))

    def option_probabilities(self, messages: list[dict[str, str]], options: Sequence[str]) -> list[float]:
        """``Judge.option_probabilities``: the first reply token's distribution, each option counting its first
        token spelled as given, lower-case or capitalised, with or without a space."""
        with self._lock:
            result = self.model.generate_batch([self._prompt_tokens(messages)], max_length=1, sampling_topk=1,
                                               include_prompt_in_result=False, return_logits_vocab=True)[0]
        probs = np.exp(_log_softmax(np.asarray(result.logits[0], dtype=np.float32).reshape(-1)))
        return option_mass(probs, options, self._token_ids)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max()
    return shifted - np.log(np.exp(shifted).sum())
