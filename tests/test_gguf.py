"""Models as GGUF files: folders used as they are, GGUF files converted once and cached, the packaged models joined
from their parts and checked, clear errors otherwise."""

import dataclasses

import pytest
import torch

from rag.models import registry
from rag.models.local import gguf
from rag.models.base import GeneratorError
from rag.models.local.gguf import resolve_model_dir
from tests.conftest import tiny_causal_lm


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

    def fake_convert(source, target):
        conversions.append(source)
        target.mkdir()
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(gguf, "_convert_gguf", fake_convert)
    model_file = tmp_path / "model.gguf"
    model_file.write_bytes(b"GGUF")
    first = resolve_model_dir(str(model_file), tmp_path / "cache")
    second = resolve_model_dir(str(model_file), tmp_path / "cache")
    assert first == second and first.parent == tmp_path / "cache" / "models"
    assert conversions == [model_file]


def test_a_conversion_is_announced_and_a_reuse_is_not(tmp_path, monkeypatch):
    def fake_convert(source, target):
        target.mkdir()
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(gguf, "_convert_gguf", fake_convert)
    model_file = tmp_path / "model.gguf"
    model_file.write_bytes(b"GGUF")
    stages: list[str] = []
    resolve_model_dir(str(model_file), tmp_path / "cache", stages.append)
    assert stages == [gguf.CONVERTING]
    resolve_model_dir(str(model_file), tmp_path / "cache", stages.append)
    assert stages == [gguf.CONVERTING]  # converted already: nothing to wait for


def test_a_new_conversion_removes_the_earlier_versions_of_the_same_file_only(tmp_path):
    models = tmp_path / "models"
    version = gguf.CONVERSION_VERSION
    older = [models / "Model-abc", models / f"Model-abc-c{version - 1}"]
    kept = [models / "Model-abd-c1", models / "Other-abc", models / "Model-abc-copy"]
    for folder in older + kept:
        folder.mkdir(parents=True)
    target = models / f"Model-abc-c{version}"
    target.mkdir()
    gguf._remove_older_conversions(target)
    assert sorted(models.iterdir()) == sorted([*kept, target])


def test_the_default_model_bytes_are_verified(tmp_path, monkeypatch):
    monkeypatch.setattr(gguf, "DEFAULT_MODEL", dataclasses.replace(gguf.DEFAULT_MODEL, sha256="0" * 64))
    with pytest.raises(GeneratorError, match="SHA-256"):
        gguf.join_default_gguf(tmp_path / "joined.gguf")


def test_embeddings_stored_twice_at_two_precisions_are_shared():
    model = tiny_causal_lm()
    with torch.no_grad():
        output = model.get_output_embeddings().weight
        model.get_input_embeddings().weight.copy_(output + 0.01 * output.std() * torch.randn_like(output))
    assert gguf._share_embeddings_if_copies(model)
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    assert model.config.tie_word_embeddings


def test_a_models_own_two_embedding_matrices_stay_apart():
    model = tiny_causal_lm()  # randomly initialised: two unrelated matrices
    before = model.get_input_embeddings().weight.clone()
    assert not gguf._share_embeddings_if_copies(model)
    assert torch.equal(model.get_input_embeddings().weight, before)


def test_a_packaged_model_is_joined_from_its_parts_in_order_and_checked(tmp_path, monkeypatch):
    import hashlib
    import sys
    import types

    parts = []
    for i, data in enumerate([b"GGUF", b"-part-two"]):
        (tmp_path / f"p{i}.bin").write_bytes(data)
        module = types.ModuleType(f"fake_part{i}")
        module.get_part_path = lambda i=i: str(tmp_path / f"p{i}.bin")
        monkeypatch.setitem(sys.modules, f"fake_part{i}", module)
        parts.append(f"fake_part{i}")
    model = gguf.PackagedModel("Fake", tuple(parts), hashlib.sha256(b"GGUF-part-two").hexdigest())
    gguf.join_packaged_gguf(model, tmp_path / "joined.gguf")
    assert (tmp_path / "joined.gguf").read_bytes() == b"GGUF-part-two"
    with pytest.raises(GeneratorError, match="SHA-256"):
        gguf.join_packaged_gguf(dataclasses.replace(model, sha256="0" * 64), tmp_path / "again.gguf")
    missing = dataclasses.replace(model, packages=("fake_part0", "no_such_part_package"))
    with pytest.raises(GeneratorError, match="needs the PyPI package 'no_such_part_package'"):
        gguf.join_packaged_gguf(missing, tmp_path / "missing.gguf")


def test_the_accurate_preset_has_the_larger_model_answer_check_itself_and_use_the_score_fitted_on_its_drafts():
    from rag.config import Settings
    from rag.verification.answerability import ACCURATE_MODEL, VERIFIED_FEATURES, AnswerabilityModel

    accurate = Settings().with_preset("accurate")
    assert registry.PACKAGED_MODELS[accurate.generator_model] is registry.ACCURATE_MODEL
    assert accurate.verifier_model == accurate.generator_model  # the same model judges: nothing more is loaded
    assert accurate.answerability_model == ACCURATE_MODEL and "answerability" in accurate.checks
    assert tuple(AnswerabilityModel.load(ACCURATE_MODEL).features) == VERIFIED_FEATURES
    assert "answerability" in Settings().with_preset("cautious").checks
    assert Settings().with_preset("default") == Settings()
