"""Answering speed: cold start (process start to first answer) and per-question latency with the real model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from rag.bench.ceilings import bfloat16_gflops, float32_gflops, int8_gops, memory_bandwidth_gb_s, transformer_flops
from rag.bench.report import proc_status_kib, publish
from rag.config import Settings, SettingsError
from rag.evaluation.scoring import percentile

# ------------------------------------------------------------------------------------------------ cold start


# The fresh process notes the time before importing anything of the project's.
_CHILD_CODE = (
    "import sys, time; started = time.time(); from rag.bench.answering import cold_start_child; "
    "cold_start_child(started, *sys.argv[1:])"
)


def child_command(mode: str, docs_dir: Path, index_dir: Path, question: str, gguf: Path) -> list[str]:
    """The command line of a fresh process that answers ``question`` after loading the generator the ``mode``
    way ("project": the converted-model cache; "gguf": the GGUF file directly) and prints JSON timings."""
    return [sys.executable, "-c", _CHILD_CODE, mode, str(docs_dir), str(index_dir), question, str(gguf)]


def cold_start_child(started: float, mode: str, docs_dir: str, index_dir: str, question: str, gguf: str) -> None:
    """Runs in the fresh process of ``child_command``; ``started`` is when its interpreter began importing."""
    from rag.assistant import Assistant

    generator = None
    if mode == "gguf":  # the plain way: de-quantise the GGUF file on every start
        from rag.models.local.transformers_generator import TransformersGenerator

        imported = time.time()
        path = Path(gguf)
        generator = TransformersGenerator(path.parent, gguf_file=path.name)
    else:  # the project's way imports what its engine needs as it loads (the int8 engine: no torch)
        imported = time.time()
    assistant = Assistant.from_folder(docs_dir, index_dir, generator=generator, preload_generator=True)
    _ = assistant.generator  # waits for the load, so the phases below are separate (`rag ask` does the same)
    loaded = time.time()
    answer = assistant.ask(question)
    answered = time.time()
    print(json.dumps({
        "child_started": started, "imports_s": imported - started, "load_s": loaded - imported,
        "answer_s": answered - loaded, "answered_at": answered, "answer": answer.text,
        "reused_prompt_tokens": getattr(assistant.generator, "reused_prompt_tokens", 0),
        "peak_rss_kib": proc_status_kib("VmHWM"),
    }))


def join_answering_gguf(settings: Settings, target: Path) -> Path:
    """Join the GGUF of the packaged model ``settings`` answer with into ``target`` (the plain way's file)."""
    from rag.models.local.gguf import PACKAGED_MODELS, join_packaged_gguf

    if settings.generator_model not in PACKAGED_MODELS:
        raise SettingsError(f"the benchmark compares a packaged model's two loads, not {settings.generator_model}")
    join_packaged_gguf(PACKAGED_MODELS[settings.generator_model], target)
    return target


def _cache_without_prompt_starts(settings: Settings, scratch: Path) -> Path:
    """A cache folder in ``scratch`` holding the converted model, exported embedder and timed precision choice of
    ``settings.cache_dir`` (linked, not copied) and no prompt starts (``rag.models.local.prefix_cache``): what other runs kept
    is not seen."""
    cache = scratch / "cache"
    cache.mkdir()
    for kept in ("models", "embeddings", "precision.json"):
        if (settings.cache_dir / kept).exists():
            (cache / kept).symlink_to((settings.cache_dir / kept).resolve())
    return cache


def questions_about_other_documents(items: list) -> list[str]:
    """The gold questions after ``items[0]`` whose evidence lies only in other documents, in order."""
    docs = {e.doc for e in items[0].evidence}
    return [i.question for i in items[1:] if i.evidence and not docs & {e.doc for e in i.evidence}]


def cold_start(question: str, runs: int = 2, out: Path | None = None, settings: Settings | None = None,
               earlier_questions: Sequence[str] = ()) -> dict:
    """Time both ways ``runs`` times each, alternating, from spawning the process to the answer.

    Caches are warm, as in use: the index, the converted model and exported embedder, and the prompt starts that
    an untimed earlier process kept answering the first of ``earlier_questions`` that the model itself answered
    (some are answered without it, when retrieval finds nothing relevant, and keep nothing; default: ``question``
    itself, whose first passage is then kept too). Every timed run finds the prompt starts as that process left
    them.
    """
    from rag.ingest.indexing import build_or_update
    from rag.models.embedding import load_embedder
    from rag.models.local.gguf import resolve_model_dir
    from rag.models.model_choice import with_packaged_model

    # Both ways load the packaged model the defaults answer with on this processor.
    settings, _ = with_packaged_model(settings or Settings())
    with tempfile.TemporaryDirectory() as scratch:
        index_dir = Path(scratch) / "index"
        build_or_update(settings.docs_dir, index_dir, load_embedder(settings), settings)  # index warm, as in use
        resolve_model_dir(settings.generator_model, settings.cache_dir)  # converted-model cache warm
        cache = _cache_without_prompt_starts(settings, Path(scratch))
        env = {**os.environ, "RAG_CACHE_DIR": str(cache)}
        gguf = join_answering_gguf(settings, Path(scratch) / "model.gguf")
        warmed_by = None
        for earlier in earlier_questions or [question]:
            command = child_command("project", settings.docs_dir, index_dir, earlier, gguf)
            subprocess.run(command, capture_output=True, check=True, env=env)
            if any((cache / "prompt-caches").glob("*.safetensors")):
                warmed_by = earlier
                break
        if warmed_by is None:
            print("cold start: no earlier question reached the model; the prompt store stays empty", flush=True)
        kept_before = set((cache / "prompt-caches").glob("*"))
        rows = []
        for run in range(runs):
            for mode in ("project", "gguf"):
                for added in set((cache / "prompt-caches").glob("*")) - kept_before:
                    added.unlink()  # every run finds the store as the earlier process left it
                command = child_command(mode, settings.docs_dir, index_dir, question, gguf)
                spawned = time.time()
                result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
                report = json.loads(result.stdout.strip().splitlines()[-1])
                rows.append({
                    "way": "project: converted-model cache" if mode == "project" else "plain: load the GGUF directly",
                    "run": run + 1,
                    "to_first_answer_s": report["answered_at"] - spawned,
                    "interpreter_s": report["child_started"] - spawned,
                    "imports_s": report["imports_s"],
                    "load_s": report["load_s"],
                    "answer_s": report["answer_s"],
                    "reused_prompt_tokens": report["reused_prompt_tokens"],
                    "peak_rss_mib": report["peak_rss_kib"] / 1024,
                    "answer": report["answer"],
                })
                print(f"cold start: {rows[-1]['way']}: {rows[-1]['to_first_answer_s']:.1f} s", flush=True)
    project = percentile([r["to_first_answer_s"] for r in rows if r["way"].startswith("project")], 50)
    plain = percentile([r["to_first_answer_s"] for r in rows if r["way"].startswith("plain")], 50)
    summary = {
        "generator_model": settings.generator_model,
        "engine": settings.engine,  # the project's way; the plain way loads the GGUF into transformers
        "project_median_s": project, "plain_median_s": plain, "speedup": plain / project,
        "prompt_store_warmed_by": warmed_by,
        "goal": "<= 10 s to the first answer and >= 5x faster than loading the GGUF directly",
    }
    columns = ["way", "run", "to_first_answer_s", "interpreter_s", "imports_s", "load_s", "answer_s",
               "reused_prompt_tokens", "peak_rss_mib", "answer"]
    publish("cold-start", f"Cold start: process start to the first answer of {question!r}", rows, columns, summary,
            out)
    return {"rows": rows, "summary": summary}


# --------------------------------------------------------------------------------------------------- latency


def latency(gold_path: Path = Path("eval/gold/dev.jsonl"), out: Path | None = None,
            settings: Settings | None = None) -> dict:
    """Stream every gold question's answer twice; time the first piece and the whole, count prompt and reply tokens.

    The first pass starts from an empty store of prompt-start caches (``rag.models.local.prefix_cache``), as on a new machine;
    the second finds there the first passages the first pass read, as later use of the same documents does.
    """
    from rag.assistant import Assistant
    from rag.evaluation.scoring import load_gold
    from rag.models.local.gguf import resolve_model_dir
    from rag.models.model_choice import with_packaged_model

    settings, _ = with_packaged_model(settings or Settings())  # the model the defaults answer with here
    items = load_gold(gold_path)
    with tempfile.TemporaryDirectory() as scratch:
        resolve_model_dir(settings.generator_model, settings.cache_dir)  # converted once, before the cache is linked
        settings = settings.with_changes(cache_dir=_cache_without_prompt_starts(settings, Path(scratch)))
        assistant = Assistant.from_folder(settings.docs_dir, Path(scratch) / "index", settings)
        generator = assistant.generator
        assistant.ask("What is this about?")  # warm-up: first-call allocations and the system prompt's cache
        rows = [row for label in ("empty store", "second pass") for row in _timed_pass(assistant, items, label)]
        model, bytes_per_token = _architecture(generator)
        parameters = sum(p.numel() for p in model.parameters())
        rates = _prefill_floors(model, rows, generator.precision)
    bandwidth = memory_bandwidth_gb_s()
    summary = {"questions": len(items), "generator_model": settings.generator_model}
    for label, prefix in (("empty store", ""), ("second pass", "second_pass_")):
        summary |= {f"{prefix}{name}": value for name, value in _pass_summary([r for r in rows if r["pass"] == label])}
    timed = getattr(generator, "precision_choice", None)
    summary |= {
        "engine": getattr(generator, "engine", "transformers"),
        "matmul_precision": generator.precision,
        "precision_timed": timed.to_dict() if timed else None,
        "model_parameters": parameters,
        "model_bytes_read_per_token": bytes_per_token,
        "memory_bandwidth_gb_s": bandwidth,
        "decode_bound_tokens_per_s": bandwidth * 1e9 / bytes_per_token,
        **rates,
        "prefill_floor_int8_median_s": summary["prefill_floor_median_s"]
        * _rate(rates, generator.precision) / rates["int8_matmul_gops"],
        "goal": "first token <= 1.0 s, full answer <= 3 s median",
    }
    columns = ["pass", "id", "first_token_s", "prefill_floor_s", "full_answer_s", "prompt_tokens",
               "prefilled_tokens", "generated_tokens", "prefill_tokens_per_s", "decode_tokens_per_s", "answer"]
    publish("latency", "Answer latency over the dev gold questions (model loaded, streamed)", rows, columns, summary,
            out)
    return {"rows": rows, "summary": summary}


def _timed_pass(assistant, items, label: str) -> list[dict]:
    """One row per gold item: its answer streamed and timed, with the prompt and reply token counts."""
    generator = assistant.generator
    rows = []
    for item in items:
        started = time.perf_counter()
        stream = assistant.stream(item.question)
        first = None
        for _ in stream:
            first = first if first is not None else time.perf_counter() - started
        total = time.perf_counter() - started
        answer = stream.answer
        asked = bool(stream.hits)  # the passages the model read; none when it was not asked
        generated = generator.count_tokens(answer.raw_output) if asked else 0
        row = {"pass": label, "id": item.id, "first_token_s": first or total, "full_answer_s": total,
               "retrieval_s": answer.timings.retrieval_s, "prompt_tokens": 0, "generated_tokens": generated,
               "answer": answer.text}
        if asked:
            row["prompt_tokens"] = generator.last_prompt_tokens
            # The start a prompt shares with the last one or with a kept prompt start (the system message at least)
            # is read from an attention cache: only the rest is prefilled.
            row["prefilled_tokens"] = row["prompt_tokens"] - generator.reused_prompt_tokens
            prefill = max(row["first_token_s"] - row["retrieval_s"], 1e-9)
            row["prefill_tokens_per_s"] = row["prefilled_tokens"] / prefill
            if generated > 1 and total > row["first_token_s"]:
                row["decode_tokens_per_s"] = (generated - 1) / (total - row["first_token_s"])
        rows.append(row)
        print(f"latency ({label}): {item.id}: first {row['first_token_s']:.2f} s, full {total:.2f} s", flush=True)
    return rows


def _architecture(generator) -> tuple[object, int]:
    """The generator's torch model (for the int8 engine, the same architecture built on the meta device, which
    holds no weights) to count its arithmetic on, and the bytes of weights one decoding step reads."""
    if getattr(generator, "engine", "transformers") == "transformers":
        model = generator.model
        return model, sum(p.numel() * p.element_size() for p in model.parameters())
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(generator.source_dir))
    return model, (generator.model_dir / "model.bin").stat().st_size  # int8 weights and their scales


def _rate(rates: dict[str, float], precision: str) -> float:
    """The measured product rate of ``precision`` (float32, bfloat16 or int8)."""
    return rates["int8_matmul_gops"] if precision == "int8" else rates[f"{precision}_matmul_gflops"]


def _prefill_floors(model, rows: list[dict], precision: str = "float32") -> dict[str, float]:
    """Give every row whose question reached the model its ``prefill_floor_s``: the arithmetic of its prefill
    (``rag.bench.ceilings.transformer_flops``, plus scoring the next token) at this machine's rate in the
    ``precision`` the generator multiplies in (float32, bfloat16, or the int8 engine's int8), measured in this run on
    the model's largest matrix with the median prefill's rows: a pass of that prompt is slower unless its products run
    faster than that. Returns the rates (float32, bfloat16 and int8, so the floors of each way can be compared) and
    how many tokens one second of prefill could compute at the median context."""
    asked = [r for r in rows if r["prompt_tokens"]]
    config, decoder = model.config, model.get_decoder()
    scoring = 2 * model.get_output_embeddings().weight.numel()
    product_rows = max(1, int(percentile([r["prefilled_tokens"] for r in asked], 50)))
    float32 = float32_gflops(product_rows, config.hidden_size, config.intermediate_size)
    bfloat16 = bfloat16_gflops(product_rows, config.hidden_size, config.intermediate_size)
    int8 = int8_gops(product_rows, config.hidden_size, config.intermediate_size)
    rate = {"bfloat16": bfloat16, "int8": int8}.get(precision, float32)
    for row in asked:
        earlier = row["prompt_tokens"] - row["prefilled_tokens"]
        flops = transformer_flops(decoder, config, row["prefilled_tokens"], earlier) + scoring
        row["prefill_floor_s"] = flops / (rate * 1e9)
    context = int(percentile([r["prompt_tokens"] for r in asked], 50))
    per_token = transformer_flops(decoder, config, 1, context)
    return {
        "float32_matmul_gflops": float32,
        "bfloat16_matmul_gflops": bfloat16,
        "int8_matmul_gops": int8,
        "prefill_floor_precision": precision,
        "prefilled_tokens_within_1s": rate * 1e9 / per_token,
    }


def _pass_summary(rows: list[dict]) -> list[tuple[str, float]]:
    """Medians (and p95 of the times) of one pass's rows."""
    asked = [r for r in rows if r["prompt_tokens"]]
    decoded = [r for r in asked if "decode_tokens_per_s" in r]
    firsts = [r["first_token_s"] for r in rows]
    fulls = [r["full_answer_s"] for r in rows]
    return [
        ("first_token_median_s", percentile(firsts, 50)), ("first_token_p95_s", percentile(firsts, 95)),
        ("full_answer_median_s", percentile(fulls, 50)), ("full_answer_p95_s", percentile(fulls, 95)),
        ("prompt_tokens_median", percentile([r["prompt_tokens"] for r in asked], 50)),
        ("prefilled_tokens_median", percentile([r["prefilled_tokens"] for r in asked], 50)),
        ("generated_tokens_median", percentile([r["generated_tokens"] for r in asked], 50)),
        ("prefill_tokens_per_s_median", percentile([r["prefill_tokens_per_s"] for r in asked], 50)),
        ("prefill_floor_median_s", percentile([r["prefill_floor_s"] for r in asked], 50)),
        ("decode_tokens_per_s_median", percentile([r["decode_tokens_per_s"] for r in decoded], 50)),
    ]
