"""Embedders: the ONNX int8 backend (exported once into the cache) gives the PyTorch model's vectors, and models it
cannot export fall back to PyTorch."""

import json
import logging
import shutil

import numpy as np
import pytest

from rag.config import Settings
from rag.models.embedding import (
    OnnxInt8Embedder,
    SentenceTransformerEmbedder,
    default_embedding_model_path,
    load_embedder,
    supports_onnx_export,
)
from tests.conftest import DOCUMENTS


def model_copy_with_pooling(tmp_path, **modes):
    """A copy of the default model folder whose pooling configuration says ``modes``."""
    folder = tmp_path / "model"
    shutil.copytree(default_embedding_model_path(), folder)
    config_path = folder / "1_Pooling" / "config.json"
    config = json.loads(config_path.read_text())
    config.update({key: False for key in config if key.startswith("pooling_mode")}, **modes)
    config_path.write_text(json.dumps(config))
    return folder


def test_the_default_model_can_be_exported(tmp_path):
    assert supports_onnx_export(default_embedding_model_path())
    assert not supports_onnx_export(tmp_path)  # not a sentence-transformers folder at all


def test_a_cls_pooled_model_cannot(tmp_path):
    assert not supports_onnx_export(model_copy_with_pooling(tmp_path, pooling_mode_cls_token=True))


@pytest.mark.slow
def test_a_model_that_cannot_be_exported_is_embedded_with_pytorch(tmp_path, caplog):
    folder = model_copy_with_pooling(tmp_path, pooling_mode_cls_token=True)
    with caplog.at_level(logging.WARNING):
        embedder = load_embedder(Settings(embedding_model=str(folder), cache_dir=tmp_path / "cache"))
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert "embedding with PyTorch" in caplog.text


@pytest.mark.slow
def test_onnx_int8_vectors_match_pytorch_and_the_export_is_made_once(tmp_path, real_embedder):
    cache = tmp_path / "cache"
    onnx = OnnxInt8Embedder(None, cache)
    exported = list(cache.rglob("*.onnx"))
    assert len(exported) == 1
    stamp = exported[0].stat().st_mtime_ns
    OnnxInt8Embedder(None, cache)
    assert exported[0].stat().st_mtime_ns == stamp  # reused, not exported again

    texts = [p.read_text()[i:i + 600] for p in sorted(DOCUMENTS.glob("*.txt")) for i in range(0, 3000, 600)]
    texts += ["Tokyo", "Who resisted the NATO office?"]
    fast, reference = onnx.embed(texts), real_embedder.embed(texts)
    assert fast.shape == reference.shape and fast.dtype == np.float32
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(fast * reference, axis=1)
    assert cosine.min() > 0.97, cosine
    assert onnx.name.endswith("@onnx-int8") and onnx.name != real_embedder.name  # indexes never mix the two
    assert onnx.count_tokens("Tokyo liaison office") == real_embedder.count_tokens("Tokyo liaison office")
    assert onnx.embed([]).shape == (0, onnx.dimensions)
