"""Generator resolution: folders used as they are, GGUF files converted once and cached, clear errors otherwise."""

import pytest

from rag import generation
from rag.generation import GeneratorError, resolve_model_dir


def test_a_model_folder_is_used_as_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model_dir(str(tmp_path), tmp_path / "cache") == tmp_path


@pytest.mark.parametrize("name, message", [("missing", "not found"), ("weights.bin", "neither")])
def test_missing_or_unknown_paths_are_rejected(tmp_path, name, message):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(GeneratorError, match=message):
        resolve_model_dir(str(tmp_path / name), tmp_path / "cache")


def test_a_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(GeneratorError, match="config.json"):
        resolve_model_dir(str(tmp_path), tmp_path / "cache")


def test_a_gguf_file_is_converted_once_then_reused(tmp_path, monkeypatch):
    conversions = []

    def fake_convert(gguf, target):
        conversions.append(gguf)
        target.mkdir()
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(generation, "_convert_gguf", fake_convert)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    first = resolve_model_dir(str(gguf), tmp_path / "cache")
    second = resolve_model_dir(str(gguf), tmp_path / "cache")
    assert first == second and first.parent == tmp_path / "cache" / "models"
    assert conversions == [gguf]


def test_the_default_model_bytes_are_verified(tmp_path, monkeypatch):
    monkeypatch.setattr(generation, "DEFAULT_GGUF_SHA256", "0" * 64)
    with pytest.raises(GeneratorError, match="SHA-256"):
        generation._join_default_gguf(tmp_path / "joined.gguf")
