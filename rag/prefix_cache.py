"""Attention caches of prompt starts kept on disk, so that a new process does not compute them again.

Every prompt of the assistant starts with the same system message. Within one process the generator keeps the
attention cache of the last prompt and reuses the start the next one shares with it; a fresh process (a CLI call,
a restarted chat server) had to compute that start again for its first answer: 72 tokens, about 0.4 s on two cores.
This store keeps the keys and values of such a start in a safetensors file (plain tensors: nothing is unpickled),
named after the model and the tokens, and hands them back to a later process as a ready cache.
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

    def __init__(self, folder: Path, model_key: str) -> None:
        self.folder = folder
        self.model_key = model_key
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
        cache = DynamicCache(config=config)
        for layer in range(layers):
            keys, values = tensors.get(f"keys.{layer}"), tensors.get(f"values.{layer}")
            if keys is None or values is None or keys.dim() != 4 or keys.shape != values.shape:
                return None
            if keys.shape[0] != 1 or keys.shape[-2] != len(ids) or keys.dtype != torch.float32:
                return None
            cache.update(keys, values, layer)
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
        tensors = {"ids": torch.tensor(ids, dtype=torch.int64)}
        for n, layer in enumerate(cache.layers):
            tensors[f"keys.{n}"] = layer.keys[..., : len(ids), :].contiguous()
            tensors[f"values.{n}"] = layer.values[..., : len(ids), :].contiguous()
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
        except OSError as exc:  # a read-only or full cache folder costs speed, never an answer
            log.warning("could not keep the prompt cache in %s: %s", self.folder, exc)
        self._saved.add(path)


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
