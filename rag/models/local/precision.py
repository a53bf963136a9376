"""Which precision the generator multiplies its matrices in, chosen by timing them on the processor present.

Two ways, each one copy of the weights in 16 bits:

- ``float32``: matrices stored in float16; a prompt (many rows) widens them to float32 per product, a decoding step
  (one row) multiplies in float16. What a processor without bfloat16 units runs fastest.
- ``bfloat16``: matrices stored in bfloat16, and prompts and decoding multiply in bfloat16. With AVX-512 BF16 or
  AMX this more than halves a prompt's products (eval/README.md); without them it is emulated and slower.

Norms, attention and the rest stay float32 either way. Processors differ from one host to the next, so the
choice is made by timing the model's largest matrix both ways, not by reading flags, and cached per processor.

The same product is also timed in 8-bit integers (``int8``: what the int8 engine, ``--engine ctranslate2``, runs),
so that ``rag.models.model_choice`` can predict an answer's time with either engine from one cached timing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rag.models.base import usable_cores

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

Precision = Literal["float32", "bfloat16"]
# The transformers engine's choices; "int8" is timed beside them for the int8 engine.
FLOAT_PRECISIONS: tuple[Precision, ...] = ("float32", "bfloat16")
# In the cache key: a timing made before int8 was timed (version 1) is made again.
TIMING_VERSION = 2
# The flags that decide how fast 16-bit and 8-bit products can be; recorded with every choice and benchmark.
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                  "amx_tile", "amx_bf16", "amx_int8")
# The answer the choice is timed for: a prompt of this many tokens, then this many decoding steps. A reply is a
# phrase: the 1.5B's median reply on the Rhine tuning sample was 4 tokens and its 90th percentile 10 (the 0.5B's
# 4 and 20); with the end-of-reply token, 8 steps stand for a typical answer (eval/log.md, row 69).
PROMPT_ROWS = 500
DECODE_STEPS = 8
# bfloat16 is taken only when it is this much faster: a close call is not worth the rounding.
MIN_SPEEDUP = 1.15


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision chosen and the timings (milliseconds, the largest matrix) it was chosen from; the timings
    hold "int8" too where onnxruntime could time it."""

    precision: Precision
    prompt_ms: dict[str, float]
    decode_ms: dict[str, float]
    matrix: tuple[int, int]
    cpu_flags: tuple[str, ...]
    threads: int
    torch: str

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_flags() -> tuple[str, ...]:
    """Which of ``RELEVANT_FLAGS`` ``/proc/cpuinfo`` lists (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return tuple(f for f in RELEVANT_FLAGS if f in present)
    except OSError:
        pass
    return ()


def largest_matrix(model: nn.Module, skip: nn.Module | None = None) -> torch.Tensor:
    """The weight of ``model``'s largest linear layer other than ``skip`` (the output layer, which reads only the
    last row of a prompt)."""
    from torch import nn

    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear) and m is not skip]
    if not weights:
        raise ValueError("the model has no linear layers to time")
    return max(weights, key=lambda w: w.numel())


def _median_ms(run, repeats: int) -> float:
    run()  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2] * 1000


def measure(weight: torch.Tensor, repeats: int = 5) -> PrecisionChoice:
    """Time ``weight``'s product both ways, for a prompt of ``PROMPT_ROWS`` rows and for one decoding row, and
    choose the way whose answer (a prompt, then ``DECODE_STEPS`` steps) is faster by at least ``MIN_SPEEDUP``."""
    import torch  # here, not above: reading a cached choice (the int8 engine's start) needs no torch
    from torch import nn

    with torch.no_grad():
        half, bf16 = weight.detach().to(torch.float16), weight.detach().to(torch.bfloat16)
        prompt = torch.randn(PROMPT_ROWS, weight.shape[1])
        row = prompt[:1]
        linear = nn.functional.linear
        prompt_ms = {
            "float32": _median_ms(lambda: linear(prompt, half.float()), repeats),
            "bfloat16": _median_ms(lambda: linear(prompt.bfloat16(), bf16).float(), repeats),
        }
        decode_ms = {
            "float32": _median_ms(lambda: linear(row.half(), half).float(), repeats * 4),
            "bfloat16": _median_ms(lambda: linear(row.bfloat16(), bf16).float(), repeats * 4),
        }
    int8 = int8_product_ms(PROMPT_ROWS, weight.shape[1], weight.shape[0], repeats)
    if int8 is not None:
        prompt_ms["int8"], decode_ms["int8"] = int8
    answer = {p: prompt_ms[p] + DECODE_STEPS * decode_ms[p] for p in FLOAT_PRECISIONS}
    precision: Precision = "bfloat16" if answer["float32"] >= MIN_SPEEDUP * answer["bfloat16"] else "float32"
    return PrecisionChoice(
        precision, {k: round(v, 3) for k, v in prompt_ms.items()}, {k: round(v, 3) for k, v in decode_ms.items()},
        tuple(weight.shape), cpu_flags(), usable_cores(), _torch_version(),
    )


def int8_product_ms(rows: int, inner: int, columns: int, repeats: int = 5) -> tuple[float, float] | None:
    """Median milliseconds of a ``rows`` x ``inner`` by ``inner`` x ``columns`` product in 8-bit integers (unsigned
    activations by signed weights, 32-bit sums: what int8 engines run on VNNI units), and of one row by the same
    matrix; None where onnxruntime cannot run it. onnxruntime's ``MatMulInteger`` is used because torch's CPU int8
    product is slower for one row (``torch._int_mm``: 0.66 ms against 0.27 ms, the 1.5B's largest matrix, a 2-core
    Xeon without AMX)."""
    try:
        import onnxruntime
        from onnx import TensorProto, helper
    except ImportError:
        return None
    import numpy as np

    weights = np.random.default_rng(0).integers(-127, 128, (inner, columns), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["left", "right"], ["product"])],
        "int8_product",
        [helper.make_tensor_value_info("left", TensorProto.UINT8, ["rows", inner])],
        [helper.make_tensor_value_info("product", TensorProto.INT32, ["rows", columns])],
        [helper.make_tensor("right", TensorProto.INT8, [inner, columns], weights.tobytes(), raw=True)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = usable_cores()
    try:
        session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                               providers=["CPUExecutionProvider"])
        left = np.random.default_rng(1).integers(0, 256, (rows, inner), dtype=np.uint8)
        prompt = _median_ms(lambda: session.run(None, {"left": left}), repeats)
        decode = _median_ms(lambda: session.run(None, {"left": left[:1]}), repeats * 4)
    except Exception as exc:  # noqa: BLE001 - an int8 timing that fails leaves the int8 engine unpredicted
        log.warning("could not time int8 products: %s", exc)
        return None
    return prompt, decode


def choose(weight: torch.Tensor | tuple[int, int], cache_file: Path | None = None) -> PrecisionChoice:
    """``measure(weight)``, remembered in ``cache_file`` (JSON) per matrix shape, processor, thread count and torch
    version, so that a later start on the same machine does not time again. An unreadable cache is re-measured.
    ``weight`` may be just a shape: a random matrix of it is made only if it has to be timed."""
    shape = list(weight) if isinstance(weight, tuple) else list(weight.shape)
    key = hashlib.sha256(
        json.dumps([shape, cpu_model(), cpu_flags(), usable_cores(), _torch_version(), TIMING_VERSION])
        .encode()
    ).hexdigest()[:16]
    known: dict = {}
    if cache_file is not None and cache_file.is_file():
        try:
            known = json.loads(cache_file.read_text(encoding="utf-8"))
            entry = known[key]
            return PrecisionChoice(**{**entry, "matrix": tuple(entry["matrix"]),
                                      "cpu_flags": tuple(entry["cpu_flags"])})
        except (OSError, ValueError, KeyError, TypeError):
            known = known if isinstance(known, dict) else {}
    if isinstance(weight, tuple):
        import torch

        weight = torch.randn(*shape) * 0.02
    choice = measure(weight)
    log.info("matrix products in %s (timed: prompt %s ms, decoding step %s ms)",
             choice.precision, choice.prompt_ms, choice.decode_ms)
    if cache_file is not None:
        _write_atomically(cache_file, {**known, key: choice.to_dict()})
    return choice


def _torch_version() -> str:
    """torch's version, read without importing it (a second and 190 MB the int8 engine does not need)."""
    try:
        return version("torch")
    except PackageNotFoundError:
        return ""


def cpu_model() -> str:
    """The processor's name from ``/proc/cpuinfo`` (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _write_atomically(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1)
        os.replace(scratch, path)
    except OSError as exc:  # a read-only cache costs a re-measurement next start, nothing more
        log.warning("could not remember the precision choice in %s: %s", path, exc)
        Path(scratch).unlink(missing_ok=True)
