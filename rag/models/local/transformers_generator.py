"""The local generator: a causal language model run on the CPU with transformers, streaming its reply."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import torch
from jinja2 import TemplateError
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache, TextIteratorStreamer

from rag.config import Quantization
from rag.models.base import IDK, LINE_BREAK, AnswerConstraint, GeneratorError, option_mass
from rag.models.local.decoding import SpanConstraint, StopAtLineBreak, StopWhenSet, constrainable_head
from rag.models.local.half_weights import HALF_DTYPES, keep_matrices_in_half, run_gated_mlps_in_bfloat16
from rag.models.local.memory_trim import return_freed_memory
from rag.models.local.model_lock import MODEL_LOADING
from rag.models.local.precision import Precision, PrecisionChoice, largest_matrix
from rag.models.local.precision import choose as choose_precision
from rag.models.local.prefix_cache import PrefixCacheStore, model_key
from rag.types import GenerationSignals


class TransformersGenerator:
    """A causal language model run on the CPU with transformers; one generation at a time.

    Measured speed-ups (eval/README.md): the attention cache of the start a prompt shares with the last one is
    reused (the system message always; most of the prompt when the best passage is the last one's, and a repeated
    question answers in 0.5 s instead of 4); under a constraint the output layer scores only the tokens the
    sources hold (the full layer is about a fifth of each decoding step); and a model stored in half precision
    keeps its matrices so, each decoding step reading half the bytes (125 -> 61 ms a step for the default model),
    multiplying them in bfloat16 where this processor is measured faster so (``rag.models.local.precision``).
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
        first), and later prompts, in this process or another, start from them (``rag.models.local.prefix_cache``). ``precision``
        is how a 16-bit model's matrices multiply (``rag.models.local.precision``); "auto" times both ways on this processor,
        remembering the choice in ``precision_cache``."""
        self.name = gguf_file or model_dir.name
        source = {"gguf_file": gguf_file} if gguf_file else {}
        # A folder stored in float16 or bfloat16 (the converted cache is float16) keeps its matrices so: half the
        # memory, and decoding reads half the bytes. A GGUF read directly is de-quantised to float32.
        stored = "auto" if gguf_file is None else torch.float32
        model = _load_complete(model_dir, stored, source)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, **source)
        # How the matrices multiply (rag.models.local.precision): meaningful for weights held in 16 bits; a float32 or int8
        # model multiplies in float32.
        self.precision_choice: PrecisionChoice | None = None
        gated_in_bfloat16 = False
        if model.dtype in HALF_DTYPES and quantization == "none":
            if precision == "auto":
                head = model.get_output_embeddings()
                self.precision_choice = choose_precision(largest_matrix(model, skip=head), precision_cache)
                precision = self.precision_choice.precision
            keep_matrices_in_half(model, torch.bfloat16 if precision == "bfloat16" else torch.float16)
            if precision == "bfloat16":
                gated_in_bfloat16 = run_gated_mlps_in_bfloat16(model) > 0
        else:
            precision = "float32"
            if model.dtype != torch.float32:
                model.float()  # int8 quantisation starts from float32 weights
        self.precision: Precision = precision
        if quantization == "int8":
            with warnings.catch_warnings():  # torch marks eager dynamic quantisation deprecated; it still works
                warnings.simplefilter("ignore")
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.head = constrainable_head(model)
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
            [i for token, i in self.tokenizer.get_vocab().items() if LINE_BREAK.search(token)]
        )
        self._refusal_id = self._token_ids(IDK)[0]  # how a refusal begins (GenerationSignals.refusal_prob)
        # The last prompt's token ids and attention cache, reused for the start the next prompt shares with it.
        self._prompt_cache: tuple[list[int], DynamicCache] | None = None
        self.last_prompt_tokens = 0  # tokens of the last prompt, as the model read it (chat template applied)
        self.reused_prompt_tokens = 0  # of those, read from that cache instead of computed
        # Saved attention caches are only reused by a model computing them the same way.
        numerics = f"{quantization}-{precision}" + ("-gated-mlp-bf16" if gated_in_bfloat16 else "")
        self._prefixes = (
            PrefixCacheStore(prefix_dir, model_key(model_dir, gguf_file, numerics), prefix_budget_mb << 20)
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
                options["prefix_allowed_tokens_fn"] = SpanConstraint(
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
            abandoned = threading.Event()  # set when the reader closes the stream before the end

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
                            stopping_criteria=[StopAtLineBreak(self._line_break_ids, prompt_length),
                                               StopWhenSet(abandoned)],
                            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                            output_scores=on_signals is not None,
                            return_dict_in_generate=True,
                        )
                        if on_signals is not None:
                            signals.append(self._signals(result.scores, result.sequences[0, prompt_length:]))
                except BaseException as exc:  # noqa: BLE001 - surfaced in the consuming thread below
                    failure.append(exc)
                    streamer.end()

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            try:
                yield from streamer
            except GeneratorExit:  # the reader left: stop at the next token rather than finish the reply
                abandoned.set()
                raise
            finally:
                worker.join()
                if self.head is not None:
                    self.head.allowed = None
                # The cache now holds this prompt (and part of a reply, or all of it); after a failure, who knows.
                self._prompt_cache = None if failure else (prompt_ids, cache)
                return_freed_memory()
            if failure:
                raise GeneratorError(f"generation failed: {failure[0]}") from failure[0]
            if signals and on_signals is not None:
                on_signals(signals[0])
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
        return option_mass(probs, options, self._token_ids)

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


def _load_complete(model_dir: Path, dtype: str | torch.dtype, source: dict[str, str]) -> torch.nn.Module:
    """The model in ``model_dir`` with every weight read from its files, in eval mode.

    transformers starts a weight the files lack from random values and only logs it; a model run so answers in
    random tokens. A load that left any weight out is tried once more (a load disturbed by another thread's comes
    out whole the second time) and then refused, naming what is missing.
    """
    missing: list[str] = []
    for _ in range(2):
        with MODEL_LOADING:
            model, info = AutoModelForCausalLM.from_pretrained(
                model_dir, local_files_only=True, dtype=dtype, output_loading_info=True, **source
            )
        missing = sorted(info["missing_keys"])
        if not missing:
            return model.eval()
        del model
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    raise GeneratorError(
        f"the model in {model_dir} lacks weights its configuration needs ({shown}); it would answer in random "
        "tokens. Delete that folder to convert the model again, or point generator_model at a complete one."
    )
