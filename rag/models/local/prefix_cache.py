"""Attention caches of prompt starts kept on disk, so that no process computes them twice.

Every prompt of the assistant starts with the same system message, and every question whose best passage is the
same starts with the same first passage too (``rag.answering.prompts.prompt_starts``). Within one process the generator
keeps the attention cache of the last prompt and reuses the start the next one shares with it; anything else was
computed again: the system message (60 tokens, 0.3 s on two cores) for a fresh process's first answer, the first
passage (about 190 tokens more) whenever its question did not directly follow one with the same best passage.
This store keeps the keys and values of such starts in safetensors files (plain tensors: nothing is unpickled),
named after the model and the tokens, within a size budget (least recently used files go first), and hands them
back as a ready cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

log = logging.getLogger(__name__)


class PrefixCacheStore:
    """Saved attention caches of token prefixes for one model (``model_key`` names its weights and precision)."""

    def __init__(self, folder: Path, model_key: str, budget_bytes: int = 256 << 20) -> None:
        self.folder = folder
        self.model_key = model_key
        self.budget_bytes = budget_bytes
        self._saved: set[Path] = set()  # written or found by this process: not written again

    def _path(self, ids: list[int]) -> Path:
        digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]
        return self.folder / f"{self.model_key}-{digest}.safetensors"

    def load(self, ids: list[int], config) -> DynamicCache | None:
        """The saved cache of exactly ``ids`` for a model with ``config``, or None when there is none or the file
        does not fit (another model's, truncated, edited): the caller then computes the prefix itself."""
        path = self._path(ids)
        try:
            tensors = load_file(path)
        except FileNotFoundError:
            return None
        except (OSError, SafetensorError) as exc:
            log.warning("ignoring the unreadable prompt cache %s: %s", path, exc)
            return None
        layers = config.num_hidden_layers
        stored_ids = tensors.get("ids")
        if stored_ids is None or stored_ids.tolist() != ids or len(tensors) != 1 + 2 * layers:
            return None
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_size = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        cache = DynamicCache(config=config)
        for layer in range(layers):
            keys, values = tensors.get(f"keys.{layer}"), tensors.get(f"values.{layer}")
            if keys is None or values is None or keys.shape != (1, heads, len(ids), head_size):
                return None
            if values.shape != keys.shape or keys.dtype != torch.float32 or values.dtype != torch.float32:
                return None
            cache.update(keys, values, layer)
        try:
            os.utime(path)  # used now: the last file the budget drops
        except OSError:
            pass
        self._saved.add(path)
        return cache

    def save(self, ids: list[int], cache: DynamicCache) -> None:
        """Keep the first ``len(ids)`` positions of ``cache`` (computed from a prompt starting with ``ids``), unless
        this process already wrote or found them. Written aside and renamed in: a crash leaves no partial file. A
        cache with layers other than plain growing ones (sliding windows, recurrent state) is not kept."""
        path = self._path(ids)
        if path in self._saved or path.is_file():
            self._saved.add(path)
            return
        if not cache.layers or not all(type(layer) is DynamicLayer for layer in cache.layers):
            return
        if cache.get_seq_length() < len(ids):
            return
        kept = [(layer.keys[..., : len(ids), :], layer.values[..., : len(ids), :]) for layer in cache.layers]
        if sum(2 * keys.numel() * keys.element_size() for keys, _ in kept) > self.budget_bytes:
            self._saved.add(path)
            return
        tensors = {"ids": torch.tensor(ids, dtype=torch.int64)}
        for n, (keys, values) in enumerate(kept):
            tensors[f"keys.{n}"], tensors[f"values.{n}"] = keys.contiguous(), values.contiguous()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, scratch = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=self.folder)
            os.close(handle)
            try:
                save_file(tensors, scratch)
                os.replace(scratch, path)
            finally:
                if os.path.exists(scratch):
                    os.unlink(scratch)
            self._keep_within_budget()
        except OSError as exc:  # a read-only or full cache folder costs speed, never an answer
            log.warning("could not keep the prompt cache in %s: %s", self.folder, exc)
        self._saved.add(path)

    def _keep_within_budget(self) -> None:
        """Delete the least recently used files (any model's) until the folder holds at most the budget."""
        files = []
        for path in self.folder.glob("*.safetensors"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed meanwhile by another process
                continue
            files.append((stat.st_mtime_ns, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.budget_bytes:
                break
            path.unlink(missing_ok=True)
            self._saved.discard(path)
            total -= size


def model_key(model_dir: Path, gguf_file: str | None, quantization: str) -> str:
    """A name for the weights in ``model_dir`` as loaded (file sizes and times, precision, library versions):
    a cache computed by other weights or another transformers must not be reused."""
    import transformers

    weights = sorted(p for p in model_dir.iterdir() if p.suffix in {".safetensors", ".gguf", ".bin"})
    if gguf_file:
        weights = [model_dir / gguf_file]
    parts = [str(model_dir.resolve()), quantization, transformers.__version__, torch.__version__]
    for path in weights:
        stat = path.stat()
        parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return f"{model_dir.name}-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:12]}"
