"""Importing ``rag`` puts the model libraries offline before they load, unless the user chose otherwise."""

import os
import subprocess
import sys

PROBE = "import rag, huggingface_hub.constants as c; print(c.HF_HUB_OFFLINE)"


def hub_offline_after_import(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    if env_value is not None:
        env["HF_HUB_OFFLINE"] = env_value
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_hub_is_offline_after_importing_rag_in_a_clean_environment():
    assert hub_offline_after_import(None) == "True"


def test_an_explicit_user_setting_is_kept():
    assert hub_offline_after_import("0") == "False"


def test_the_installed_package_holds_the_pipeline_but_not_the_benchmarks(tmp_path):
    import shutil
    import zipfile
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"  # built from a copy: a build leaves build/ and egg-info where it runs
    shutil.copytree(repo / "rag", source / "rag", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(tmp_path / "wheel"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "wheel").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rag/assistant.py" in names and "rag/models/scores/answerability-1.5b.json" in names
    assert not [n for n in names if n.startswith("rag/bench/")]
