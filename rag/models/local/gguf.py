"""Models as GGUF files: the packaged ones joined from their PyPI chunks and checked against their SHA-256, and any
GGUF de-quantised once into a transformers folder in the cache (``resolve_model_dir``)."""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rag.models.base import GeneratorError
from rag.models.local.model_lock import MODEL_LOADING
from rag.models.registry import DEFAULT_MODEL, PACKAGED_MODELS, PackagedModel

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


# Part of every converted folder's name; raised when conversion changes, so old conversions are redone.
# 2: embeddings stored twice in the GGUF are shared (`_share_embeddings_if_copies`).
# 3: weight matrices stored as float16 (`_store_matrices_in_half`).
CONVERSION_VERSION = 3


def join_default_gguf(target: Path) -> None:
    """Join the default model's packaged chunks into ``target`` (``join_packaged_gguf``)."""
    join_packaged_gguf(DEFAULT_MODEL, target)


def join_packaged_gguf(model: PackagedModel, target: Path) -> None:
    """Concatenate ``model``'s packaged byte chunks into ``target`` and check its SHA-256."""
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for package in model.packages:
            try:
                part = Path(importlib.import_module(package).get_part_path())
            except ImportError as exc:
                raise GeneratorError(f"the {model.name} model needs the PyPI package {package!r} "
                                     f"(a dependency of rag-assistant: make setup installs it)") from exc
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
    # Imported here: only a conversion needs them, and torch alone takes a second and 190 MB to import, which the
    # int8 engine, reading its converted copy, never needs.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.warning("converting %s once into %s (about a minute)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with MODEL_LOADING:
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
    import torch

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
    import torch
    from torch import nn

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                module.weight.data = module.weight.data.half()  # a tied matrix is one Parameter: cast once
    model.config.dtype = torch.float16


def _gguf_cache_key(gguf: Path) -> str:
    stat = gguf.stat()
    identity = f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"{gguf.stem}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}-c{CONVERSION_VERSION}"


# What ``resolve_model_dir`` tells ``on_stage`` it is doing, for a person waiting on it.
JOINING = "joining the packaged model's parts"
CONVERTING = "converting the model once for this machine (about a minute, only the first time)"


def resolve_model_dir(model: str | None, cache_dir: Path, on_stage: Callable[[str], None] | None = None) -> Path:
    """A transformers folder for ``model``: a packaged GGUF (None: the default; or a name in ``PACKAGED_MODELS``),
    a user's .gguf file, or a folder as is.

    GGUF files are converted once into ``cache_dir`` and the converted copy is reused on later calls. ``on_stage``
    is called with ``JOINING`` and ``CONVERTING`` as those steps start (neither happens once converted).
    """
    report = on_stage or (lambda stage: None)
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
            report(CONVERTING)
            _convert_gguf(path, target)
        return target

    packaged = PACKAGED_MODELS[model] if model is not None else DEFAULT_MODEL
    target = cache_dir / "models" / f"{packaged.name}-{packaged.sha256[:12]}-c{CONVERSION_VERSION}"
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".tmp-gguf-", dir=target.parent) as scratch:
            gguf = Path(scratch) / f"{packaged.name}.gguf"
            report(JOINING)
            join_packaged_gguf(packaged, gguf)
            report(CONVERTING)
            _convert_gguf(gguf, target)
    return target
